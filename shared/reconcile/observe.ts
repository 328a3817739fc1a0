/**
 * Observe: one look at GitHub (every runner, every unfinished job), and what it shows of a pair.
 */
import type { Pair } from "../lab/config.js";
import type { PairObservation, RunnerFacts } from "../lab/decide.js";
import type { Job, LabGitHub, Runner } from "../github/client.js";

export const lower = (s: string) => s.toLowerCase();

export interface LabView {
  /** Runners by label (lower case): GitHub's labels are case-insensitive. */
  byLabel: Map<string, Runner[]>;
  /** Unfinished jobs by runner name (lower case). */
  jobByRunner: Map<string, Job>;
}
export type LabLook = LabView | { error: string };

export async function lookAtLab(github: LabGitHub): Promise<LabLook> {
  try {
    const runners = await github.listRunners();
    const activeJobs = await github.listActiveJobs();
    const byLabel = new Map<string, Runner[]>();
    for (const runner of runners) {
      for (const label of new Set(runner.labels.map((l) => lower(l.name)))) byLabel.set(label, [...(byLabel.get(label) ?? []), runner]);
    }
    return { byLabel, jobByRunner: new Map(activeJobs.map((job) => [lower(job.runner_name ?? ""), job])) };
  } catch (error) {
    return { error: error instanceof Error ? error.message : String(error) };
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
