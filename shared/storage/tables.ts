/**
 * Where pair records and their events live. A record is replaced only if its ETag is unchanged
 * since it was read: that is how two instances reconciling at once agree on who dispatches.
 */
import { randomBytes } from "node:crypto";
import { RestError, TableClient, type TableEntityResult } from "@azure/data-tables";
import type { TokenCredential } from "@azure/core-auth";
import { PairEventSchema, PairRecordSchema, type PairEvent, type PairRecord } from "../lab/pair-record.js";

export interface StoredPair {
  record: PairRecord;
  etag: string;
}

/** Another writer changed the record since it was read (412), or created it first (409). */
export class StoreConflictError extends Error {
  constructor(readonly pairId: string) {
    super(`pair ${pairId} was changed by another reconcile`);
    this.name = "StoreConflictError";
  }
}

/** A Table Storage call that failed, named for the log. */
export class StoreError extends Error {
  constructor(call: string, cause: unknown) {
    super(`Table Storage ${call} failed: ${cause instanceof Error ? cause.message.split("\n")[0] : String(cause)}`, { cause });
    this.name = "StoreError";
  }
}

export interface PairStore {
  listPairs(): Promise<StoredPair[]>;
  getPair(pairId: string): Promise<StoredPair | null>;
  /** Creates the record; StoreConflictError if it exists. Returns the new ETag. */
  createPair(record: PairRecord): Promise<string>;
  /** Replaces the record if its ETag is still `etag`; StoreConflictError otherwise. */
  replacePair(record: PairRecord, etag: string): Promise<string>;
  appendEvents(events: PairEvent[]): Promise<void>;
  /** Newest first. */
  listEvents(pairId: string, limit?: number): Promise<PairEvent[]>;
}

export type TableConnection =
  | { kind: "connectionString"; connectionString: string }
  | { kind: "identity"; tableServiceUrl: string; credential: TokenCredential };

export interface TableStoreOptions {
  connection: TableConnection;
  /** Prefix of the two table names, so several labs can share one storage account. */
  tablePrefix: string;
  /** Partition of this lab's records (see labKey). */
  lab: string;
}

// Table Storage has no null: absent properties read back as null.
function toEntity(partitionKey: string, rowKey: string, value: Record<string, unknown>) {
  const entity: Record<string, unknown> = { partitionKey, rowKey };
  for (const [key, v] of Object.entries(value)) if (v !== null && v !== undefined) entity[key] = v;
  return entity as { partitionKey: string; rowKey: string };
}

function fromEntity<T>(schema: { parse(value: unknown): T }, keys: string[], entity: TableEntityResult<Record<string, unknown>>): T {
  const value: Record<string, unknown> = {};
  for (const key of keys) value[key] = entity[key] ?? null;
  return schema.parse(value);
}

const recordKeys = Object.keys(PairRecordSchema.shape);
const eventKeys = Object.keys(PairEventSchema.shape);
/** Without an ETag the next write could not be conditional; Table Storage always sends one. */
function requireEtag(etag: string | undefined, pairId: string): string {
  if (!etag) throw new StoreError(`write pair ${pairId}`, new Error("Table Storage answered without an ETag"));
  return etag;
}

const MAX_SEQUENCE = 999_999_999;
let eventSequence = 0;
const isStatus = (error: unknown, ...codes: number[]) => error instanceof RestError && codes.includes(error.statusCode ?? 0);

export class TableStore implements PairStore {
  private constructor(
    private readonly pairs: TableClient,
    private readonly events: TableClient,
    private readonly lab: string,
  ) {}

  /** Opens (and creates if needed) the pair and event tables. */
  static async open(options: TableStoreOptions): Promise<TableStore> {
    const client = (table: string) =>
      options.connection.kind === "connectionString"
        ? TableClient.fromConnectionString(options.connection.connectionString, table, { allowInsecureConnection: true })
        : new TableClient(options.connection.tableServiceUrl, table, options.connection.credential);
    const store = new TableStore(client(`${options.tablePrefix}Pairs`), client(`${options.tablePrefix}Events`), options.lab);
    for (const table of [store.pairs, store.events]) {
      try {
        await table.createTable();
      } catch (error) {
        throw new StoreError(`create table ${table.tableName}`, error);
      }
    }
    return store;
  }

  async listPairs(): Promise<StoredPair[]> {
    try {
      const result: StoredPair[] = [];
      const query = this.pairs.listEntities<Record<string, unknown>>({ queryOptions: { filter: `PartitionKey eq '${this.lab.replace(/'/g, "''")}'` } });
      for await (const entity of query) result.push({ record: fromEntity(PairRecordSchema, recordKeys, entity), etag: entity.etag });
      return result;
    } catch (error) {
      throw new StoreError(`list ${this.pairs.tableName}`, error);
    }
  }

  async getPair(pairId: string): Promise<StoredPair | null> {
    try {
      const entity = await this.pairs.getEntity<Record<string, unknown>>(this.lab, pairId);
      return { record: fromEntity(PairRecordSchema, recordKeys, entity), etag: entity.etag };
    } catch (error) {
      if (isStatus(error, 404)) return null;
      throw new StoreError(`read pair ${pairId}`, error);
    }
  }

  async createPair(record: PairRecord): Promise<string> {
    try {
      const response = await this.pairs.createEntity(toEntity(this.lab, record.pairId, record));
      return requireEtag(response.etag, record.pairId);
    } catch (error) {
      if (isStatus(error, 409)) throw new StoreConflictError(record.pairId);
      throw new StoreError(`create pair ${record.pairId}`, error);
    }
  }

  async replacePair(record: PairRecord, etag: string): Promise<string> {
    try {
      // "Replace" drops properties that became null; the etag makes it conditional (If-Match).
      const response = await this.pairs.updateEntity(toEntity(this.lab, record.pairId, record), "Replace", { etag });
      return requireEtag(response.etag, record.pairId);
    } catch (error) {
      if (isStatus(error, 412, 404)) throw new StoreConflictError(record.pairId);
      throw new StoreError(`update pair ${record.pairId}`, error);
    }
  }

  async appendEvents(events: PairEvent[]): Promise<void> {
    for (const event of events) {
      // Row keys sort newest first: inverted milliseconds, then an inverted counter so events of
      // the same millisecond keep their order here, then randomness against other processes.
      const sequence = String(MAX_SEQUENCE - (eventSequence++ % MAX_SEQUENCE)).padStart(9, "0");
      const rowKey = `${String(8.64e15 - Date.parse(event.at)).padStart(16, "0")}-${sequence}-${randomBytes(4).toString("hex")}`;
      try {
        await this.events.createEntity(toEntity(`${this.lab}.${event.pairId}`, rowKey, event));
      } catch (error) {
        throw new StoreError(`append event for pair ${event.pairId}`, error);
      }
    }
  }

  async listEvents(pairId: string, limit = 50): Promise<PairEvent[]> {
    try {
      const result: PairEvent[] = [];
      const query = this.events.listEntities<Record<string, unknown>>({
        queryOptions: { filter: `PartitionKey eq '${`${this.lab}.${pairId}`.replace(/'/g, "''")}'` },
      });
      for await (const entity of query) {
        result.push(fromEntity(PairEventSchema, eventKeys, entity));
        if (result.length >= limit) break;
      }
      return result;
    } catch (error) {
      throw new StoreError(`list events of pair ${pairId}`, error);
    }
  }
}
