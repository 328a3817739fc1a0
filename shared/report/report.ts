/**
 * The capacity report: what the lab's jobs waited, what its pairs spent their time on, and what
 * its resets cost, over a window, from the history rows and the pairs' events alone (pure).
 *
 * A perf job is a job that ran on a pair's VM runner; the reset workflow's host jobs count under
 * resets. Times in the report are seconds.
 */
import { z } from "zod";
import type { Pair } from "../lab/config.js";
import type { PairEvent, PairRecord, PairState } from "../lab/pair-record.js";
import type { JobRow, LabHistory, ResetRow } from "../storage/history.js";
import { percentile } from "./percentile.js";

const Seconds = z.number().min(0);
const Share = z.number().min(0).max(1);
const Waits = { p50: Seconds, p95: Seconds };

export const ReportSchema = z.object({
  from: z.iso.datetime({ offset: true }),
  to: z.iso.datetime({ offset: true }),
  jobs: z.object({ count: z.number().int(), dirtyStarts: z.number().int(), killedByReset: z.number().int() }),
  queueWaitSeconds: z.object({
    ...Waits,
    /** Per runs-on label set (sorted, lower case, joined with ", "), busiest first. */
    byLabels: z.array(z.object({ labels: z.string(), jobs: z.number().int(), ...Waits })),
    /** Per hour of the window (by start), for the page's line; hours without a start are left out. */
    byHour: z.array(z.object({ hour: z.iso.datetime({ offset: true }), jobs: z.number().int(), p95: Seconds })),
  }),
  resets: z.object({ ok: z.number().int(), failed: z.number().int(), secondsP50: Seconds, secondsP95: Seconds }),
  pairs: z.array(
    z.object({
      id: z.string(),
      jobs: z.number().int(),
      busyShare: Share,
      resettingShare: Share,
      outOfRoutingIdleShare: Share,
      cleanIdleShare: Share,
      offlineShare: Share,
      /** The part of the window the pair has a record for: the shares are of this time. */
      recordedSeconds: Seconds,
      resets: z.object({ ok: z.number().int(), failed: z.number().int() }),
    }),
  ),
});
export type Report = z.infer<typeof ReportSchema>;
export type PairReport = Report["pairs"][number];

export interface ReportInput {
  from: Date;
  to: Date;
  pairs: Pair[];
  history: LabHistory;
  /** Each pair's events at or after `from` (any order). */
  events: Map<string, PairEvent[]>;
  /** Each pair's record now: its state through the window when it has no event in it. */
  records: Map<string, PairRecord>;
}

const ms = (iso: string | null) => (iso === null ? null : Date.parse(iso));
const lower = (s: string) => s.toLowerCase();
export const labelSetOf = (labels: readonly string[]) => [...new Set(labels.map(lower))].sort().join(", ");
/** Conclusions of a job that did not end as its workflow wanted. */
const UNSUCCESSFUL = new Set(["failure", "cancelled", "timed_out"]);
const HOUR = 3_600_000;
const GITHUB_TIME_RESOLUTION_MS = 1000;

/** Each perf job (started on a pair's VM runner), with its pair. */
export function perfJobsOf(history: LabHistory): { job: JobRow & { startedAt: string }; pairId: string }[] {
  const vmPair = new Map(history.runners.filter((r) => r.role === "vm").map((r) => [lower(r.runnerName), r.pairId]));
  return history.jobs.flatMap((job) => {
    const pairId = job.runnerName === null ? undefined : vmPair.get(lower(job.runnerName));
    return pairId === undefined || job.startedAt === null ? [] : [{ job: job as JobRow & { startedAt: string }, pairId }];
  });
}

/** A reset's start: its own if known, else its first host job's. */
function resetStart(reset: ResetRow, hostStarts: Map<number, number>): number | null {
  return ms(reset.startedAt) ?? (reset.runId !== null ? (hostStarts.get(reset.runId) ?? null) : null) ?? ms(reset.dispatchedAt);
}

export function buildReport(input: ReportInput): Report {
  const from = input.from.getTime();
  const to = input.to.getTime();
  const perf = perfJobsOf(input.history);
  const inWindow = (at: number | null) => at !== null && at >= from && at <= to;
  const started = perf.filter(({ job }) => inWindow(ms(job.startedAt)));
  const resets = input.history.resets.filter((r) => r.dispatchedAt !== null);
  const ended = resets.filter((r) => inWindow(ms(r.endedAt)) && r.outcome !== null);

  const waits = started.filter(({ job }) => job.queuedAt !== null).map(({ job }) => ({ job, wait: Math.max(0, (ms(job.startedAt)! - ms(job.queuedAt)!) / 1000) }));
  const byLabels = new Map<string, number[]>();
  const byHour = new Map<number, number[]>();
  for (const { job, wait } of waits) {
    const key = labelSetOf(job.labels);
    const hour = Math.floor(ms(job.startedAt)! / HOUR) * HOUR;
    byLabels.set(key, byLabels.get(key) ?? []).get(key)!.push(wait);
    byHour.set(hour, byHour.get(hour) ?? []).get(hour)!.push(wait);
  }
  const all = waits.map((w) => w.wait);
  const durations = ended.map((r) => (ms(r.endedAt)! - ms(r.dispatchedAt)!) / 1000);

  // Each pair's own rows, steps and reset starts, made once for both its shares and its troubles.
  const hostStarts = hostStartsByRun(input.history);
  const lives = input.pairs.map((pair): PairLife => ({
    pair,
    jobs: perf.filter((p) => p.pairId === pair.id).map((p) => p.job),
    resets: resets.filter((r) => r.pairId === pair.id),
    steps: recordSteps(input.events.get(pair.id) ?? [], input.records.get(pair.id), from),
    hostStarts,
  }));
  const pairs = lives.map((life) => pairReport(life, from, to));
  const troubles = lives.map((life) => jobTroubles(life, from, to));
  const dirtyStarts = troubles.reduce((sum, t) => sum + t.dirtyStarts, 0);
  const killedByReset = troubles.reduce((sum, t) => sum + t.killedByReset, 0);

  return {
    from: input.from.toISOString(),
    to: input.to.toISOString(),
    jobs: { count: started.length, dirtyStarts, killedByReset },
    queueWaitSeconds: {
      p50: percentile(all, 50),
      p95: percentile(all, 95),
      byLabels: [...byLabels].sort((a, b) => b[1].length - a[1].length || a[0].localeCompare(b[0])).map(([labels, w]) => ({ labels, jobs: w.length, p50: percentile(w, 50), p95: percentile(w, 95) })),
      byHour: [...byHour].sort((a, b) => a[0] - b[0]).map(([hour, w]) => ({ hour: new Date(hour).toISOString(), jobs: w.length, p95: percentile(w, 95) })),
    },
    resets: { ok: ended.filter((r) => r.outcome === "ok").length, failed: ended.filter((r) => r.outcome === "failed").length, secondsP50: percentile(durations, 50), secondsP95: percentile(durations, 95) },
    pairs,
  };
}

/** The record's side of a pair over the window: state, routing and hold, from its events. */
interface RecordStep {
  at: number;
  state: PairState | null;
  routing: "open" | "closed" | null;
  held: boolean;
}

/** The record's steps from the window's start (state null: no record yet), oldest first. */
export function recordSteps(events: PairEvent[], record: PairRecord | undefined, from: number): RecordStep[] {
  const sorted = [...events].map((e, i) => ({ e, i, at: Date.parse(e.at) })).filter((x) => x.at >= from).sort((a, b) => a.at - b.at || b.i - a.i);
  const first = sorted[0]?.e;
  // The window opens in the first event's `from`; with no event, in the record's state now.
  const openState = first ? first.from : (record?.state ?? null);
  let step: RecordStep = { at: from, state: openState, routing: first ? null : (record?.routing ?? null), held: first ? false : (record?.holdBy ?? null) !== null };
  const steps = [step];
  for (const { e, at } of sorted) {
    step = { at, state: e.to, routing: e.routing !== undefined && e.routing !== null ? e.routing : step.routing, held: e.held ?? step.held };
    steps.push(step);
  }
  return steps;
}

/** What the report knows of one pair over the window. */
interface PairLife {
  pair: Pair;
  jobs: JobRow[];
  resets: ResetRow[];
  steps: RecordStep[];
  hostStarts: Map<number, number>;
}

type Activity = "busy" | "resetting" | "outOfRoutingIdle" | "cleanIdle" | "offline" | "none";

function recordActivity(step: RecordStep): Activity {
  if (step.state === null) return "none";
  if (step.state === "busy" || step.state === "resetting" || step.state === "offline") return step.state;
  return step.state === "clean" && step.routing !== "closed" && !step.held ? "cleanIdle" : "outOfRoutingIdle";
}

function pairReport({ pair, jobs, resets, steps, hostStarts }: PairLife, from: number, to: number): PairReport {
  const busy = jobs.map((j) => [ms(j.startedAt)!, ms(j.completedAt) ?? to] as const);
  const resetting = resets.map((r) => [resetStart(r, hostStarts) ?? ms(r.dispatchedAt)!, ms(r.endedAt) ?? to] as const);
  // Cut the window at every change, and give each piece the activity that wins at its start.
  const cuts = [...new Set([from, to, ...steps.map((s) => s.at), ...busy.flat(), ...resetting.flat()].filter((t) => t >= from && t <= to))].sort((a, b) => a - b);
  const totals: Record<Activity, number> = { busy: 0, resetting: 0, outOfRoutingIdle: 0, cleanIdle: 0, offline: 0, none: 0 };
  let s = 0;
  for (let i = 0; i + 1 < cuts.length; i++) {
    const [a, b] = [cuts[i]!, cuts[i + 1]!];
    while (s + 1 < steps.length && steps[s + 1]!.at <= a) s++;
    const record = recordActivity(steps[s]!);
    const within = (spans: readonly (readonly [number, number])[]) => spans.some(([x, y]) => x <= a && a < y);
    const activity: Activity = within(busy) ? "busy" : within(resetting) ? "resetting" : record;
    totals[activity] += b - a;
  }
  const recorded = to - from - totals.none;
  const share = (k: Activity) => (recorded > 0 ? totals[k] / recorded : 0);
  const endedIn = resets.filter((r) => r.outcome !== null && ms(r.endedAt)! >= from && ms(r.endedAt)! <= to);
  return {
    id: pair.id,
    jobs: jobs.filter((j) => ms(j.startedAt)! >= from && ms(j.startedAt)! <= to).length,
    busyShare: share("busy"),
    resettingShare: share("resetting"),
    outOfRoutingIdleShare: share("outOfRoutingIdle"),
    cleanIdleShare: share("cleanIdle"),
    offlineShare: share("offline"),
    recordedSeconds: recorded / 1000,
    resets: { ok: endedIn.filter((r) => r.outcome === "ok").length, failed: endedIn.filter((r) => r.outcome === "failed").length },
  };
}

/** Each reset run's first host job start (the jobs that ran on no VM runner but belong to a dispatched run). */
function hostStartsByRun(history: LabHistory): Map<number, number> {
  const hosts = new Set(history.runners.filter((r) => r.role === "host").map((r) => lower(r.runnerName)));
  const starts = new Map<number, number>();
  for (const job of history.jobs) {
    if (job.startedAt === null || job.runnerName === null || !hosts.has(lower(job.runnerName))) continue;
    const at = ms(job.startedAt)!;
    starts.set(job.runId, Math.min(at, starts.get(job.runId) ?? at));
  }
  return starts;
}

/**
 * Dirty starts and jobs killed by a reset, on one pair. The VM is clean from a successful
 * reset's end until the next job starts on it or a reset begins; a job that starts when it is
 * not is a dirty start.
 * Whether it was clean when the window opened is the record's word (its state then); before a
 * pair's first record nothing is known of it, and a start then is not counted. A job that
 * ended unsuccessfully while a reset of its pair ran was killed by it.
 */
function jobTroubles({ jobs, resets, steps, hostStarts }: PairLife, from: number, to: number): { dirtyStarts: number; killedByReset: number } {
  const moments = [
    ...jobs.map((j) => ({ at: ms(j.startedAt)!, what: "start" as const })),
    // A VM being restored is not clean until the restore ends.
    ...resets.map((r) => ({ at: ms(r.dispatchedAt)!, what: "dirty" as const })),
    // GitHub dates a start to the whole second, the app its own records to the millisecond: a
    // start in the same second as the reset's recorded end came after it (routing opens after).
    ...resets.filter((r) => r.outcome === "ok" && r.endedAt !== null).map((r) => ({ at: ms(r.endedAt)! - GITHUB_TIME_RESOLUTION_MS, what: "clean" as const })),
    // The pair's first record says what it knew then (a new pair counts as dirty).
    ...(steps[0]!.state === null && steps.length > 1 ? [{ at: steps[1]!.at, what: steps[1]!.state === "clean" ? ("clean" as const) : ("dirty" as const) }] : []),
  ].sort((a, b) => a.at - b.at || (a.what === "clean" ? -1 : 1));
  let clean: boolean | null = steps[0]!.state === null ? null : steps[0]!.state === "clean";
  let dirtyStarts = 0;
  for (const m of moments) {
    if (m.at < from) continue;
    if (m.at > to) break;
    if (m.what === "clean") clean = true;
    else if (m.what === "dirty") clean = false;
    else {
      // Before the pair's first record nothing was known of it: a start then is no one's to count.
      if (clean === false) dirtyStarts++;
      clean = false;
    }
  }
  const killedByReset = jobs.filter((j) => {
    const end = ms(j.completedAt);
    if (end === null || end < from || end > to || !UNSUCCESSFUL.has(j.conclusion ?? "")) return false;
    return resets.some((r) => {
      const start = resetStart(r, hostStarts);
      return start !== null && start <= end && end <= (ms(r.endedAt) ?? to);
    });
  }).length;
  return { dirtyStarts, killedByReset };
}
