/**
 * The admin routes: a pair's history, the dry run, "reset this pair now", and the status page.
 * Each reads or writes the store and queues a reconcile; none acts on GitHub itself.
 */
import type { Pair } from "../lab/config.js";
import { newPairRecord, type PairRecord } from "../lab/pair-record.js";
import type { Logger } from "../logger.js";
import { planReconcile } from "../reconcile/plan.js";
import type { Runtime } from "../runtime.js";
import { StoreConflictError } from "../storage/tables.js";
import { refuse, unavailable, type JsonResponse } from "../triggers/http.js";
import { renderStatusPage, STATUS_PAGE_HEADERS } from "./status-page.js";

export const MAX_EVENTS = 500;

const pairNamed = (runtime: Pick<Runtime, "config">, id: string): Pair | undefined => runtime.config.pairs.find((p) => p.id.toLowerCase() === id.toLowerCase());
const notFound = (runtime: Pick<Runtime, "config">, id: string) =>
  refuse(404, `No pair ${JSON.stringify(id)} in the lab config; pairs: ${runtime.config.pairs.map((p) => p.id).join(", ")}.`);

/** GET /api/pairs/{id}/events?limit=50: newest first. */
export async function pairEvents(runtime: Runtime, id: string, limitText: string | null, logger: Logger): Promise<JsonResponse> {
  const pair = pairNamed(runtime, id);
  if (!pair) return notFound(runtime, id);
  const limit = limitText === null ? 50 : Number(limitText);
  if (!Number.isInteger(limit) || limit < 1 || limit > MAX_EVENTS) return refuse(400, `limit must be a whole number from 1 to ${MAX_EVENTS}, not ${JSON.stringify(limitText)}.`);
  try {
    const events = await runtime.store.listEvents(pair.id, limit);
    return { status: 200, body: { pair: pair.id, events: events.map(({ pairId: _pairId, ...event }) => event) } };
  } catch (cause) {
    return unavailable(cause, logger, "Retry later.");
  }
}

/** GET /api/plan: what the next timer reconcile would decide now; writes and dispatches nothing. */
export async function plan(runtime: Runtime, logger: Logger): Promise<JsonResponse> {
  try {
    const { pairs, errors } = await planReconcile({ ...runtime, logger });
    return { status: 200, body: { pairs, ...(errors.length > 0 ? { errors } : {}) } };
  } catch (cause) {
    return unavailable(cause, logger, "Retry later.");
  }
}

/**
 * POST /api/pairs/{id}/reset: records the admin's request on the pair (an ETag-conditional write),
 * then queues a reconcile. `decide` honours it once the VM is idle, whatever the trigger.
 */
export async function resetNow(runtime: Runtime, id: string, by: string, logger: Logger): Promise<JsonResponse> {
  const pair = pairNamed(runtime, id);
  if (!pair) return notFound(runtime, id);
  try {
    for (let attempt = 0; attempt < 5; attempt++) {
      const current = await runtime.store.getPair(pair.id);
      const record: PairRecord = current?.record ?? newPairRecord(pair.id, runtime.clock());
      // `conflict` tells a client which it is, so it can say what to do without reading the sentence.
      if (record.holdBy !== null) return refuse(409, `Pair ${pair.id} is held by ${record.holdBy} (${record.holdReason ?? "no reason given"}); release it first.`, { conflict: "held" });
      if (record.state === "resetting") {
        return refuse(409, `Pair ${pair.id} is being reset already (request ${record.resetRequestId}${record.resetRunId ? `, run ${record.resetRunId}` : ""}); wait for that reset to end.`, { conflict: "resetting" });
      }
      const asked = { ...record, resetRequestedAt: runtime.clock().toISOString(), resetRequestedBy: by, updatedAt: runtime.clock().toISOString() };
      try {
        if (current) await runtime.store.replacePair(asked, current.etag);
        else await runtime.store.createPair(asked);
      } catch (error) {
        if (error instanceof StoreConflictError) continue;
        throw error;
      }
      // The request is history too: it may wait hours for a busy VM.
      await runtime.store
        .appendEvents([{ pairId: pair.id, at: asked.updatedAt, kind: "state", trigger: "admin", from: record.state, to: record.state, reason: `reset requested by ${by}`, resetRequestId: null, resetRunId: null }])
        .catch((error: unknown) => logger.error(`pair ${pair.id}: event not recorded (trigger admin): ${(error as Error).message}`));
      await runtime.queue.send({ trigger: "admin" });
      logger.info(`pair ${pair.id}: reset requested by ${by}; a reconcile is queued`);
      return { status: 202, body: { pair: pair.id, state: record.state, resetRequestedAt: asked.resetRequestedAt, resetRequestedBy: by, reconcile: "queued" } };
    }
    return refuse(503, `Pair ${pair.id}'s record kept changing; retry.`);
  } catch (cause) {
    return unavailable(cause, logger, "Nothing was requested; retry later.");
  }
}

export interface HtmlResponse {
  status: number;
  html: string;
  headers: Record<string, string>;
}

/** GET /api/status: the page for people. */
export async function statusPage(runtime: Runtime, logger: Logger): Promise<HtmlResponse> {
  const lab = `${runtime.config.github.owner}/${runtime.config.github.repo}`;
  try {
    const stored = new Map((await runtime.store.listPairs()).map((s) => [s.record.pairId, s.record]));
    const pairs = await Promise.all(
      runtime.config.pairs.map(async (pair) => ({
        record: stored.get(pair.id) ?? newPairRecord(pair.id, runtime.clock()),
        vmRunnerLabel: pair.vmRunnerLabel,
        events: await runtime.store.listEvents(pair.id, 200),
      })),
    );
    const githubUrl = runtime.settings.githubApiUrl === "https://api.github.com" ? "https://github.com" : runtime.settings.githubApiUrl.replace(/\/api\/v3$/, "");
    return { status: 200, html: renderStatusPage({ lab, githubUrl, drawnAt: runtime.clock(), pairs, ...(runtime.simulatedClock ? { simulatedClock: runtime.simulatedClock } : {}) }), headers: STATUS_PAGE_HEADERS };
  } catch (cause) {
    const failed = unavailable(cause, logger, "Reload the page in a minute.");
    return { status: failed.status, html: `<!doctype html><title>lab-reset</title><p>${String((failed.body as { error: string }).error).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`)}</p>`, headers: { ...STATUS_PAGE_HEADERS, "retry-after": "60" } };
  }
}
