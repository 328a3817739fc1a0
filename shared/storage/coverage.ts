/**
 * How far the reconciles have looked: a queued "look now" inserted at or before `events` (any
 * reconcile) or `timer` (a timer reconcile: freshness and the lost-call backstop run only then)
 * was served by a reconcile that ended ok and began reading after that message was inserted.
 * Times are storage's clock (the queue's insertion times), so instances' clocks do not matter.
 * Kept in Table Storage: queue functions on Flex start cold and fan out over instances.
 */
import type { TableClient } from "@azure/data-tables";
import { z } from "zod";
import { isStatus, openTable, StoreError, type StorageConnection } from "./connection.js";

export const CoverageSchema = z.object({
  events: z.string().nullable(),
  timer: z.string().nullable(),
  /**
   * When the retry of a failed reconcile (of any kind, or a timer's) is due: a message is on the
   * queue that will reconcile then, so another failure before it need not queue one of its own.
   */
  eventsRetryDue: z.string().nullable(),
  timerRetryDue: z.string().nullable(),
});
export type Coverage = z.infer<typeof CoverageSchema>;
const FIELDS = ["events", "timer", "eventsRetryDue", "timerRetryDue"] as const;

export interface CoverageStore {
  read(): Promise<Coverage>;
  /** Moves these times forward (never back); the others stay. */
  advance(to: Partial<Coverage>): Promise<void>;
}

export const later = (a: string | null, b: string | null) => (a === null ? b : b === null ? a : a > b ? a : b);
export const mergeCoverage = (a: Coverage, b: Partial<Coverage>): Coverage => Object.fromEntries(FIELDS.map((f) => [f, later(a[f], b[f] ?? null)])) as Coverage;
const NONE: Coverage = { events: null, timer: null, eventsRetryDue: null, timerRetryDue: null };
const ROW = "coverage";

/** One entity in `<prefix>Control`, advanced with ETag-conditional writes. */
export class TableCoverageStore implements CoverageStore {
  private constructor(
    private readonly table: TableClient,
    private readonly lab: string,
  ) {}

  static async open(options: { connection: StorageConnection; tablePrefix: string; lab: string }): Promise<TableCoverageStore> {
    return new TableCoverageStore(await openTable(options.connection, `${options.tablePrefix}Control`), options.lab);
  }

  private async get(): Promise<{ coverage: Coverage; etag: string | null }> {
    try {
      const entity = await this.table.getEntity<Record<string, unknown>>(this.lab, ROW);
      return { coverage: CoverageSchema.parse(Object.fromEntries(FIELDS.map((f) => [f, entity[f] ?? null]))), etag: entity.etag };
    } catch (error) {
      if (isStatus(error, 404)) return { coverage: NONE, etag: null };
      throw new StoreError("read reconcile coverage", error);
    }
  }

  async read(): Promise<Coverage> {
    return (await this.get()).coverage;
  }

  async advance(to: Partial<Coverage>): Promise<void> {
    for (let attempt = 0; attempt < 5; attempt++) {
      const { coverage, etag } = await this.get();
      const next = mergeCoverage(coverage, to);
      if (FIELDS.every((f) => next[f] === coverage[f]) && etag !== null) return;
      const entity = { partitionKey: this.lab, rowKey: ROW, ...Object.fromEntries(FIELDS.flatMap((f) => (next[f] ? [[f, next[f]]] : []))) };
      try {
        if (etag === null) await this.table.createEntity(entity);
        else await this.table.updateEntity(entity, "Replace", { etag });
        return;
      } catch (error) {
        if (!isStatus(error, 409, 412)) throw new StoreError("advance reconcile coverage", error);
      }
    }
  }
}

export class MemoryCoverageStore implements CoverageStore {
  private coverage: Coverage = NONE;
  read(): Promise<Coverage> {
    return Promise.resolve({ ...this.coverage });
  }
  advance(to: Partial<Coverage>): Promise<void> {
    this.coverage = mergeCoverage(this.coverage, to);
    return Promise.resolve();
  }
}
