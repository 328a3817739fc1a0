/**
 * What becomes of a claimed pair when the second look says no (act.ts): the records, as pure
 * functions of what was stored and what the second look decided. No I/O, no clock.
 */
import type { Outcome } from "./decide.js";
import type { PairRecord } from "./pair-record.js";

/**
 * The second look found a job started on the VM since the first (or a hold, or a lost claim):
 * back to the record before the claim, busy, with the job the second look learned of noted.
 */
export function busyAfterSecondLook(before: PairRecord | null, again: Outcome): Outcome {
  const base = before ?? again.record;
  const noted: PairRecord = { ...base, jobSinceReset: base.jobSinceReset || again.record.jobSinceReset, lastJobRunId: again.record.lastJobRunId, lastJobAt: again.record.lastJobAt };
  return { ...again, decision: "deferred-busy", dispatch: false, record: noted };
}

/**
 * The claim released: the record as the second look decided it, keeping what others wrote since
 * the claim — a job recorded meanwhile (which makes a clean pair dirty, as decide would), the
 * routing pass's fields, an admin's hold — and not counting the attempt that never happened.
 */
export function releasedRecord(current: PairRecord, again: PairRecord, reason: string): PairRecord {
  const theirs = current.lastJobAt !== null && (again.lastJobAt ?? "") < current.lastJobAt;
  const jobSinceReset = again.jobSinceReset || current.jobSinceReset;
  return {
    ...again,
    state: jobSinceReset && again.state === "clean" ? "dirty" : again.state,
    jobSinceReset,
    lastJobRunId: theirs ? current.lastJobRunId : again.lastJobRunId,
    lastJobAt: theirs ? current.lastJobAt : again.lastJobAt,
    attempts: Math.max(0, current.attempts - 1),
    routing: current.routing,
    routingSince: current.routingSince,
    routingError: current.routingError,
    holdBy: current.holdBy,
    holdReason: current.holdReason,
    holdSince: current.holdSince,
    reason,
  };
}
