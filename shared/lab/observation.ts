/**
 * What GitHub showed of a pair, and the one busy rule read from it: shared by the reset decision
 * (decide.ts) and the routing rule (routing.ts). Pure.
 */

/** A runner as the decision needs it. */
export interface RunnerFacts {
  name: string;
  online: boolean;
  /** GitHub's busy flag, or an unfinished job with this runner's name (the flag lags). */
  busy: boolean;
}

/** What GitHub showed about one pair, or why it could not be seen. */
export type PairObservation =
  | {
      ok: true;
      /** Runners carrying the VM runner label (normally one). */
      vmRunners: RunnerFacts[];
      /** For each configured host, the runners carrying its label. */
      hostRunners: RunnerFacts[][];
      /** Run id of an unfinished job on the VM runner, if any. */
      jobRunId: number | null;
    }
  | { ok: false; error: string };

/**
 * The latest job start recorded on the pair's VM (webhook `in_progress`). `heldUntil` is set
 * while no end of it is recorded and the hold has not run out: GitHub's busy flag and job list
 * lag a start, so the recorded start alone holds the pair busy.
 */
export interface JobStart {
  runId: number;
  jobId?: number | null;
  at: string;
  heldUntil: string | null;
}

/**
 * Why the pair's VM is busy, or null when it is idle: a job GitHub lists on it, its busy flag, or
 * a recorded start still holding it (GitHub's flag and job list lag a start). The one busy rule,
 * for resets and routing alike.
 */
export function vmBusy(observation: Extract<PairObservation, { ok: true }>, jobStart: JobStart | undefined, now: Date): string | null {
  if (observation.jobRunId !== null) return `run ${observation.jobRunId} has a job on the VM`;
  if (observation.vmRunners.some((v) => v.busy)) return "the VM runner reports busy";
  const heldUntil = jobStart?.heldUntil ?? null;
  if (heldUntil !== null && now.getTime() < Date.parse(heldUntil)) return `run ${jobStart!.runId} started a job on the VM (webhook); held busy until ${heldUntil} unless its end is recorded`;
  return null;
}
