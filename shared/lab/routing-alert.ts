/**
 * The routing alert rule: a pair out of routing for long while nothing runs on it is the lab
 * stalling silently. Its VM runner lost the routing labels when its last job started and gets
 * them back only after a successful reset; if resets keep failing (or the runner is offline, or
 * a label edit is refused), perf jobs that need it queue on GitHub forever. Pure: no I/O, no clock.
 */
import type { LabConfig } from "./config.js";
import type { Decision, DecideInput, PairObservation } from "./decide.js";
import type { PairRecord, PairState } from "./pair-record.js";

export interface OutOfRoutingFacts {
  /** The pair's record as this reconcile's routing pass left it; null when it could not be read. */
  record: Pick<PairRecord, "routing" | "routingSince" | "lastJobAt" | "holdBy"> | null;
  /** The pair's state and decision as this reconcile left them (after any dispatch). */
  state: PairState;
  decision?: Decision;
  /** What this reconcile saw of the pair on GitHub. */
  observation: PairObservation;
  /** The latest recorded job start on the VM (its `heldUntil` still running means busy). */
  jobStart?: DecideInput["jobStart"];
  now: Date;
}

export interface OutOfRouting {
  /** Since when the pair has been out of routing while not busy. */
  since: Date;
  /** When it counts as stalled: `since` plus routingAlertMinutes. */
  dueAt: Date;
  /** Whole minutes out of routing while not busy, by now. */
  minutes: number;
  stalled: boolean;
}

/**
 * How long the pair has been out of routing while not busy, or null when that does not count:
 * - no routing labels configured: routing is never touched, so nothing stalls on it;
 * - routing open, or null: null means no routing pass has recorded the pair since routing labels
 *   were configured (every pass records each pair it looks at), so nothing says for how long; its
 *   runner may still carry labels set by hand. The first pass that reads GitHub records `closed`
 *   and the count starts there. A pass that cannot read GitHub leaves it null, and the
 *   reconcile-failed and no-reconcile alerts speak for that;
 * - held: an admin closed routing on purpose and knows it (`lab-reset status` shows the hold);
 * - busy, or not known to be idle: a job holds the VM, which is what routing is closed for.
 * Counted from the later of `routingSince` and the last job seen on the VM, so a pair whose long
 * job just ended has its whole routingAlertMinutes for the reset that follows.
 */
export function outOfRouting(facts: OutOfRoutingFacts, config: Pick<LabConfig, "routingLabels" | "routingAlertMinutes">): OutOfRouting | null {
  const r = facts.record;
  if (config.routingLabels.length === 0 || r === null) return null;
  if (r.routing !== "closed" || r.routingSince === null) return null;
  if (r.holdBy !== null) return null;
  if (!facts.observation.ok || busy(facts)) return null;
  const since = Math.max(Date.parse(r.routingSince), r.lastJobAt === null ? -Infinity : Date.parse(r.lastJobAt));
  const dueAt = since + config.routingAlertMinutes * 60_000;
  const now = facts.now.getTime();
  return { since: new Date(since), dueAt: new Date(dueAt), minutes: Math.floor((now - since) / 60_000), stalled: now >= dueAt };
}

/** A job on the VM runner, as this reconcile saw it (GitHub, or a recorded start still holding it), or as its decisions left the pair. */
function busy(facts: OutOfRoutingFacts): boolean {
  const { observation, jobStart, now } = facts;
  if (facts.state === "busy" || facts.decision === "deferred-busy") return true;
  if (observation.ok && (observation.jobRunId !== null || observation.vmRunners.some((v) => v.busy))) return true;
  const heldUntil = jobStart?.heldUntil ?? null;
  return heldUntil !== null && now.getTime() < Date.parse(heldUntil);
}

/** The alert's text after `lab-reset alert pair-out-of-routing:`: which pair, for how long, why, and what to do. */
export function outOfRoutingMessage(pairId: string, stall: Pick<OutOfRouting, "minutes">, pair: { state: PairState; lastError: string | null; reason: string; routingError: string | null }): string {
  const lastError = pair.lastError ?? `none (${pair.reason})`;
  const routingError = pair.routingError === null ? "" : `; routing error: ${pair.routingError}`;
  return (
    `pair ${pairId} has been out of routing for ${stall.minutes} minutes while not busy (state ${pair.state}; last error: ${lastError}${routingError}); ` +
    `perf jobs that need it queue. What to do: lab-reset status shows why; fix the cause, then lab-reset reset ${pairId}; ` +
    `if lab-reset itself cannot recover, run lab-reset routing restore while the app is stopped`
  );
}
