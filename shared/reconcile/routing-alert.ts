/**
 * The `pair-out-of-routing` alert (shared/lab/routing-alert.ts), after the routing pass: one line
 * per stalled pair per reconcile (the alert rule is stateful and notifies once), and the moment
 * the next pair would stall: a look is due then (worker.ts), so that even a quiet lab alerts on time.
 */
import type { LabConfig } from "../lab/config.js";
import { outOfRouting, outOfRoutingMessage } from "../lab/routing-alert.js";
import { alert, type Logger } from "../logger.js";
import type { RoutingPass, RoutingSubject } from "./routing.js";
import type { Tally } from "./tally.js";

export interface RoutingAlertDeps {
  config: LabConfig;
  clock: () => Date;
  logger: Logger;
}

/** Alerts on each stalled pair; returns when the next pair would stall (a look is due then), or null. */
export function alertOutOfRouting(deps: RoutingAlertDeps, subjects: RoutingSubject[], routing: RoutingPass, tally: Tally): Date | null {
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
  return nextDue;
}
