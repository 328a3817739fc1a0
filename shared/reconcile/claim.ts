/**
 * Writing a pair's record from the reconcile, all through updatePair: a decision to dispatch,
 * once written with the record's ETag, is a claim that only one reconcile can win. A claim is
 * released, or patched with the dispatch's answer, only while the record still carries its request id.
 */
import type { Pair } from "../lab/config.js";
import { releasedRecord } from "../lab/claims.js";
import { decide, type DecideInput, type Outcome } from "../lab/decide.js";
import type { PairEvent, PairRecord, Trigger } from "../lab/pair-record.js";
import type { LabGitHub } from "../github/client.js";
import type { Logger } from "../logger.js";
import { StoreConflictError, type PairStore, type StoredPair } from "../storage/tables.js";
import { updatePair } from "../storage/update-pair.js";
import type { Tally } from "./tally.js";

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
  let used = input;
  let outcome = decide({ ...input, record: current?.record ?? null, requestId: newRequestId(), now: deps.clock() });
  try {
    const update = await updatePair(
      deps,
      pair.id,
      (stored, attempt) => {
        if (attempt > 0) {
          used = { ...input, resetRun: undefined };
          outcome = decide({ ...used, record: stored?.record ?? null, requestId: newRequestId(), now: deps.clock() });
        }
        return outcome.changed ? { record: outcome.record, events: outcome.events.map((e) => ({ ...e, pairId: pair.id, at: outcome.record.updatedAt, trigger })) } : null;
      },
      current,
    );
    if (!update.written) {
      const kept = { ...outcome, record: update.current?.record ?? outcome.record, dispatch: false };
      if (update.conflict) tally.note(pair, kept, new StoreConflictError(pair.id).message);
      else tally.note(pair, outcome);
      return null;
    }
    if (outcome.cancelRunId !== undefined) await cancelGivenUpRun(deps, pair, outcome.cancelRunId, tally);
    tally.note(pair, outcome);
    return outcome.dispatch ? { pair, before: update.before, input: used, etag: update.etag, outcome } : null;
  } catch (error) {
    tally.note(pair, { ...outcome, record: current?.record ?? outcome.record, dispatch: false }, (error as Error).message);
    return null;
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

/**
 * Applies `change` to the pair while it still carries our request id (and its events with it);
 * `applied: false` when the claim is no longer ours, null when storage failed.
 */
export async function patchClaim(deps: ClaimDeps, claim: Claim, change: (r: PairRecord) => { record: PairRecord; events?: PairEvent[] }): Promise<{ record: PairRecord; applied: boolean } | null> {
  const requestId = claim.outcome.record.resetRequestId;
  try {
    const update = await updatePair(
      deps,
      claim.pair.id,
      (current) => {
        if (current === null || current.record.resetRequestId !== requestId || current.record.state !== "resetting") return null;
        const next = change(current.record);
        return { ...next, record: { ...next.record, updatedAt: deps.clock().toISOString() } };
      },
      { record: claim.outcome.record, etag: claim.etag },
    );
    if (update.written) return { record: update.record, applied: true };
    return update.conflict || update.current === null ? null : { record: update.current.record, applied: false };
  } catch (error) {
    deps.logger.error(`pair ${claim.pair.id}: Table Storage update of claim ${requestId} failed: ${(error as Error).message}`);
    return null;
  }
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
    const record = { ...releasedRecord(current, again.record, reason), updatedAt: deps.clock().toISOString() };
    return { record, events: [{ pairId: pair.id, at: record.updatedAt, kind: "state", trigger, from: "resetting", to: record.state, reason, resetRequestId: requestId, resetRunId: null }] };
  });
  if (released === null) {
    // Left as a claim without a dispatch: it times out into `failed` and is retried, never dispatched twice.
    tally.note(pair, { ...again, record: claim.outcome.record, dispatch: false }, `could not release claim ${requestId}`);
    return;
  }
  if (released.applied) deps.logger.warn(`pair ${pair.id}: not reset, ${reason}`);
  tally.note(pair, { ...again, record: released.record, dispatch: false });
}
