/**
 * The `pair-out-of-routing` alert (shared/lab/routing-alert.ts), after the routing pass: one line
 * per stalled pair per reconcile (the alert rule is stateful and notifies once), and a look queued
 * for the moment the next pair would stall, so that even a quiet lab alerts on time.
 */
import type { LabConfig } from "../lab/config.js";
import { outOfRouting, outOfRoutingMessage } from "../lab/routing-alert.js";
import { alert, type Logger } from "../logger.js";
import type { ReconcileQueue } from "../storage/queue.js";
import { needsFollowUp, type RoutingPass, type RoutingSubject } from "./routing.js";
import type { Tally } from "./tally.js";

export interface RoutingAlertDeps {
  config: LabConfig;
  clock: () => Date;
  logger: Logger;
  /** Where the later look is queued; without it (a reconcile run outside the queue function), none is. */
  queue?: Pick<ReconcileQueue, "send">;
}

/** A delayed queue message stays hidden at most 7 days (Azure Storage); a look before the due time queues the next one. */
const MAX_LOOK_DELAY_SECONDS = 7 * 24 * 3600 - 60;

export async function alertOutOfRouting(deps: RoutingAlertDeps, subjects: RoutingSubject[], routing: RoutingPass, tally: Tally): Promise<void> {
  const now = deps.clock();
  let nextDue: Date | null = null;
  for (const { pair, input } of subjects) {
    const record = routing.recordOf(pair.id);
    const result = tally.results.get(pair.id);
    if (record === undefined || result === undefined) continue;
    const facts = { record, state: result.state, decision: result.decision, observation: input.observation, now, ...(input.jobStart ? { jobStart: input.jobStart } : {}) };
    const stall = outOfRouting(facts, deps.config);
    if (stall === null) continue;
    if (stall.stalled) {
      alert(deps.logger, "pair-out-of-routing", outOfRoutingMessage(pair.id, stall, { ...record, state: result.state, lastError: result.lastError }));
    } else if (nextDue === null || stall.dueAt < nextDue) {
      nextDue = stall.dueAt;
    }
  }
  if (nextDue !== null) await lookAt(deps, nextDue, tally);
}

/**
 * Queues one look for when the next pair would stall. Not when a look comes sooner anyway: while
 * a pair is busy or resetting the queue function looks again every minute (worker.ts), and a
 * reconcile that failed is retried within minutes; the last reconcile of such a spell queues it.
 * A look that a reconcile in between makes redundant is served as covered, at the cost of one read.
 */
async function lookAt(deps: RoutingAlertDeps, dueAt: Date, tally: Tally): Promise<void> {
  if (deps.queue === undefined || tally.errors.length > 0 || needsFollowUp({ pairs: [...tally.results.values()] })) return;
  const delaySeconds = Math.min(Math.max(1, Math.ceil((dueAt.getTime() - deps.clock().getTime()) / 1000)), MAX_LOOK_DELAY_SECONDS);
  await deps.queue.send({ trigger: "webhook" }, { delaySeconds }).catch((error: unknown) => {
    deps.logger.warn(`routing alert look not queued (the next trigger looks anyway, at the latest the timer): ${(error as Error).message}`);
  });
}
