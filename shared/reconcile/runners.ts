/**
 * Which runner is which pair's VM or host, written to the history as the reconcile sees it:
 * job rows name only their runner, and the report and the advice need its pair and its labels.
 * Written when what this instance saw changes, so a steady lab costs no write per reconcile.
 */
import type { Pair } from "../lab/config.js";
import type { Logger } from "../logger.js";
import type { HistoryStore, RunnerNews } from "../storage/history.js";
import { lower, vmRunnersOf, type LabView } from "./observe.js";

const lastWritten = new WeakMap<object, string>();

export function runnersOf(pairs: Pair[], view: LabView): RunnerNews[] {
  const rows = new Map<string, RunnerNews>();
  for (const pair of pairs) {
    for (const runner of vmRunnersOf(pair, view)) rows.set(lower(runner.name), { runnerName: runner.name, pairId: pair.id, role: "vm", labels: runner.labels.map((l) => l.name) });
    for (const host of pair.hosts) {
      for (const runner of view.byLabel.get(lower(host.runnerLabel)) ?? []) rows.set(lower(runner.name), { runnerName: runner.name, pairId: pair.id, role: "host", labels: runner.labels.map((l) => l.name) });
    }
  }
  return [...rows.values()];
}

export async function noteRunners(deps: { history?: Pick<HistoryStore, "recordRunners">; config: { pairs: Pair[]; routingLabels: string[] }; logger: Pick<Logger, "warn"> }, view: LabView): Promise<void> {
  const history = deps.history;
  if (history === undefined) return;
  // Routing labels come and go with every reset: only which runner serves which pair, and its other labels, matter here.
  const routing = new Set(deps.config.routingLabels.map(lower));
  const rows = runnersOf(deps.config.pairs, view);
  const signature = JSON.stringify(rows.map((r) => [r.runnerName, r.pairId, r.role, r.labels.filter((l) => !routing.has(lower(l)))]));
  if (lastWritten.get(history) === signature) return;
  try {
    await history.recordRunners(rows);
    lastWritten.set(history, signature);
  } catch (error) {
    deps.logger.warn(`history: runners not recorded (the report may not place their jobs): ${(error as Error).message}`);
  }
}
