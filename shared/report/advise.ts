/**
 * The capacity advice: the recorded window replayed in the simulator (replay.ts) with the lab as
 * it is and as proposed (pairs added like an existing one, pairs removed), under the recommended
 * set-up (this app, routing on `lab`, the webhook). Both runs replay the same jobs with the same
 * seed, so the difference between them is the change's.
 *
 * Utilization is the share of the VM runners' time spent running perf jobs: the perf jobs' run
 * time over pairs × the window. Queue waits are from a job's queueing to its start, over the
 * jobs that started in the window, nearest-rank percentiles as in the report.
 *
 * What it cannot see: jobs still queued when the window ended (the history has only started
 * jobs, so a lab whose queue never drained asks for more than it shows), and the state the
 * window opened in (the simulated lab opens clean and idle).
 */
import type { LabConfig, Pair } from "../lab/config.js";
import { simulate, type SimulationResult } from "../sim/simulate.js";
import { percentile } from "./percentile.js";
import type { Workload } from "./read.js";
import { labelSetOf } from "./report.js";
import { labProfile, renameRouting, replayProfile, type Replay, type VmRunner } from "./replay.js";

/** Below these the figures would be noise. */
export const MIN_JOBS = 20;
export const MIN_DAYS = 1;

export interface LabChange {
  /** Pairs to add, each like the first pair whose VM runs `os`. */
  addPairs?: number;
  /** The OS label of the added pairs' VM, e.g. os-windows-2022; needed when the lab has several. */
  os?: string;
  /** Pair ids to take out. */
  remove?: string[];
}

export interface LabFigures {
  pairs: number;
  queueWaitP50Seconds: number;
  queueWaitP95Seconds: number;
  /** Per runs-on label set (as the report's byLabels), busiest first. */
  byLabels: { labels: string; jobs: number; p50Seconds: number; p95Seconds: number }[];
  utilization: number;
  resetsPerDay: number;
  /** Perf jobs of the window that had not started when it ended (in the recorded figures: none, by construction). */
  jobsNotStarted: number;
}

/** What the history itself says of the window: all but what only a simulation knows. */
export type RecordedFigures = Omit<LabFigures, "jobsNotStarted">;

interface WorkloadSize {
  jobs: number;
  days: number;
  from: string;
  to: string;
}

export type Advice =
  | { workload: WorkloadSize; tooFewJobs: true; message: string }
  | {
      workload: WorkloadSize;
      tooFewJobs: false;
      /** The simulated restore per host, and whether measured from the recorded resets. */
      resetMinutesPerHost: number;
      resetMinutesFrom: "measured" | "default";
      /** As the history recorded it: what the simulated `current` should come close to. */
      recorded: RecordedFigures;
      current: LabFigures;
      /** Absent when no change was asked for. */
      proposed?: LabFigures & { change: string };
      /** What the person should know about how far to trust the figures. */
      notes: string[];
    };

/** A change that names no pair or OS of the lab; its message is one line for the person. */
export class ChangeError extends Error {
  override name = "ChangeError";
}

export async function advise(workload: Workload, change: LabChange, options: { seed?: number; progress?: (line: string) => void } = {}): Promise<Advice> {
  const replay = replayProfile(workload);
  const proposal = hasChange(change) ? changedLab(replay, change) : null;
  const size = { jobs: replay.jobs, days: round(replay.days, 2), from: workload.from, to: workload.to };
  if (replay.jobs < MIN_JOBS || replay.days < MIN_DAYS) {
    return { workload: size, tooFewJobs: true, message: `${plural(replay.jobs, "perf job")} in ${plural(round(replay.days, 1), "day")}: too few to say anything (at least ${MIN_JOBS} jobs over ${MIN_DAYS} day are needed); ask for more --days, or wait for more history` };
  }
  const seed = options.seed ?? 1;
  const progress = options.progress ?? (() => {});
  const days = plural(round(replay.days, 1), "day");
  progress(`simulating the lab as it is (${replay.profile.config.pairs.length} pairs, ${days})…`);
  const current = await simulateLab(replay, seed);
  let proposed: (LabFigures & { change: string }) | undefined;
  if (proposal !== null) {
    progress(`simulating the lab as proposed (${proposal.words}; ${days})…`);
    proposed = { change: proposal.words, ...(await simulateLab(proposal.replay, seed)) };
  }
  return {
    workload: size,
    tooFewJobs: false,
    resetMinutesPerHost: round(replay.resetMinutesPerHost, 2),
    resetMinutesFrom: replay.resetMinutesFrom,
    recorded: recordedFigures(workload),
    current,
    ...(proposed ? { proposed } : {}),
    notes: notesOn(replay, proposal?.replay),
  };
}

const hasChange = (change: LabChange) => (change.addPairs ?? 0) > 0 || (change.remove ?? []).length > 0;

/** One simulated window of the replayed lab, in the advice's figures. */
export async function simulateLab(replay: Replay, seed: number): Promise<LabFigures> {
  const result = await simulate({ profile: replay.profile, policy: "lab-reset", seed, days: replay.days, start: replay.start, resetMinutesPerHost: replay.resetMinutesPerHost });
  return simulatedFigures(result, replay.jobs);
}

export function simulatedFigures(result: SimulationResult, jobs: number): LabFigures {
  const { metrics } = result;
  const waits = metrics.queueWaitMinutes.map((minutes, i) => ({ labels: metrics.queueWaitLabels[i]!, seconds: minutes * 60 }));
  const busyMs = result.timelines.reduce((sum, t) => sum + t.jobs.reduce((s, j) => s + Math.max(0, Math.min(j.end, result.end) - j.start), 0), 0);
  return {
    pairs: result.timelines.length,
    ...waitFigures(waits),
    utilization: round(busyMs / (result.timelines.length * (result.end - result.start)), 3),
    resetsPerDay: round(metrics.pairResets / result.days, 1),
    jobsNotStarted: jobs - metrics.perfJobsStarted,
  };
}

/** The same figures from the history rows themselves, the routing labels named as in the replay. */
function recordedFigures(workload: Workload): RecordedFigures {
  const from = Date.parse(workload.from);
  const to = Date.parse(workload.to);
  const routing = renameRouting(workload.config);
  const jobs = workload.jobs.filter((j) => j.startedAt !== null);
  const waits = jobs.filter((j) => j.queuedAt !== null).map((j) => ({ labels: j.labels.map(routing), seconds: Math.max(0, (Date.parse(j.startedAt!) - Date.parse(j.queuedAt!)) / 1000) }));
  const busyMs = jobs.reduce((sum, j) => sum + Math.max(0, Math.min(to, j.completedAt === null ? to : Date.parse(j.completedAt)) - Math.max(from, Date.parse(j.startedAt!))), 0);
  const resets = workload.resets.filter((r) => r.outcome !== null).length;
  return { pairs: workload.config.pairs.length, ...waitFigures(waits), utilization: round(busyMs / (workload.config.pairs.length * (to - from)), 3), resetsPerDay: round(resets / ((to - from) / 86_400_000), 1) };
}

function waitFigures(waits: { labels: readonly string[]; seconds: number }[]): Pick<LabFigures, "queueWaitP50Seconds" | "queueWaitP95Seconds" | "byLabels"> {
  const byLabels = new Map<string, number[]>();
  for (const { labels, seconds } of waits) {
    const key = labelSetOf(labels);
    byLabels.set(key, [...(byLabels.get(key) ?? []), seconds]);
  }
  const all = waits.map((w) => w.seconds);
  return {
    queueWaitP50Seconds: Math.round(percentile(all, 50)),
    queueWaitP95Seconds: Math.round(percentile(all, 95)),
    byLabels: [...byLabels]
      .sort((a, b) => b[1].length - a[1].length || a[0].localeCompare(b[0]))
      .map(([labels, w]) => ({ labels, jobs: w.length, p50Seconds: Math.round(percentile(w, 50)), p95Seconds: Math.round(percentile(w, 95)) })),
  };
}

/**
 * The lab with the change made: each added pair a copy of the first pair whose VM runs the OS,
 * under a new id (vm-added-1…) with its own runner and host labels, so jobs routed to the
 * original by name stay with it; removed pairs gone. A pair or OS the lab lacks is refused.
 */
export function changedLab(replay: Replay, change: LabChange): { replay: Replay; words: string } {
  const { config } = replay.profile;
  const ids = config.pairs.map((p) => p.id);
  for (const id of change.remove ?? []) {
    if (!ids.some((known) => known.toLowerCase() === id.toLowerCase())) throw new ChangeError(`no pair ${id} in the lab; its pairs are ${ids.join(", ")}`);
  }
  const removed = new Set((change.remove ?? []).map((id) => id.toLowerCase()));
  const kept = config.pairs.filter((p) => !removed.has(p.id.toLowerCase()));
  const count = change.addPairs ?? 0;
  const words: string[] = [];
  const vmRunners = new Map(replay.vmRunners);
  const added: Pair[] = [];
  if (count > 0) {
    const template = templatePair(config, replay.vmRunners, change.os);
    const osLabel = replay.vmRunners.get(template.id)!.osLabel;
    const taken = new Set(config.pairs.flatMap((p) => [p.id, p.vmRunnerLabel]).map((s) => s.toLowerCase()));
    for (let n = 1; added.length < count; n++) {
      const id = `vm-added-${n}`;
      if (taken.has(id)) continue;
      added.push(clonePair(template, id));
      const like = replay.vmRunners.get(template.id)!;
      vmRunners.set(id, { osLabel, labels: like.labels.map((l) => (l.toLowerCase() === template.vmRunnerLabel.toLowerCase() ? id : l)) });
    }
    words.push(`+${plural(count, "pair")} like ${template.id} (${osLabel})`);
  }
  if (removed.size > 0) words.push(`without ${config.pairs.filter((p) => removed.has(p.id.toLowerCase())).map((p) => p.id).join(", ")}`);
  const pairs = [...kept, ...added];
  if (pairs.length === 0) throw new ChangeError("removing every pair leaves no lab to simulate; keep at least one, or add pairs");
  const changed: LabConfig = { ...config, pairs };
  return { replay: { ...replay, profile: labProfile(changed, vmRunners, replay.arrivals), vmRunners }, words: words.join(", ") };
}

/** The first pair whose VM runs `os`; without `os`, the lab's only OS. */
function templatePair(config: LabConfig, vmRunners: Map<string, VmRunner>, os: string | undefined): Pair {
  const osOf = (pair: Pair) => vmRunners.get(pair.id)!.osLabel;
  const counts = new Map<string, number>();
  for (const pair of config.pairs) counts.set(osOf(pair), (counts.get(osOf(pair)) ?? 0) + 1);
  const known = [...counts].map(([label, n]) => `${label} (${plural(n, "pair")})`).join(", ");
  if (os === undefined) {
    if (counts.size === 1) return config.pairs[0]!;
    throw new ChangeError(`say which OS the added pairs run with --os; the lab's VMs run ${known}`);
  }
  const template = config.pairs.find((p) => osOf(p).toLowerCase() === os.toLowerCase());
  if (template === undefined) throw new ChangeError(`no pair's VM runs ${os}; the lab's VMs run ${known}`);
  return template;
}

/** Hosts named after the new pair (parent=vm-added-1-parent\localadminuser), VM names as the original's. */
function clonePair(template: Pair, id: string): Pair {
  return {
    id,
    vmRunnerLabel: id,
    hosts: template.hosts.map((h) => {
      const role = h.runnerLabel.split("=")[0]!;
      return { runnerLabel: `${role}=${id}-${role}\\localadminuser`, vmName: h.vmName };
    }),
  };
}

/** What limits the figures: a pair with no recorded runner, resets not measured, jobs no VM could take. */
function notesOn(current: Replay, proposed: Replay | undefined): string[] {
  const notes: string[] = [];
  if (current.profile.config.routingLabels.length === 0) notes.push("the lab config names no routing label: its jobs are replayed as they asked, and may start on a VM not reset yet, as in the lab");
  if (current.resetMinutesFrom === "default") notes.push(`no reset ended ok in the window: resets simulated with the simulator's ${current.resetMinutesPerHost} min restore per host`);
  for (const pair of current.profile.config.pairs) {
    if (current.vmRunners.get(pair.id)!.osLabel === "unknown") notes.push(`${pair.id}: no VM runner recorded for it, so its labels are unknown; simulated taking only jobs routed to it by name`);
  }
  if (proposed !== undefined) {
    for (const labels of unservedLabelSets(proposed)) notes.push(`no VM of the proposed lab carries every label of ${labels}: those jobs never start there`);
  }
  return notes;
}

/** The recorded jobs' label sets that no VM runner of the lab carries in full. */
function unservedLabelSets(replay: Replay): string[] {
  const vms = replay.profile.config.pairs.map((p) => new Set(["self-hosted", ...replay.vmRunners.get(p.id)!.labels].map((l) => l.toLowerCase())));
  const sets = new Map<string, string[]>();
  for (const arrival of replay.arrivals) for (const job of arrival.jobs) sets.set(labelSetOf(job.labels), job.labels);
  return [...sets].filter(([, labels]) => !vms.some((vm) => labels.every((l) => vm.has(l.toLowerCase())))).map(([key]) => key);
}

const round = (value: number, digits: number) => Math.round(value * 10 ** digits) / 10 ** digits;
export const plural = (n: number, what: string) => `${n} ${what}${n === 1 ? "" : "s"}`;
