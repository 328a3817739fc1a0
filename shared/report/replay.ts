/**
 * A recorded window as a simulator profile: the lab's perf jobs arriving when they were queued,
 * each with its runs-on labels and as long as it ran, on VM runners carrying the labels the real
 * ones carried, with resets as long as the real ones took. `advise` simulates it as the lab is
 * and as proposed.
 */
import type { LabConfig, Pair } from "../lab/config.js";
import { RESET_STEP_DEFAULTS } from "../sim/lab.js";
import type { PerfRunArrival, Profile } from "../sim/workload.js";
import type { RunnerRow } from "../storage/history.js";
import { percentile } from "./percentile.js";
import type { Workload } from "./read.js";

const DAY_MS = 86_400_000;
/** The simulated app routes perf jobs on this label (the recommended set-up). */
export const SIM_ROUTING_LABEL = "lab";
const OS_READ_ONLY = /^(windows|linux|macos)$/i;

/** What a pair's VM runner carries: its OS label (`os-windows-2022`, else GitHub's `windows`/`linux`) and all its labels. */
export interface VmRunner {
  osLabel: string;
  labels: string[];
}

export interface Replay {
  profile: Profile;
  start: Date;
  days: number;
  /** Perf jobs in the window (each arrives once in the simulation). */
  jobs: number;
  /** The perf runs as they arrived, which `profile` replays. */
  arrivals: PerfRunArrival[];
  /** Each pair's VM runner by pair id; one never recorded carries only the routing label and its own. */
  vmRunners: Map<string, VmRunner>;
  /** SimLab's restore time per host that makes a simulated reset last as long as the recorded ones. */
  resetMinutesPerHost: number;
  /** "default": no reset ended ok in the window, so the simulator's own restore time is used. */
  resetMinutesFrom: "measured" | "default";
}

export function replayProfile(recorded: Workload): Replay {
  // GET /api/workload sends started jobs only; a row without its start could not be replayed.
  const workload = { ...recorded, jobs: recorded.jobs.filter((j) => j.startedAt !== null) };
  const from = Date.parse(workload.from);
  const to = Date.parse(workload.to);
  const routing = renameRouting(workload.config);
  const vmRunners = new Map(workload.config.pairs.map((pair) => [pair.id, vmRunnerOf(pair, workload.runners, routing)] as const));
  const reset = resetMinutes(workload);
  const arrivals = arrivalsOf(workload, from, to, routing);
  return {
    profile: labProfile(workload.config, vmRunners, arrivals),
    start: new Date(from),
    days: (to - from) / DAY_MS,
    jobs: workload.jobs.length,
    arrivals,
    vmRunners,
    resetMinutesPerHost: reset ?? RESET_STEP_DEFAULTS.resetMinutesPerHost,
    resetMinutesFrom: reset === null ? "default" : "measured",
  };
}

/** A profile over `config` whose VM runners are `vmRunners` and whose perf runs are `arrivals`. */
export function labProfile(config: LabConfig, vmRunners: Map<string, VmRunner>, arrivals: PerfRunArrival[]): Profile {
  return {
    name: "recorded",
    description: `the recorded workload on ${config.pairs.length} pairs`,
    config,
    osLabel: (pair) => vmRunners.get(pair.id)?.osLabel ?? "unknown",
    vmLabels: (pair) => vmRunners.get(pair.id)?.labels ?? [SIM_ROUTING_LABEL, pair.vmRunnerLabel],
    workload: () => arrivals,
  };
}

/**
 * The simulated app routes on `lab`: the lab's own routing labels are replayed as `lab`, on jobs
 * and runners alike, so a lab routing on another label is simulated as it works.
 */
export function renameRouting(config: LabConfig): (label: string) => string {
  const routing = new Set(config.routingLabels.map((l) => l.toLowerCase()));
  return (label) => (routing.has(label.toLowerCase()) ? SIM_ROUTING_LABEL : label);
}

/**
 * Jobs of a run queued together arrive together, at their queue time (their start when no
 * trigger saw them queued); a job a run queued later (`needs:`) arrives then, not with the first.
 * A job still running when the window ended runs until then; one queued before the window opened
 * arrives as it opens (the simulated lab starts clean and idle).
 */
function arrivalsOf(workload: Workload, from: number, to: number, routing: (label: string) => string): PerfRunArrival[] {
  const arrivals = new Map<string, PerfRunArrival>();
  for (const job of workload.jobs) {
    const started = Date.parse(job.startedAt!);
    const queued = job.queuedAt === null ? started : Math.min(started, Date.parse(job.queuedAt));
    const atMinutes = Math.max(0, (queued - from) / 60_000);
    const key = `${job.runId} ${atMinutes}`;
    const arrival = arrivals.get(key) ?? { atMinutes, jobs: [] };
    arrival.jobs.push({ labels: job.labels.map(routing), minutes: Math.max(0, ((job.completedAt === null ? to : Date.parse(job.completedAt)) - started) / 60_000) });
    arrivals.set(key, arrival);
  }
  return [...arrivals.values()].sort((a, b) => a.atMinutes - b.atMinutes);
}

/** The pair's VM runner as last recorded, its routing labels as `lab` (present: the simulated app takes them off). */
function vmRunnerOf(pair: Pair, runners: RunnerRow[], routing: (label: string) => string): VmRunner {
  const row = runners.filter((r) => r.role === "vm" && r.pairId === pair.id).sort((a, b) => b.touchedAt.localeCompare(a.touchedAt))[0];
  const labels = (row?.labels ?? [pair.vmRunnerLabel]).map(routing);
  if (!labels.some((l) => l.toLowerCase() === SIM_ROUTING_LABEL)) labels.push(SIM_ROUTING_LABEL);
  const osLabel = labels.find((l) => /^os-/i.test(l)) ?? labels.find((l) => OS_READ_ONLY.test(l))?.toLowerCase() ?? "unknown";
  return { osLabel, labels };
}

/**
 * A simulated reset (SimLab) is: the run picked up (pickupSeconds) and its check (checkSeconds),
 * the next step picked up (stepPickupSeconds), then both hosts' restores side by side
 * (resetMinutesPerHost each); the app records it ended once it sees the restores done. So the
 * restore time is the recorded reset's median (from its first host job's start when recorded,
 * else from the dispatch, to its record's end) less the simulated steps before the restores.
 * The seconds the app takes to see the end are in both, and left in. Resets that failed are
 * left out: the simulated lab's never fail. Null when no reset ended ok.
 */
function resetMinutes(workload: Workload): number | null {
  const { pickupSeconds, checkSeconds, stepPickupSeconds } = RESET_STEP_DEFAULTS;
  const restores = workload.resets.flatMap((r) => {
    if (r.outcome !== "ok" || r.endedAt === null) return [];
    const ended = Date.parse(r.endedAt);
    const seconds = r.startedAt !== null ? (ended - Date.parse(r.startedAt)) / 1000 - checkSeconds - stepPickupSeconds : (ended - Date.parse(r.dispatchedAt!)) / 1000 - pickupSeconds - checkSeconds - stepPickupSeconds;
    return [seconds / 60];
  });
  // A restore never takes less than a few seconds: a shorter recorded reset was mostly the steps around it.
  return restores.length === 0 ? null : Math.max(0.1, percentile(restores, 50));
}
