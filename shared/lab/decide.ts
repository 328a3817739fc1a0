/**
 * The decision for one pair: a pure function of the stored record and what GitHub showed.
 * No I/O and no clock, so a table of cases tests every rule.
 */
import type { Pair } from "./config.js";
import { newPairRecord, type PairEvent, type PairRecord, type PairState, type Trigger } from "./pair-record.js";
import { vmBusy, type JobStart, type PairObservation, type RunnerFacts } from "./observation.js";
import { routingVerdict, type RoutingVerdict } from "./routing.js";

export type { JobStart, PairObservation, RunnerFacts } from "./observation.js";

export type Decision =
  | "reset-dispatched"
  | "deferred-busy"
  | "already-resetting"
  | "skipped-offline"
  | "skipped-fresh"
  | "not-needed"
  /** The reset run in flight failed or timed out; a later trigger retries after the backoff. */
  | "reset-failed"
  /** A failed pair waits for its backoff to pass. */
  | "retry-later"
  /** maxResetAttempts resets failed in a row: left `failed` until an admin clears it. */
  | "gave-up"
  /** A GitHub fact the decision needs could not be read: fail closed. */
  | "deferred-unknown"
  /** An admin holds the pair out of service: no reset is dispatched until the hold is released. */
  | "held";

/** The reset run the record is waiting for, as last seen on GitHub. */
export type ResetRunFacts =
  | { found: false }
  | { found: true; runId: number; status: string; conclusion: string | null; completedAt: string | null; url: string }
  | { unknown: string };

export interface DecideInput {
  pair: Pair;
  record: PairRecord | null;
  observation: PairObservation;
  /** Facts about the reset run in flight; undefined when not looked up (never judged then). */
  resetRun?: ResetRunFacts;
  /** A job of this run ended on the pair's VM (a recorded fact, or the timer's backstop); `at` is when. */
  jobReport?: { runId: number; at: string };
  jobStart?: JobStart;
  trigger: Trigger;
  now: Date;
  /** Id to use if this decision dispatches a reset. */
  requestId: string;
  freshForMinutes: number;
  resetTimeoutMinutes: number;
  maxResetAttempts: number;
  retryBackoffMinutes: number;
}

export type EventDraft = Omit<PairEvent, "pairId" | "at" | "trigger">;

export interface Outcome {
  decision: Decision;
  /** The record to store; equal to the input record when nothing changed. */
  record: PairRecord;
  changed: boolean;
  /** Claim the pair and dispatch a reset with `record.resetRequestId`. */
  dispatch: boolean;
  /** A reset run given up on (timed out): cancel it once this outcome is stored. */
  cancelRunId?: number;
  events: EventDraft[];
  /** Whether the VM runner may carry the routing labels with this record (shared/lab/routing.ts). */
  routing: RoutingVerdict;
}

const minutes = (ms: number) => ms / 60_000;

export function decide(input: DecideInput): Outcome {
  const { pair, observation, now } = input;
  const before = input.record ?? newPairRecord(pair.id, now);
  const r: PairRecord = { ...before };
  const events: EventDraft[] = [];
  // A pair's first event has no `from`: the history then knows when its record began.
  const from = () => (input.record === null && events.length === 0 ? null : r.state);
  const setState = (state: PairState, reason: string) => {
    if (r.state !== state) {
      events.push({ kind: "state", from: from(), to: state, reason, resetRequestId: r.resetRequestId, resetRunId: r.resetRunId });
    }
    r.state = state;
    r.reason = reason;
  };
  const fail = (error: string): Outcome => {
    const failed = failedRecord(r, error, now, input);
    setState("failed", failed.reason);
    Object.assign(r, failed);
    return finish("reset-failed");
  };
  let cancelRunId: number | undefined;
  const finish = (decision: Decision, dispatch = false): Outcome => {
    const changed = input.record === null || JSON.stringify({ ...r, updatedAt: "" }) !== JSON.stringify({ ...before, updatedAt: "" });
    if (input.record === null && events.length === 0) events.push({ kind: "state", from: null, to: r.state, reason: r.reason, resetRequestId: r.resetRequestId, resetRunId: r.resetRunId });
    if (changed) r.updatedAt = now.toISOString();
    const record = changed ? r : before;
    const routing = routingVerdict({ state: record.state, holdBy: record.holdBy, observation, ...(input.jobStart ? { jobStart: input.jobStart } : {}), now });
    return { decision, record, changed, dispatch, events, routing, ...(cancelRunId !== undefined ? { cancelRunId } : {}) };
  };

  const folded = foldJobs(r, [input.jobReport, input.jobStart]);
  if (folded.state !== r.state) setState(folded.state, folded.reason);
  Object.assign(r, folded);
  if (observation.ok && observation.jobRunId !== null) {
    // Seen running now: remember it, even mid-reset, so a finished reset does not hide it.
    r.jobSinceReset = true;
    r.lastJobRunId = observation.jobRunId;
    r.lastJobAt = now.toISOString();
  }

  // 1. A reset in flight is followed until it ends; nothing else happens to the pair meanwhile.
  if (r.state === "resetting") {
    const run = input.resetRun;
    if (run && "found" in run && run.found) r.resetRunId = run.runId;
    if (run && "found" in run && run.found && run.status === "completed") {
      if (run.conclusion === "success") {
        r.resetCompletedAt = run.completedAt ?? now.toISOString();
        r.attempts = 0;
        r.retryAfter = null;
        r.lastError = null;
        // A job that ended after the dispatch ran on a VM that the reset may already have restored.
        r.jobSinceReset = r.lastJobAt !== null && r.resetDispatchedAt !== null && r.lastJobAt > r.resetDispatchedAt;
        setState(r.jobSinceReset ? "dirty" : "clean", `reset run ${run.runId} succeeded`);
      } else {
        return fail(`reset run ${run.runId} ended with conclusion "${run.conclusion ?? "none"}" (attempt ${r.attempts}); see ${run.url}`);
      }
    } else if (run && !("unknown" in run) && r.resetDispatchedAt !== null) {
      const waited = minutes(now.getTime() - Date.parse(r.resetDispatchedAt));
      if (waited > input.resetTimeoutMinutes) {
        // A run still queued could restore the VM hours later, unchecked: cancel it.
        if (run.found) cancelRunId = run.runId;
        return fail(
          run.found
            ? `reset run ${run.runId} did not complete within ${input.resetTimeoutMinutes} minutes (status "${run.status}"); see ${run.url}`
            : `no reset run for request ${r.resetRequestId} appeared within ${input.resetTimeoutMinutes} minutes; the dispatch was lost or the workflow's run-name does not contain request_id`,
        );
      }
      return finish("already-resetting");
    } else {
      return finish("already-resetting");
    }
  }

  // 2. Fail closed: without a full view of the pair's runners and jobs, change nothing but the error.
  if (!observation.ok) {
    r.lastError = observation.error;
    return finish("deferred-unknown");
  }

  const busy = vmBusy(observation, input.jobStart, now);
  if (busy !== null) {
    r.jobSinceReset = true;
    setState("busy", busy);
    return finish("deferred-busy");
  }

  const blockers = resetBlockers(pair, observation.vmRunners, observation.hostRunners);
  if (blockers.length > 0) {
    setState("offline", blockers.join("; "));
    return finish("skipped-offline");
  }

  // 3. Idle and reachable.
  if (r.state === "busy") setState("dirty", "the VM's job finished");
  // Cleanliness comes from what ran, not from a blip offline: a pair back online with no job since
  // a completed reset is clean again.
  const dirty = r.jobSinceReset || r.state === "dirty" || r.state === "failed" || r.resetCompletedAt === null;
  if (!dirty && r.state !== "clean") setState("clean", "runners online again; no job since the last reset");
  // A hold stops resets (an admin's "reset now" included), not the record: the state still follows GitHub.
  if (r.holdBy !== null) return finish("held");
  // An admin's "reset now" overrides freshness, the backoff and giving up; never a busy VM (above).
  const asked = r.resetRequestedAt !== null;
  if (asked) return claimReset(`an admin asked for it (${r.resetRequestedBy ?? "admin"})`);
  if (!dirty) {
    if (input.trigger !== "timer") return finish("not-needed");
    const sinceReset = r.resetCompletedAt === null ? Infinity : minutes(now.getTime() - Date.parse(r.resetCompletedAt));
    if (sinceReset < input.freshForMinutes) return finish("skipped-fresh");
  }

  // I5: failed resets are retried with backoff, and not at all after maxResetAttempts in a row.
  if (r.attempts >= input.maxResetAttempts && r.state !== "clean") {
    setState("failed", `gave up after ${r.attempts} failed resets (last error: ${r.lastError ?? "unknown"}); fix the cause, then ask for a reset (lab-reset reset <pair>, or POST /api/pairs/{id}/reset)`);
    return finish("gave-up");
  }
  if (r.state === "failed" && r.retryAfter !== null && now.getTime() < Date.parse(r.retryAfter)) return finish("retry-later");

  return claimReset(dirty ? (r.state === "failed" ? "retrying a failed reset" : "the VM ran a job or its state is unknown") : `periodic reset: last reset over ${input.freshForMinutes} minutes ago`);

  function claimReset(why: string): Outcome {
    if (asked) {
      r.attempts = 0;
      r.retryAfter = null;
      r.resetRequestedAt = null;
    }
    r.resetRequestId = input.requestId;
    r.resetRunId = null;
    r.resetDispatchedAt = now.toISOString();
    r.attempts += 1;
    setState("resetting", `reset requested (${why})`);
    return finish("reset-dispatched", true);
  }
}

/**
 * A record with the recorded job ends and starts folded in: a job after the last reset request
 * makes the VM used (a clean pair dirty). A job that ended or started before the last reset was
 * requested is that reset's to clean. decide's first step; job-completed answers from it too.
 */
export function foldJobs(record: PairRecord, jobs: ({ runId: number; at: string } | undefined)[]): PairRecord {
  const r = { ...record };
  for (const job of jobs) {
    if (!job || (r.resetDispatchedAt !== null && job.at <= r.resetDispatchedAt)) continue;
    r.jobSinceReset = true;
    r.lastJobRunId = job.runId;
    if (r.lastJobAt === null || job.at > r.lastJobAt) r.lastJobAt = job.at;
    if (r.state === "clean") Object.assign(r, { state: "dirty", reason: `run ${job.runId} used the VM` });
  }
  return r;
}

/** Why a reset cannot run now: the reset job needs both host runners, and the VM runner must come back. */
export function resetBlockers(pair: Pair, vmRunners: RunnerFacts[], hostRunners: RunnerFacts[][]): string[] {
  const blockers: string[] = [];
  if (vmRunners.length === 0) blockers.push(`no runner has label ${pair.vmRunnerLabel}`);
  else if (!vmRunners.some((v) => v.online)) blockers.push(`VM runner ${vmRunners.map((v) => v.name).join(", ")} is offline`);
  pair.hosts.forEach((host, i) => {
    const runners = hostRunners[i] ?? [];
    if (runners.length === 0) blockers.push(`no host runner has label ${host.runnerLabel}`);
    else if (runners.some((h) => h.busy)) blockers.push(`host runner ${runners.map((h) => h.name).join(", ")} is busy`);
    else if (!runners.some((h) => h.online)) blockers.push(`host runner ${runners.map((h) => h.name).join(", ")} is offline`);
  });
  return blockers;
}

/** A pair whose reset failed: the error, and when it may be retried (doubling backoff, at most a day). */
export function failedRecord(r: PairRecord, error: string, now: Date, limits: { maxResetAttempts: number; retryBackoffMinutes: number }): PairRecord {
  const backoffMinutes = Math.min(limits.retryBackoffMinutes * 2 ** Math.max(0, r.attempts - 1), 24 * 60);
  const retryAfter = new Date(now.getTime() + backoffMinutes * 60_000).toISOString();
  const next = r.attempts >= limits.maxResetAttempts ? `gave up after ${r.attempts} failed resets` : `retrying after ${retryAfter}`;
  return { ...r, state: "failed", lastError: error, retryAfter, reason: `${error}; ${next}` };
}
