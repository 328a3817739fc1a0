/**
 * The dry run: what the next timer reconcile would decide now, from the same observation and the
 * same pure `decide`, writing and dispatching nothing.
 */
import { decide, type Decision } from "../lab/decide.js";
import type { PairState } from "../lab/pair-record.js";
import { inputFor, observe, type ReconcileDeps } from "./reconcile.js";
import { Tally } from "./tally.js";

export interface PlannedPair {
  id: string;
  state: PairState;
  decision: Decision;
  reason: string;
}

export async function planReconcile(deps: ReconcileDeps): Promise<{ pairs: PlannedPair[]; errors: string[] }> {
  const tally = new Tally(deps.logger);
  const seen = await observe(deps, "timer", tally);
  const pairs = deps.config.pairs.map((pair) => {
    const outcome = decide({ ...inputFor(deps, "timer", pair, seen), requestId: "(planned)" });
    return { id: pair.id, state: outcome.record.state, decision: outcome.decision, reason: outcome.record.reason };
  });
  return { pairs, errors: tally.errors };
}
