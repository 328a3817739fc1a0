/**
 * The report and the recorded workload, read from storage: the history rows, the pairs' events
 * over the window and their records now. Two table queries and one per pair; no GitHub call.
 */
import { z } from "zod";
import { LabConfigSchema, type LabConfig } from "../lab/config.js";
import type { PairEvent, PairRecord } from "../lab/pair-record.js";
import { JobRowSchema, ResetRowSchema, RunnerRowSchema, type HistoryStore } from "../storage/history.js";
import type { PairStore } from "../storage/tables.js";
import { buildReport, perfJobsOf, type Report } from "./report.js";

export const DEFAULT_REPORT_DAYS = 7;
/** Rows are read from this long before the window: a job or reset that began before it still counts its part inside. */
const MARGIN_MS = 86_400_000;
const DAY_MS = 86_400_000;

export interface ReportRuntime {
  config: LabConfig;
  store: Pick<PairStore, "listPairs" | "listEventsSince">;
  history: Pick<HistoryStore, "read">;
  clock: () => Date;
}

/** The recorded workload of a window: what `lab-reset advise` replays. Perf jobs carry their pair. */
export const WorkloadSchema = z.object({
  from: z.iso.datetime({ offset: true }),
  to: z.iso.datetime({ offset: true }),
  config: LabConfigSchema,
  jobs: z.array(JobRowSchema.extend({ pairId: z.string() })),
  resets: z.array(ResetRowSchema),
  runners: z.array(RunnerRowSchema),
});
export type Workload = z.infer<typeof WorkloadSchema>;

/** What the report reads of a runtime: of the config, only its pairs (the status page has no more). */
export type ReportReads = Omit<ReportRuntime, "config"> & { config: Pick<LabConfig, "pairs"> };

async function readWindow(runtime: ReportReads, days: number) {
  const to = runtime.clock();
  const from = new Date(to.getTime() - days * DAY_MS);
  const [history, stored] = await Promise.all([runtime.history.read(new Date(from.getTime() - MARGIN_MS)), runtime.store.listPairs()]);
  const records = new Map<string, PairRecord>(stored.map((s) => [s.record.pairId, s.record]));
  const events = new Map<string, PairEvent[]>(await Promise.all(runtime.config.pairs.map(async (p) => [p.id, await runtime.store.listEventsSince(p.id, from)] as const)));
  return { from, to, history, records, events };
}

export async function readReport(runtime: ReportReads, days: number): Promise<Report> {
  const { from, to, history, records, events } = await readWindow(runtime, days);
  return buildReport({ from, to, pairs: runtime.config.pairs, history, events, records });
}

/** A report this old (by the app's clock) is drawn again rather than read: the page reloads every 30 s, the week changes slowly. */
export const PAGE_REPORT_MAX_AGE_MS = 5 * 60_000;
const drawn = new WeakMap<object, Map<number, { at: number; report: Promise<Report> }>>();

/** The report for the status page: read at most once per PAGE_REPORT_MAX_AGE_MS per window and instance. */
export function recentReport(runtime: ReportReads, days: number): Promise<Report> {
  const now = runtime.clock().getTime();
  const byDays = drawn.get(runtime.history) ?? new Map<number, { at: number; report: Promise<Report> }>();
  drawn.set(runtime.history, byDays);
  const last = byDays.get(days);
  if (last && now - last.at < PAGE_REPORT_MAX_AGE_MS && now >= last.at) return last.report;
  const report = readReport(runtime, days);
  byDays.set(days, { at: now, report });
  // A failed read is not kept: the next reload tries again.
  report.catch(() => byDays.get(days)?.report === report && byDays.delete(days));
  return report;
}

export async function readWorkload(runtime: ReportRuntime, days: number): Promise<Workload> {
  const { from, to, history } = await readWindow(runtime, days);
  const inWindow = (at: string | null) => at !== null && at >= from.toISOString() && at <= to.toISOString();
  return {
    from: from.toISOString(),
    to: to.toISOString(),
    config: runtime.config,
    jobs: perfJobsOf(history).filter(({ job }) => inWindow(job.startedAt)).map(({ job, pairId }) => ({ ...job, pairId })),
    resets: history.resets.filter((r) => r.dispatchedAt !== null && inWindow(r.dispatchedAt)),
    runners: history.runners,
  };
}
