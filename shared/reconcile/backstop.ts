/**
 * I3's backstop, run by the timer: jobs on a pair's VM runner that finished after the pair's last
 * reset request and that neither the record nor a recorded fact knows of — their job-completed
 * call and webhook delivery never came. One listing of runs completed since the oldest such
 * request (at most a day back), and the jobs of each run not read before by this process.
 */
import type { LabConfig, Pair } from "../lab/config.js";
import type { Job, LabGitHub } from "../github/client.js";
import type { StoredPair } from "../storage/tables.js";
import { lower } from "./observe.js";

const BACKSTOP_HORIZON_MS = 24 * 3_600_000;
/** Runs created up to this long before the horizon may still have ended after it. */
const LONGEST_RUN_MS = 6 * 3_600_000;

export async function unreportedJobs(
  deps: { config: LabConfig; github: LabGitHub },
  stored: Map<string, StoredPair>,
  pairOfRunner: Map<string, Pair>,
  now: Date,
): Promise<{ reports: Map<string, { runId: number; at: string }>; endedJobIds: Set<number>; labJobs: Job[] }> {
  const { config, github } = deps;
  const horizon = now.getTime() - BACKSTOP_HORIZON_MS;
  const oldest = Math.min(...config.pairs.map((p) => Date.parse(stored.get(p.id)?.record.resetDispatchedAt ?? "") || horizon));
  const runs = await github.listCompletedRuns(new Date(Math.max(oldest, horizon) - LONGEST_RUN_MS));
  const found = new Map<string, { runId: number; at: string }>();
  // Every job GitHub says ended on a lab VM: a start delivered late (dated by its arrival) whose
  // end was lost holds its pair busy no longer once GitHub lists it finished.
  const endedJobIds = new Set<number>();
  // The history's too: a job whose call and delivery were both lost is still the lab's story.
  const labJobs: Job[] = [];
  for (const run of runs) {
    if (run.path?.endsWith(`/${config.resetWorkflow.workflow}`)) continue; // reset runs use host runners only
    for (const job of await github.listFinishedRunJobs(run.id)) {
      const pair = pairOfRunner.get(lower(job.runner_name ?? ""));
      if (!pair || !job.completed_at) continue;
      endedJobIds.add(job.id);
      labJobs.push(job);
      const record = stored.get(pair.id)?.record;
      const afterReset = !record?.resetDispatchedAt || job.completed_at > record.resetDispatchedAt;
      const unknown = !record?.lastJobAt || job.completed_at > record.lastJobAt;
      if (afterReset && unknown && job.completed_at > (found.get(pair.id)?.at ?? "")) found.set(pair.id, { runId: run.id, at: job.completed_at });
    }
  }
  return { reports: found, endedJobIds, labJobs };
}
