/**
 * The lab's history: one compact row per job that touched the lab and per reset, kept
 * `historyDays` (config) for the capacity report and the advice (shared/report/). Rows are
 * merged, not replaced: each trigger writes what it learned (a `queued` delivery the labels and
 * queue time, `in_progress` the runner and start, `completed` the end and conclusion; a
 * job-completed call all of them), in any order, and a repeat writes the same values again.
 * A third kind of row says which runner is which pair's VM or host, as the reconcile saw it, so
 * a job row needs only its runner's name.
 *
 * History is a helper: a failed write is logged and never fails a trigger or a reconcile.
 */
import type { TableClient } from "@azure/data-tables";
import { z } from "zod";
import { isStatus, odata, openTable, StoreError, type StorageConnection } from "./connection.js";
import type { PairEvent } from "../lab/pair-record.js";
import type { PairStore } from "./tables.js";
import type { Logger } from "../logger.js";
import type { Job } from "../github/client.js";

const isoTime = z.iso.datetime({ offset: true });
/** Table Storage has no arrays: label lists are stored as JSON text. */
const Labels = z.preprocess((v): unknown => (typeof v === "string" ? JSON.parse(v) : (v ?? [])), z.array(z.string()));

export const JobRowSchema = z.object({
  jobId: z.number().int(),
  runId: z.number().int(),
  /** The job's runs-on labels. */
  labels: Labels,
  runnerName: z.string().nullable(),
  /** When GitHub queued the job (`created_at`); null if no trigger saw it. */
  queuedAt: isoTime.nullable(),
  startedAt: isoTime.nullable(),
  completedAt: isoTime.nullable(),
  /** GitHub's conclusion: success, failure, cancelled, skipped… */
  conclusion: z.string().nullable(),
  /** The writer's clock at the last write: what retention and reads go by. */
  touchedAt: isoTime,
});
export type JobRow = z.infer<typeof JobRowSchema>;
/** What one trigger learned of a job: the ids, and the fields it knows. */
export type JobNews = Pick<JobRow, "jobId" | "runId"> & Partial<Omit<JobRow, "jobId" | "runId" | "touchedAt">>;

export const ResetRowSchema = z.object({
  /** The reset's request id (the dispatch's `request_id`). */
  requestId: z.string(),
  pairId: z.string(),
  runId: z.number().int().nullable(),
  dispatchedAt: isoTime.nullable(),
  /** When its first host job started, if a trigger saw it (else the report takes the host jobs' rows). */
  startedAt: isoTime.nullable(),
  endedAt: isoTime.nullable(),
  outcome: z.enum(["ok", "failed"]).nullable(),
  touchedAt: isoTime,
});
export type ResetRow = z.infer<typeof ResetRowSchema>;
export type ResetNews = Pick<ResetRow, "requestId" | "pairId"> & Partial<Omit<ResetRow, "requestId" | "pairId" | "touchedAt">>;

/** A runner the reconcile saw carrying a pair's VM runner label or one of its host labels. */
export const RunnerRowSchema = z.object({
  runnerName: z.string(),
  pairId: z.string(),
  role: z.enum(["vm", "host"]),
  /** All its labels (the OS and custom ones tell the advice which jobs it can take). */
  labels: Labels,
  touchedAt: isoTime,
});
export type RunnerRow = z.infer<typeof RunnerRowSchema>;
export type RunnerNews = Omit<RunnerRow, "touchedAt">;

export interface LabHistory {
  jobs: JobRow[];
  resets: ResetRow[];
  runners: RunnerRow[];
}

export interface HistoryStore {
  recordJobs(news: JobNews[]): Promise<void>;
  recordResets(news: ResetNews[]): Promise<void>;
  recordRunners(news: RunnerNews[]): Promise<void>;
  /** Job and reset rows written at or after `since`, and every runner row. */
  read(since: Date): Promise<LabHistory>;
  /** Drops job and reset rows last written before `before`; returns how many. */
  prune(before: Date): Promise<number>;
}

type Kind = "job" | "reset" | "runner";
/** Row keys may not hold / \ # ? or control characters; runner names may. */
const rowKey = (kind: Kind, id: string | number) => `${kind}-${encodeURIComponent(String(id).toLowerCase()).replace(/[!'()*~.]/g, (c) => `%${c.charCodeAt(0).toString(16)}`)}`;
const defined = (news: object) => Object.fromEntries(Object.entries(news).filter(([, v]) => v !== undefined && v !== null));
const stored = (fields: Record<string, unknown>) => ("labels" in fields ? { ...fields, labels: JSON.stringify(fields.labels) } : fields);

const SCHEMAS = { job: JobRowSchema, reset: ResetRowSchema, runner: RunnerRowSchema } as const;
const KEYS = { job: Object.keys(JobRowSchema.shape), reset: Object.keys(ResetRowSchema.shape), runner: Object.keys(RunnerRowSchema.shape) };

/** Each kind of row is keyed by its own id; the stores differ only in how a row is merged, read and pruned. */
abstract class MergedRows implements HistoryStore {
  constructor(protected readonly clock: () => Date) {}

  recordJobs(news: JobNews[]): Promise<void> {
    return this.merge("job", news.map((n) => [n.jobId, n]));
  }

  recordResets(news: ResetNews[]): Promise<void> {
    return this.merge("reset", news.map((n) => [n.requestId, n]));
  }

  recordRunners(news: RunnerNews[]): Promise<void> {
    return this.merge("runner", news.map((n) => [n.runnerName, n]));
  }

  protected abstract merge(kind: Kind, rows: [string | number, object][]): Promise<void>;
  abstract read(since: Date): Promise<LabHistory>;
  abstract prune(before: Date): Promise<number>;
}

/** `<prefix>History`, one partition per lab. */
export class TableHistoryStore extends MergedRows {
  private constructor(
    private readonly table: TableClient,
    private readonly lab: string,
    clock: () => Date,
  ) {
    super(clock);
  }

  static async open(options: { connection: StorageConnection; tablePrefix: string; lab: string; clock: () => Date }): Promise<TableHistoryStore> {
    return new TableHistoryStore(await openTable(options.connection, `${options.tablePrefix}History`), options.lab, options.clock);
  }


  protected async merge(kind: Kind, rows: [string | number, object][]): Promise<void> {
    const touchedAt = this.clock().toISOString();
    await Promise.all(
      rows.map(async ([id, news]) => {
        try {
          await this.table.upsertEntity({ partitionKey: this.lab, rowKey: rowKey(kind, id), kind, ...stored(defined(news)), touchedAt }, "Merge");
        } catch (error) {
          throw new StoreError(`record ${kind} ${id} in the history`, error);
        }
      }),
    );
  }

  async read(since: Date): Promise<LabHistory> {
    const history: LabHistory = { jobs: [], resets: [], runners: [] };
    const filter = `PartitionKey eq ${odata(this.lab)} and (touchedAt ge ${odata(since.toISOString())} or kind eq 'runner')`;
    try {
      for await (const entity of this.table.listEntities<Record<string, unknown>>({ queryOptions: { filter } })) {
        const kind = entity.kind as Kind;
        if (!(kind in SCHEMAS)) continue;
        const value = Object.fromEntries(KEYS[kind].map((k) => [k, entity[k] ?? null]));
        if (kind === "job") history.jobs.push(JobRowSchema.parse(value));
        else if (kind === "reset") history.resets.push(ResetRowSchema.parse(value));
        else history.runners.push(RunnerRowSchema.parse(value));
      }
    } catch (error) {
      throw new StoreError("read the lab's history", error);
    }
    return history;
  }

  async prune(before: Date): Promise<number> {
    const filter = `PartitionKey eq ${odata(this.lab)} and touchedAt lt ${odata(before.toISOString())} and kind ne 'runner'`;
    const keys: string[] = [];
    try {
      for await (const entity of this.table.listEntities<Record<string, unknown>>({ queryOptions: { filter, select: ["RowKey"] } })) keys.push(entity.rowKey!);
      for (let i = 0; i < keys.length; i += 100) {
        await this.table.submitTransaction(keys.slice(i, i + 100).map((rowKey) => ["delete", { partitionKey: this.lab, rowKey }]));
      }
    } catch (error) {
      if (!isStatus(error, 404)) throw new StoreError("prune the lab's history", error);
    }
    return keys.length;
  }
}

/** The same rules in process memory, for the simulator and tests. */
export class MemoryHistoryStore extends MergedRows {
  private readonly rows = new Map<string, { kind: Kind; fields: Record<string, unknown> }>();


  protected merge(kind: Kind, rows: [string | number, object][]): Promise<void> {
    const touchedAt = this.clock().toISOString();
    for (const [id, news] of rows) {
      const key = rowKey(kind, id);
      this.rows.set(key, { kind, fields: { ...this.rows.get(key)?.fields, ...defined(news), touchedAt } });
    }
    return Promise.resolve();
  }

  read(since: Date): Promise<LabHistory> {
    const history: LabHistory = { jobs: [], resets: [], runners: [] };
    const from = since.toISOString();
    for (const { kind, fields } of this.rows.values()) {
      if (kind !== "runner" && (fields.touchedAt as string) < from) continue;
      const value = Object.fromEntries(KEYS[kind].map((k) => [k, fields[k] ?? null]));
      if (kind === "job") history.jobs.push(JobRowSchema.parse(value));
      else if (kind === "reset") history.resets.push(ResetRowSchema.parse(value));
      else history.runners.push(RunnerRowSchema.parse(value));
    }
    return Promise.resolve(history);
  }

  prune(before: Date): Promise<number> {
    let dropped = 0;
    for (const [key, { kind, fields }] of this.rows) {
      if (kind !== "runner" && (fields.touchedAt as string) < before.toISOString()) {
        this.rows.delete(key);
        dropped++;
      }
    }
    return Promise.resolve(dropped);
  }
}

/** A job as GitHub lists it (a run's jobs), whole: what job-completed and the timer's backstop already read. */
export function jobNewsOf(job: Job): JobNews {
  const known = { queuedAt: job.created_at, startedAt: job.runner_name ? job.started_at : null, completedAt: job.completed_at, conclusion: job.conclusion, runnerName: job.runner_name };
  return { jobId: job.id, runId: job.run_id, labels: job.labels, ...Object.fromEntries(Object.entries(known).filter(([, v]) => v !== null && v !== undefined)) };
}

/**
 * What a pair's events say of its resets, as reset rows: a dispatch begins one, the record
 * leaving `resetting` for clean (ok) or failed/dirty (failed) ends it.
 */
export function resetNewsOf(events: PairEvent[]): ResetNews[] {
  const news: ResetNews[] = [];
  for (const e of events) {
    if (e.resetRequestId === null) continue;
    const base = { requestId: e.resetRequestId, pairId: e.pairId, ...(e.resetRunId !== null ? { runId: e.resetRunId } : {}) };
    if (e.kind === "dispatch" && e.to === "resetting") news.push({ ...base, dispatchedAt: e.at });
    else if (e.kind === "state" && e.from === "resetting" && e.to !== "resetting") news.push({ ...base, endedAt: e.at, outcome: e.to === "clean" ? "ok" : "failed" });
  }
  return news;
}

/**
 * The pair store, with each appended event's reset news also written to the history: every
 * writer of a pair's events goes through `appendEvents`, so no reset is missed. A history
 * failure is logged; the events themselves are written first and stand.
 */
export function recordingResets(store: PairStore, history: HistoryStore, logger: Pick<Logger, "warn">): PairStore {
  return {
    listPairs: () => store.listPairs(),
    getPair: (id) => store.getPair(id),
    createPair: (record) => store.createPair(record),
    replacePair: (record, etag) => store.replacePair(record, etag),
    listEvents: (id, limit) => store.listEvents(id, limit),
    listEventsSince: (id, since) => store.listEventsSince(id, since),
    appendEvents: async (events) => {
      await store.appendEvents(events);
      const news = resetNewsOf(events);
      if (news.length > 0) await history.recordResets(news).catch((error: unknown) => logger.warn(`history: resets not recorded: ${(error as Error).message}`));
    },
  };
}
