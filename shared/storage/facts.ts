/**
 * What the triggers learned, kept as insert-only rows: a job started or ended on a runner. A
 * trigger never writes a pair's record (50 writers on one ETag would 503 each other, and each
 * write would void a reconcile's claim); the reconcile reads the facts and folds them into the
 * records. The row key is the job and phase, so a repeated delivery is a 409 and nothing more.
 */
import { createHash } from "node:crypto";
import type { TableClient } from "@azure/data-tables";
import { z } from "zod";
import { fromEntity, isStatus, odata, openTable, StoreError, toEntity, type StorageConnection } from "./connection.js";

const isoTime = z.iso.datetime({ offset: true });

export const JobFactSchema = z.object({
  phase: z.enum(["started", "ended"]),
  /** null when a job-completed call for another repository's run names only the runner. */
  jobId: z.number().int().nullable(),
  runId: z.number().int(),
  runnerName: z.string(),
  runnerId: z.number().int().nullable(),
  /**
   * When the job started or ended, by GitHub's clock (the call's time if GitHub gave none). A
   * webhook start is the later of GitHub's `started_at` and the delivery's arrival: `started_at`
   * may still be the queue time, which would date a start after a reset before it.
   */
  at: isoTime,
  /** GitHub's own `started_at`/`completed_at` as the delivery carried it, kept beside `at`. */
  githubAt: isoTime.nullable().default(null),
  source: z.enum(["webhook", "job-completed"]),
  /** This instance's clock when recorded: for retention and "recorded since", never for ordering jobs. */
  recordedAt: isoTime,
});
/** As triggers write it (`githubAt` may be left out); stores read it back with `githubAt` null. */
export type JobFact = z.input<typeof JobFactSchema>;
export interface StoredFact {
  key: string;
  fact: JobFact;
}

/** The fact's identity: one row per job and phase, however many deliveries and calls report it. */
export function factKey(fact: Pick<JobFact, "phase" | "jobId" | "runId" | "runnerName">): string {
  if (fact.jobId !== null) return `job-${fact.jobId}-${fact.phase}`;
  const runner = createHash("sha256").update(fact.runnerName.toLowerCase()).digest("hex").slice(0, 16);
  return `run-${fact.runId}-${runner}-${fact.phase}`;
}

export interface FactStore {
  /** Inserts each fact once; for each, false when it was recorded before (a repeated delivery). */
  record(facts: JobFact[]): Promise<boolean[]>;
  /** Facts recorded at or after `since`. */
  listSince(since: Date): Promise<StoredFact[]>;
  /** Drops facts recorded before `before`; returns how many. */
  prune(before: Date): Promise<number>;
}

const factKeys = Object.keys(JobFactSchema.shape);

/** Facts in the table `<prefix>Facts`, one partition per lab. */
export class TableFactStore implements FactStore {
  private constructor(
    private readonly table: TableClient,
    private readonly lab: string,
  ) {}

  static async open(options: { connection: StorageConnection; tablePrefix: string; lab: string }): Promise<TableFactStore> {
    return new TableFactStore(await openTable(options.connection, `${options.tablePrefix}Facts`), options.lab);
  }

  record(facts: JobFact[]): Promise<boolean[]> {
    return Promise.all(
      facts.map(async (fact) => {
        try {
          await this.table.createEntity(toEntity(this.lab, factKey(fact), JobFactSchema.parse(fact)));
          return true;
        } catch (error) {
          if (isStatus(error, 409)) return false;
          throw new StoreError(`record job ${fact.jobId ?? fact.runId} ${fact.phase}`, error);
        }
      }),
    );
  }

  async listSince(since: Date): Promise<StoredFact[]> {
    return this.query(`PartitionKey eq ${odata(this.lab)} and recordedAt ge ${odata(since.toISOString())}`, "list job facts");
  }

  async prune(before: Date): Promise<number> {
    const old = await this.query(`PartitionKey eq ${odata(this.lab)} and recordedAt lt ${odata(before.toISOString())}`, "list old job facts");
    for (let i = 0; i < old.length; i += 100) {
      try {
        await this.table.submitTransaction(old.slice(i, i + 100).map((f) => ["delete", { partitionKey: this.lab, rowKey: f.key }]));
      } catch (error) {
        throw new StoreError("prune job facts", error);
      }
    }
    return old.length;
  }

  private async query(filter: string, call: string): Promise<StoredFact[]> {
    try {
      const result: StoredFact[] = [];
      for await (const entity of this.table.listEntities<Record<string, unknown>>({ queryOptions: { filter } })) {
        result.push({ key: entity.rowKey!, fact: fromEntity(JobFactSchema, factKeys, entity) });
      }
      return result;
    } catch (error) {
      throw new StoreError(call, error);
    }
  }
}

/**
 * The same rules in process memory, for the simulator and the property tests. Facts are kept in
 * the order they were recorded (by `recordedAt`) and frozen, so a read is a binary search to the
 * window's start and a slice: the simulator reads a day of facts on every reconcile.
 */
export class MemoryFactStore implements FactStore {
  private readonly byKey = new Map<string, StoredFact>();
  /** Oldest `recordedAt` first; facts recorded at the same time keep the order they came in. */
  private readonly ordered: StoredFact[] = [];

  record(facts: JobFact[]): Promise<boolean[]> {
    return Promise.resolve(
      facts.map((fact) => {
        const key = factKey(fact);
        if (this.byKey.has(key)) return false;
        const stored: StoredFact = Object.freeze({ key, fact: Object.freeze(JobFactSchema.parse(fact)) });
        this.byKey.set(key, stored);
        this.ordered.splice(this.indexAfter(stored.fact.recordedAt, true), 0, stored);
        return true;
      }),
    );
  }

  listSince(since: Date): Promise<StoredFact[]> {
    return Promise.resolve(this.ordered.slice(this.indexAfter(since.toISOString(), false)));
  }

  prune(before: Date): Promise<number> {
    const dropped = this.ordered.splice(0, this.indexAfter(before.toISOString(), false));
    for (const stored of dropped) this.byKey.delete(stored.key);
    return Promise.resolve(dropped.length);
  }

  /** Where the facts recorded at or after `at` begin (`strictly`: after it); binary search. */
  private indexAfter(at: string, strictly: boolean): number {
    let [low, high] = [0, this.ordered.length];
    while (low < high) {
      const middle = (low + high) >>> 1;
      const recordedAt = this.ordered[middle]!.fact.recordedAt;
      if (recordedAt < at || (strictly && recordedAt === at)) low = middle + 1;
      else high = middle;
    }
    return low;
  }
}
