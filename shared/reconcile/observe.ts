/**
 * Observe: a look at GitHub (every runner; with the cross-check, every unfinished job that can be
 * on a lab VM), and what it shows of a pair.
 */
import type { Pair } from "../lab/config.js";
import type { PairObservation, RunnerFacts } from "../lab/decide.js";
import type { Job, LabGitHub, Runner } from "../github/client.js";

export const lower = (s: string) => s.toLowerCase();

export interface LabView {
  /** Runners by label (lower case): GitHub's labels are case-insensitive. */
  byLabel: Map<string, Runner[]>;
  /** Unfinished jobs by runner name (lower case); empty unless `jobsRead`. */
  jobByRunner: Map<string, Job>;
  /** Whether GitHub's unfinished jobs were read (the busy flag's cross-check). */
  jobsRead: boolean;
}
export type LabLook = LabView | { error: string };

/**
 * The runner list, and with `activeJobs` GitHub's unfinished jobs too: the cross-check of the
 * busy flag (it lags a job's start), a request per in-progress run, taken only where a decision
 * needs it (before a dispatch, before routing is opened).
 */
export async function lookAtLab(github: LabGitHub, options: { activeJobs: boolean }): Promise<LabLook> {
  try {
    const runners = await github.listRunners();
    const activeJobs = options.activeJobs ? await github.listActiveJobs() : [];
    const byLabel = new Map<string, Runner[]>();
    for (const runner of runners) {
      for (const label of new Set(runner.labels.map((l) => lower(l.name)))) byLabel.set(label, [...(byLabel.get(label) ?? []), runner]);
    }
    return { byLabel, jobByRunner: new Map(activeJobs.map((job) => [lower(job.runner_name ?? ""), job])), jobsRead: options.activeJobs };
  } catch (error) {
    return { error: error instanceof Error ? error.message : String(error) };
  }
}

/** Older than this, the cross-check is taken again (dispatches are spaced ≥ 1 s apart). */
const STALE_CROSS_CHECK_MS = 10_000;

/** The look with unfinished jobs, taken at most once per 10 s of a reconcile, by act and routing alike. */
export class CrossCheck {
  private last: { look: LabLook; takenAt: number } | null = null;
  constructor(private readonly github: LabGitHub) {}

  async look(): Promise<LabLook> {
    if (this.last === null || performance.now() - this.last.takenAt > STALE_CROSS_CHECK_MS) {
      this.last = { look: await lookAtLab(this.github, { activeJobs: true }), takenAt: performance.now() };
    }
    return this.last.look;
  }
}

/** The runners carrying the pair's VM runner label (normally one; stale duplicates happen). */
export const vmRunnersOf = (pair: Pair, view: LabView) => view.byLabel.get(lower(pair.vmRunnerLabel)) ?? [];

/** Each lab VM runner's name (lower case) → its pair. */
export function pairByRunnerName(pairs: Pair[], view: LabView): Map<string, Pair> {
  const map = new Map<string, Pair>();
  for (const pair of pairs) for (const runner of vmRunnersOf(pair, view)) map.set(lower(runner.name), pair);
  return map;
}

/** The pair as GitHub shows it: runners by label, busy by flag or by an unfinished job (the flag lags). */
export function observePair(pair: Pair, view: LabLook): PairObservation {
  if ("error" in view) return { ok: false, error: `not reset: could not read GitHub (${view.error})` };
  const { jobByRunner } = view;
  const withLabel = (label: string) => view.byLabel.get(lower(label)) ?? [];
  const facts = (r: Runner): RunnerFacts => ({ name: r.name, online: r.status === "online", busy: r.busy || jobByRunner.has(lower(r.name)) });
  const vm = vmRunnersOf(pair, view);
  const job = vm.map((r) => jobByRunner.get(lower(r.name))).find((j) => j !== undefined);
  return {
    ok: true,
    vmRunners: vm.map(facts),
    hostRunners: pair.hosts.map((h) => withLabel(h.runnerLabel).map(facts)),
    jobRunId: job?.run_id ?? null,
  };
}
