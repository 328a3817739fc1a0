/**
 * Act: the claims are held; look again, with GitHub's unfinished jobs this time (the busy flag's
 * cross-check), then dispatch. A job may have started since the first
 * look (GitHub's side), or a job start may have been recorded (a webhook's `in_progress`): either
 * releases the claim. A job's end recorded meanwhile does not: it cannot make the VM busy.
 */
import { decide, failedRecord, type Outcome } from "../lab/decide.js";
import type { LabConfig, Pair } from "../lab/config.js";
import type { PairEvent, PairRecord, Trigger } from "../lab/pair-record.js";
import type { FactStore, StoredFact } from "../storage/facts.js";
import { patchClaim, releaseClaim, type Claim, type ClaimDeps } from "./claim.js";
import { busyAfterSecondLook } from "../lab/claims.js";
import { appendEvents } from "../storage/update-pair.js";
import { jobFactsByPair, type FactWindow, type PairJobFacts } from "./job-facts.js";
import { observePair, pairByRunnerName, type CrossCheck, type LabLook } from "./observe.js";
import { markFollowed } from "./follow.js";
import type { Tally } from "./tally.js";

/** Older than this, the second look is taken again before the next dispatch (dispatches are spaced ≥ 1 s). */
const STALE_LOOK_MS = 10_000;

export interface ActDeps extends ClaimDeps {
  config: LabConfig;
  facts: FactStore;
}

interface SecondLook {
  lab: LabLook;
  facts: StoredFact[] | { error: string };
  takenAt: number;
}

async function lookAgain(crossCheck: CrossCheck, window: FactWindow, tally: Tally): Promise<SecondLook> {
  const lab = await crossCheck.look();
  if ("error" in lab) tally.errors.push(lab.error);
  // The first read with what was recorded since: a start read first must meet its end recorded since (and both fold alike).
  const facts = await window.again();
  if (!Array.isArray(facts)) tally.errors.push(facts.error);
  return { lab, facts, takenAt: performance.now() };
}

export async function dispatchClaims(deps: ActDeps, trigger: Trigger, claims: Claim[], crossCheck: CrossCheck, window: FactWindow, tally: Tally): Promise<void> {
  if (claims.length === 0) return;
  let look = await lookAgain(crossCheck, window, tally);
  for (const claim of claims) {
    if (performance.now() - look.takenAt > STALE_LOOK_MS) look = await lookAgain(crossCheck, window, tally);
    const verdict = await judgeClaim(deps, claim, look, window);
    if (verdict.release) await releaseClaim(deps, trigger, claim, verdict.again, verdict.why, tally);
    else await dispatch(deps, trigger, claim, tally);
  }
}

/** Decides again from the claim's own record and reset-run facts; only GitHub's view and new job starts are new. */
async function judgeClaim(deps: ActDeps, claim: Claim, look: SecondLook, window: FactWindow): Promise<{ release: false } | { release: true; again: Outcome; why: string }> {
  const { pair } = claim;
  const requestId = claim.outcome.record.resetRequestId!;
  const pairOfRunner = "error" in look.lab ? new Map<string, Pair>() : pairByRunnerName(deps.config.pairs, look.lab);
  const facts = Array.isArray(look.facts) ? look.facts : [];
  const observation = Array.isArray(look.facts) ? observePair(pair, look.lab) : { ok: false as const, error: `not reset: could not read the recorded job facts (${look.facts.error})` };
  const jobs = laterJobs(claim.input, jobFactsByPair(facts, pairOfRunner).get(pair.id));
  const again = decide({ ...claim.input, ...jobs, record: claim.before?.record ?? null, observation, requestId, now: deps.clock() });
  if (!again.dispatch) return { release: true, again, why: again.record.reason };
  const started = window.newStartsOn(pair, facts, pairOfRunner);
  const busy = busyAfterSecondLook(claim.before?.record ?? null, again);
  if (started.length > 0) return { release: true, again: busy, why: `run ${started[0]!.fact.runId} started a job on the VM (webhook) since the first look` };
  // Only our own claim may be dispatched: re-read it (another reconcile may have followed it meanwhile).
  const current = await deps.store.getPair(pair.id).catch(() => "unreadable" as const);
  if (current === "unreadable" || current?.record.resetRequestId !== requestId || current.record.state !== "resetting") {
    return { release: true, again: busy, why: current === "unreadable" ? "the claimed record could not be read back" : "the claim is no longer this reconcile's" };
  }
  // A hold placed since the claim: no reset until it is released.
  if (current.record.holdBy !== null) return { release: true, again: { ...busy, decision: "held" }, why: `held by ${current.record.holdBy}` };
  claim.etag = current.etag;
  claim.outcome = { ...claim.outcome, record: current.record };
  return { release: false };
}

/** The first look's job facts (the timer's backstop among them), each replaced only by a later one. */
function laterJobs(first: PairJobFacts, again: PairJobFacts | undefined): PairJobFacts {
  const later = <T extends { at: string }>(a: T | undefined, b: T | undefined) => (a === undefined ? b : b === undefined || a.at >= b.at ? a : b);
  const jobReport = later(first.jobReport, again?.jobReport);
  // The same start read twice holds no longer if either look knows it ended (a recorded end, or GitHub via the backstop).
  const same = again?.jobStart !== undefined && first.jobStart !== undefined && again.jobStart.at === first.jobStart.at;
  const jobStart = same && first.jobStart!.heldUntil === null ? first.jobStart : later(again?.jobStart, first.jobStart);
  return { ...(jobReport ? { jobReport } : {}), ...(jobStart ? { jobStart } : {}) };
}

async function dispatch(deps: ActDeps, trigger: Trigger, claim: Claim, tally: Tally): Promise<void> {
  const { pair } = claim;
  const requestId = claim.outcome.record.resetRequestId!;
  tally.dispatches++;
  const result = await deps.github.dispatchReset(pair, requestId);
  const dispatched = result.outcome === "dispatched";
  // The run was just created: the next read of it is worth making only once there is news.
  if (dispatched && result.runId !== null) markFollowed(deps.github, requestId, deps.clock());
  deps.logger.info(`pair ${pair.id}: reset ${dispatched ? "dispatched" : `dispatch ${result.outcome}`} (trigger ${trigger}, request ${requestId}${dispatched && result.runId ? `, run ${result.runId}` : ""})`);
  const event = (after: PairRecord): PairEvent => ({
    pairId: pair.id,
    at: deps.clock().toISOString(),
    kind: "dispatch",
    trigger,
    from: "resetting",
    to: after.state,
    reason: dispatched ? "reset workflow dispatched" : `dispatch ${result.outcome}: ${result.error}`,
    resetRequestId: requestId,
    resetRunId: after.resetRunId,
  });
  const updated = await patchClaim(deps, claim, (r) => {
    const after = result.outcome === "dispatched" ? { ...r, resetRunId: result.runId }
      : result.outcome === "rejected" ? failedRecord(r, `GitHub refused the dispatch: ${result.error}`, deps.clock(), deps.config)
      : { ...r, lastError: `dispatch answer unknown, looking for the run by request id: ${result.error}` };
    return { record: after, events: [event(after)] };
  });
  const after = updated?.record ?? claim.outcome.record;
  // Unwritten (the claim no longer ours, or storage failing): the dispatch is still history.
  if (!updated?.applied) await appendEvents(deps, pair.id, [event(after)]);
  tally.note(pair, { ...claim.outcome, record: after }, dispatched ? undefined : result.error);
}
