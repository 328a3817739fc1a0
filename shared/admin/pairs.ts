/**
 * GET /api/pairs: every configured pair as its record says, a pair never seen as the reconcile
 * would treat it, and `now`, the app's clock: the CLI's "5 min ago" is counted from it, since the
 * simulated lab's clock (npm start) runs days ahead of the caller's.
 */
import type { LabConfig } from "../lab/config.js";
import { newPairRecord } from "../lab/pair-record.js";
import type { Logger } from "../logger.js";
import type { PairStore } from "../storage/tables.js";
import { unavailable, type JsonResponse } from "../triggers/http.js";

export interface PairsRuntime {
  config: Pick<LabConfig, "pairs">;
  store: Pick<PairStore, "listPairs">;
  clock: () => Date;
}

export async function pairs(runtime: PairsRuntime, logger: Logger): Promise<JsonResponse> {
  try {
    const stored = new Map((await runtime.store.listPairs()).map((s) => [s.record.pairId, s.record]));
    return {
      status: 200,
      body: {
        now: runtime.clock().toISOString(),
        pairs: runtime.config.pairs.map((pair) => {
          const record = stored.get(pair.id);
          const { pairId, ...fields } = record ?? newPairRecord(pair.id, runtime.clock());
          return { id: pairId, vmRunnerLabel: pair.vmRunnerLabel, ...fields, updatedAt: record ? fields.updatedAt : null };
        }),
      },
    };
  } catch (cause) {
    return unavailable(cause, logger, "Retry later.");
  }
}
