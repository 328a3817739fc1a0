/**
 * Where pair records and their events live. A record is replaced only if its ETag is unchanged
 * since it was read: that is how two instances reconciling at once agree on who dispatches.
 */
import { randomBytes } from "node:crypto";
import type { TableClient } from "@azure/data-tables";
import { PairEventSchema, PairRecordSchema, type PairEvent, type PairRecord } from "../lab/pair-record.js";
import { fromEntity, isStatus, odata, openTable, StoreError, toEntity, type StorageConnection } from "./connection.js";

export { StoreError } from "./connection.js";

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
  /** Every event at or after `since`, newest first (the report's window). */
  listEventsSince(pairId: string, since: Date): Promise<PairEvent[]>;
}

export interface TableStoreOptions {
  connection: StorageConnection;
  /** Prefix of the two table names, so several labs can share one storage account. */
  tablePrefix: string;
  /** Partition of this lab's records (see labKey). */
  lab: string;
}

const recordKeys = Object.keys(PairRecordSchema.shape);
const eventKeys = Object.keys(PairEventSchema.shape);
/** Without an ETag the next write could not be conditional; Table Storage always sends one. */
function requireEtag(etag: string | undefined, pairId: string): string {
  if (!etag) throw new StoreError(`write pair ${pairId}`, new Error("Table Storage answered without an ETag"));
  return etag;
}

const MAX_SEQUENCE = 999_999_999;
/** An event's row key begins with this: newer sorts first. */
const invertedTime = (at: string | Date) => String(8.64e15 - new Date(at).getTime()).padStart(16, "0");
let eventSequence = 0;

export class TableStore implements PairStore {
  private constructor(
    private readonly pairs: TableClient,
    private readonly events: TableClient,
    private readonly lab: string,
  ) {}

  /** Opens (and creates if needed) the pair and event tables. */
  static async open(options: TableStoreOptions): Promise<TableStore> {
    const [pairs, events] = await Promise.all([openTable(options.connection, `${options.tablePrefix}Pairs`), openTable(options.connection, `${options.tablePrefix}Events`)]);
    return new TableStore(pairs, events, options.lab);
  }

  async listPairs(): Promise<StoredPair[]> {
    try {
      const result: StoredPair[] = [];
      const query = this.pairs.listEntities<Record<string, unknown>>({ queryOptions: { filter: `PartitionKey eq ${odata(this.lab)}` } });
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
      const rowKey = `${invertedTime(event.at)}-${sequence}-${randomBytes(4).toString("hex")}`;
      try {
        await this.events.createEntity(toEntity(`${this.lab}.${event.pairId}`, rowKey, event));
      } catch (error) {
        throw new StoreError(`append event for pair ${event.pairId}`, error);
      }
    }
  }

  async listEventsSince(pairId: string, since: Date): Promise<PairEvent[]> {
    // Newer events have smaller keys; "." sorts right after the "-" that ends the time.
    const filter = `PartitionKey eq ${odata(`${this.lab}.${pairId}`)} and RowKey lt ${odata(`${invertedTime(since)}.`)}`;
    try {
      const result: PairEvent[] = [];
      for await (const entity of this.events.listEntities<Record<string, unknown>>({ queryOptions: { filter } })) result.push(fromEntity(PairEventSchema, eventKeys, entity));
      return result;
    } catch (error) {
      throw new StoreError(`list events of pair ${pairId}`, error);
    }
  }

  async listEvents(pairId: string, limit = 50): Promise<PairEvent[]> {
    try {
      const result: PairEvent[] = [];
      const query = this.events.listEntities<Record<string, unknown>>({
        queryOptions: { filter: `PartitionKey eq ${odata(`${this.lab}.${pairId}`)}` },
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
