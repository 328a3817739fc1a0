/**
 * Writing a pair's record: a decision to dispatch, once written with the record's ETag, is a
 * claim that only one reconcile can win. A claim is released, or patched with the dispatch's
 * answer, only while the record still carries its request id.
 */
import type { Pair } from "../lab/config.js";
import { decide, type DecideInput, type Outcome } from "../lab/decide.js";
import type { PairEvent, PairRecord, Trigger } from "../lab/pair-record.js";
import type { LabGitHub } from "../github/client.js";
import type { Logger } from "../logger.js";
import { StoreConflictError, type PairStore, type StoredPair } from "../storage/tables.js";
import type { Tally } from "./tally.js";

export const MAX_CONFLICT_RETRIES = 5;

export interface ClaimDeps {
  store: PairStore;
  github: LabGitHub;
  clock: () => Date;
  logger: Logger;
}

export interface Claim {
  pair: Pair;
  /** The record the claim replaced, and the input that decided it: the second look decides again from them. */
  before: StoredPair | null;
  input: DecideInput;
  etag: string;
  outcome: Outcome;
}

/**
 * Decides the pair and writes the outcome; on a conflict, decides again from what the other
 * writer stored (their reset run, if any, is theirs to follow, so its facts are not reused).
 */
export async function decideAndWrite(deps: ClaimDeps, trigger: Trigger, input: DecideInput, current: StoredPair | null, tally: Tally, newRequestId: () => string): Promise<Claim | null> {
  const { pair } = input;
  for (let attempt = 0; ; attempt++) {
    const outcome = decide({ ...input, record: current?.record ?? null, requestId: newRequestId(), now: deps.clock() });
    if (!outcome.changed) {
      tally.note(pair, outcome);
      return null;
    }
    try {
      const etag = current === null ? await deps.store.createPair(outcome.record) : await deps.store.replacePair(outcome.record, current.etag);
      await appendEvents(deps, trigger, outcome.record, outcome.events.map((e) => ({ ...e, pairId: pair.id, at: outcome.record.updatedAt, trigger })));
      if (outcome.cancelRunId !== undefined) await cancelGivenUpRun(deps, pair, outcome.cancelRunId, tally);
      tally.note(pair, outcome);
      return outcome.dispatch ? { pair, before: current, input, etag, outcome } : null;
    } catch (error) {
      const keep = { ...outcome, record: current?.record ?? outcome.record, dispatch: false };
      if (!(error instanceof StoreConflictError) || attempt >= MAX_CONFLICT_RETRIES) {
        tally.note(pair, keep, (error as Error).message);
        return null;
      }
      try {
        current = await deps.store.getPair(pair.id);
      } catch (readError) {
        tally.note(pair, keep, (readError as Error).message);
        return null;
      }
      input = { ...input, resetRun: undefined };
    }
  }
}

async function cancelGivenUpRun(deps: ClaimDeps, pair: Pair, runId: number, tally: Tally) {
  try {
    await deps.github.cancelRun(runId);
    deps.logger.warn(`pair ${pair.id}: cancelled reset run ${runId}, which did not complete in time`);
  } catch (error) {
    tally.errors.push(`pair ${pair.id}: ${(error as Error).message}; cancel run ${runId} by hand so it cannot restore the VM later`);
  }
}

/** Applies `change` to the pair while it still carries our request id, re-reading on conflicts. */
export async function patchClaim(deps: ClaimDeps, claim: Claim, change: (r: PairRecord) => PairRecord): Promise<{ record: PairRecord; applied: boolean } | null> {
  const requestId = claim.outcome.record.resetRequestId;
  let current: StoredPair | null = { record: claim.outcome.record, etag: claim.etag };
  for (let attempt = 0; attempt <= MAX_CONFLICT_RETRIES && current; attempt++) {
    if (current.record.resetRequestId !== requestId || current.record.state !== "resetting") return { record: current.record, applied: false };
    const next = { ...change(current.record), updatedAt: deps.clock().toISOString() };
    try {
      await deps.store.replacePair(next, current.etag);
      return { record: next, applied: true };
    } catch (error) {
      if (!(error instanceof StoreConflictError)) {
        deps.logger.error(`pair ${claim.pair.id}: Table Storage update of claim ${requestId} failed: ${(error as Error).message}`);
        return null;
      }
      current = await deps.store.getPair(claim.pair.id).catch(() => null);
    }
  }
  return null;
}

/**
 * The second look says no: put the pair back as the second look decided, keeping what other
 * reconciles recorded about its jobs meanwhile, as long as the claim is still ours.
 */
export async function releaseClaim(deps: ClaimDeps, trigger: Trigger, claim: Claim, again: Outcome, why: string, tally: Tally): Promise<void> {
  const { pair } = claim;
  const requestId = claim.outcome.record.resetRequestId;
  const reason = `claim released before dispatch: ${why.replace(/^claim released before dispatch: /, "")}`;
  const released = await patchClaim(deps, claim, (current) => {
    const theirs = current.lastJobAt !== null && (again.record.lastJobAt ?? "") < current.lastJobAt;
    const jobSinceReset = again.record.jobSinceReset || current.jobSinceReset;
    return {
      ...again.record,
      // A job recorded meanwhile makes a clean pair dirty, as decide would.
      state: jobSinceReset && again.record.state === "clean" ? "dirty" : again.record.state,
      jobSinceReset,
      lastJobRunId: theirs ? current.lastJobRunId : again.record.lastJobRunId,
      lastJobAt: theirs ? current.lastJobAt : again.record.lastJobAt,
      // The claim counted an attempt that never happened.
      attempts: Math.max(0, current.attempts - 1),
      // Written by others since the claim (the routing pass, an admin's hold): theirs to keep.
      routing: current.routing,
      routingSince: current.routingSince,
      routingError: current.routingError,
      holdBy: current.holdBy,
      holdReason: current.holdReason,
      holdSince: current.holdSince,
      reason,
    };
  });
  if (released === null) {
    // Left as a claim without a dispatch: it times out into `failed` and is retried, never dispatched twice.
    tally.note(pair, { ...again, record: claim.outcome.record, dispatch: false }, `could not release claim ${requestId}`);
    return;
  }
  if (released.applied) {
    await appendEvents(deps, trigger, released.record, [
      { pairId: pair.id, at: released.record.updatedAt, kind: "state", trigger, from: "resetting", to: released.record.state, reason, resetRequestId: requestId, resetRunId: null },
    ]);
    deps.logger.warn(`pair ${pair.id}: not reset, ${reason}`);
  }
  tally.note(pair, { ...again, record: released.record, dispatch: false });
}

export async function appendEvents(deps: { store: PairStore; logger: Logger }, trigger: Trigger, record: PairRecord, events: PairEvent[]) {
  if (events.length === 0) return;
  try {
    await deps.store.appendEvents(events);
  } catch (error) {
    // The pair record is the truth; a lost history line must not undo a decision already stored.
    deps.logger.error(`pair ${record.pairId}: event not recorded (trigger ${trigger}): ${(error as Error).message}`);
  }
}
