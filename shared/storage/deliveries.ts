/**
 * What the redelivery timer remembers: how far it has looked through the App's webhook
 * deliveries, and each failed delivery (by GUID) it asked GitHub to redeliver, so that a
 * delivery is redelivered once — a redelivery that fails too is not tried again — and two
 * instances never redeliver the same one. Kept in `<prefix>Deliveries`, one partition per lab.
 */
import type { TableClient } from "@azure/data-tables";
import { z } from "zod";
import { isStatus, odata, openTable, StoreError, type StorageConnection } from "./connection.js";

/** A redelivery request that GitHub did not take (its POST failed) is sent again this many times at most. */
export const MAX_REDELIVERY_REQUESTS = 3;

export const RedeliverySchema = z.object({
  /** The failed attempt redelivered. */
  deliveryId: z.number().int(),
  requestedAt: z.iso.datetime({ offset: true }),
  /** Redelivery requests sent; another only while the last one failed (`error`). */
  requests: z.number().int().min(1),
  error: z.string().nullable(),
});
export type Redelivery = z.infer<typeof RedeliverySchema>;

export interface RedeliveryLedger {
  /** The newest delivery time the timer has looked at, or null before its first look. */
  lookedUpTo(): Promise<string | null>;
  /** Moves it forward (never back). */
  advance(to: string): Promise<void>;
  /** True when this caller is to redeliver `guid` now: never asked before, or its last request failed and tries remain. */
  claim(guid: string, deliveryId: number, now: Date): Promise<boolean>;
  /** GitHub took the request for `guid`. Until then a claim reads as failed, so one lost with its instance is sent again. */
  sent(guid: string): Promise<void>;
  /** The request for `guid` failed: a later look may send it again (up to MAX_REDELIVERY_REQUESTS). */
  failed(guid: string, error: string): Promise<void>;
  /** Forgets redeliveries requested before `before` (GitHub keeps deliveries for 3 days). */
  prune(before: Date): Promise<number>;
}

const CURSOR = "cursor";
/** A claim's error until GitHub takes the request: an instance lost in between leaves it to be sent again. */
const NOT_ANSWERED = "requested; no answer recorded";
const rowOf = (guid: string) => `guid-${guid}`;
/** How long a request may go unanswered (its POST in flight on another instance) before it counts as lost. */
const UNANSWERED_MS = 10 * 60_000;

/** Ask again only after a failed request, or one left unanswered long enough to be lost, while tries remain. */
function mayAskAgain(record: Redelivery, now: Date): boolean {
  if (record.error === null || record.requests >= MAX_REDELIVERY_REQUESTS) return false;
  return record.error !== NOT_ANSWERED || now.getTime() - Date.parse(record.requestedAt) >= UNANSWERED_MS;
}

export class TableRedeliveryLedger implements RedeliveryLedger {
  private constructor(
    private readonly table: TableClient,
    private readonly lab: string,
  ) {}

  static async open(options: { connection: StorageConnection; tablePrefix: string; lab: string }): Promise<TableRedeliveryLedger> {
    return new TableRedeliveryLedger(await openTable(options.connection, `${options.tablePrefix}Deliveries`), options.lab);
  }

  async lookedUpTo(): Promise<string | null> {
    try {
      const entity = await this.table.getEntity<{ lookedUpTo?: string }>(this.lab, CURSOR);
      return entity.lookedUpTo ?? null;
    } catch (error) {
      if (isStatus(error, 404)) return null;
      throw new StoreError("read how far webhook deliveries were looked at", error);
    }
  }

  async advance(to: string): Promise<void> {
    // One timer at a time per schedule; a race between two instances only moves it less far.
    const current = await this.lookedUpTo();
    if (current !== null && current >= to) return;
    try {
      await this.table.upsertEntity({ partitionKey: this.lab, rowKey: CURSOR, lookedUpTo: to }, "Replace");
    } catch (error) {
      throw new StoreError("record how far webhook deliveries were looked at", error);
    }
  }

  async claim(guid: string, deliveryId: number, now: Date): Promise<boolean> {
    const fresh: Redelivery = { deliveryId, requestedAt: now.toISOString(), requests: 1, error: NOT_ANSWERED };
    try {
      await this.table.createEntity({ partitionKey: this.lab, rowKey: rowOf(guid), ...fresh });
      return true;
    } catch (error) {
      if (!isStatus(error, 409)) throw new StoreError(`record the redelivery of ${guid}`, error);
    }
    const { record, etag } = await this.get(guid);
    if (record === null || !mayAskAgain(record, now)) return false;
    try {
      await this.table.updateEntity({ partitionKey: this.lab, rowKey: rowOf(guid), ...fresh, requests: record.requests + 1 }, "Replace", { etag });
      return true;
    } catch (error) {
      if (isStatus(error, 412)) return false;
      throw new StoreError(`record the redelivery of ${guid}`, error);
    }
  }

  async sent(guid: string): Promise<void> {
    const { record } = await this.get(guid);
    if (record === null) return;
    // Replace, not merge: a merge cannot remove `error`, and a row without it reads as answered.
    const { deliveryId, requestedAt, requests } = record;
    try {
      await this.table.updateEntity({ partitionKey: this.lab, rowKey: rowOf(guid), deliveryId, requestedAt, requests }, "Replace");
    } catch (cause) {
      throw new StoreError(`record the redelivery of ${guid}`, cause);
    }
  }

  async failed(guid: string, error: string): Promise<void> {
    try {
      await this.table.updateEntity({ partitionKey: this.lab, rowKey: rowOf(guid), error: error.slice(0, 1000) }, "Merge");
    } catch (cause) {
      throw new StoreError(`record the failed redelivery of ${guid}`, cause);
    }
  }

  async prune(before: Date): Promise<number> {
    const old: string[] = [];
    try {
      const filter = `PartitionKey eq ${odata(this.lab)} and RowKey ge 'guid-' and requestedAt lt ${odata(before.toISOString())}`;
      for await (const entity of this.table.listEntities({ queryOptions: { filter, select: ["RowKey"] } })) old.push(entity.rowKey!);
      for (let i = 0; i < old.length; i += 100) await this.table.submitTransaction(old.slice(i, i + 100).map((rowKey) => ["delete", { partitionKey: this.lab, rowKey }]));
    } catch (error) {
      throw new StoreError("prune old redeliveries", error);
    }
    return old.length;
  }

  private async get(guid: string): Promise<{ record: Redelivery | null; etag: string }> {
    try {
      const entity = await this.table.getEntity<Record<string, unknown>>(this.lab, rowOf(guid));
      return { record: RedeliverySchema.parse({ ...entity, error: entity.error ?? null }), etag: entity.etag };
    } catch (error) {
      if (isStatus(error, 404)) return { record: null, etag: "*" };
      throw new StoreError(`read the redelivery of ${guid}`, error);
    }
  }
}

/** The same rules in process memory, for the simulator and tests without storage. */
export class MemoryRedeliveryLedger implements RedeliveryLedger {
  private upTo: string | null = null;
  private readonly redeliveries = new Map<string, Redelivery>();

  lookedUpTo(): Promise<string | null> {
    return Promise.resolve(this.upTo);
  }
  advance(to: string): Promise<void> {
    if (this.upTo === null || to > this.upTo) this.upTo = to;
    return Promise.resolve();
  }
  claim(guid: string, deliveryId: number, now: Date): Promise<boolean> {
    const record = this.redeliveries.get(guid);
    if (record !== undefined && !mayAskAgain(record, now)) return Promise.resolve(false);
    this.redeliveries.set(guid, { deliveryId, requestedAt: now.toISOString(), requests: (record?.requests ?? 0) + 1, error: NOT_ANSWERED });
    return Promise.resolve(true);
  }
  sent(guid: string): Promise<void> {
    const record = this.redeliveries.get(guid);
    if (record) record.error = null;
    return Promise.resolve();
  }
  failed(guid: string, error: string): Promise<void> {
    const record = this.redeliveries.get(guid);
    if (record) record.error = error;
    return Promise.resolve();
  }
  prune(before: Date): Promise<number> {
    let dropped = 0;
    for (const [guid, r] of this.redeliveries) if (r.requestedAt < before.toISOString() && this.redeliveries.delete(guid)) dropped++;
    return Promise.resolve(dropped);
  }
}
