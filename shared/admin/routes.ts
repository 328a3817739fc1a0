/**
 * The admin routes: a pair's history, the dry run, "reset this pair now", and the status page.
 * Only "reset now" writes (the request, on the pair's record) and queues a reconcile; none acts on GitHub.
 */
import type { LabConfig, Pair } from "../lab/config.js";
import { newPairRecord, type PairEvent, type PairRecord } from "../lab/pair-record.js";
import type { Logger } from "../logger.js";
import { planReconcile } from "../reconcile/plan.js";
import type { ReconcileDeps } from "../reconcile/reconcile.js";
import { DEFAULT_REPORT_DAYS, recentReport } from "../report/read.js";
import type { Settings } from "../settings.js";
import type { HistoryStore } from "../storage/history.js";
import type { ReconcileQueue } from "../storage/queue.js";
import { StoreError, type PairStore } from "../storage/tables.js";
import { updatePair } from "../storage/update-pair.js";
import { refuse, unavailable, type JsonResponse } from "../triggers/http.js";
import { reportDays } from "./report.js";
import type { ReportView } from "./report-svg.js";
import { renderStatusPage, STATUS_PAGE_HEADERS } from "./status-page.js";

export const MAX_EVENTS = 500;

type Pairs = { config: Pick<LabConfig, "pairs"> };

const pairNamed = (runtime: Pairs, id: string): Pair | undefined => runtime.config.pairs.find((p) => p.id.toLowerCase() === id.toLowerCase());
const notFound = (runtime: Pairs, id: string) => refuse(404, `No pair ${JSON.stringify(id)} in the lab config; pairs: ${runtime.config.pairs.map((p) => p.id).join(", ")}.`);

export interface PairEventsRuntime extends Pairs {
  store: Pick<PairStore, "listEvents">;
}

/** GET /api/pairs/{id}/events?limit=50: newest first. */
export async function pairEvents(runtime: PairEventsRuntime, id: string, limitText: string | null, logger: Logger): Promise<JsonResponse> {
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

/** The reconcile's reads, without the queue: the dry run has nothing to queue. */
export type PlanRuntime = Pick<ReconcileDeps, "config" | "github" | "store" | "facts" | "clock">;

/** GET /api/plan: what the next timer reconcile would decide now; writes and dispatches nothing. */
export async function plan(runtime: PlanRuntime, logger: Logger): Promise<JsonResponse> {
  const { config, github, store, facts, clock } = runtime;
  try {
    const { pairs, errors } = await planReconcile({ config, github, store, facts, clock, logger });
    return { status: 200, body: { pairs, ...(errors.length > 0 ? { errors } : {}) } };
  } catch (cause) {
    return unavailable(cause, logger, "Retry later.");
  }
}

export interface ResetNowRuntime extends Pairs {
  store: PairStore;
  clock: () => Date;
  queue: Pick<ReconcileQueue, "send">;
}

/** Why a reset cannot be requested now; `conflict` tells a client which, so it can advise without reading the sentence. */
function refusal(record: PairRecord): JsonResponse | null {
  if (record.holdBy !== null) return refuse(409, `Pair ${record.pairId} is held by ${record.holdBy} (${record.holdReason ?? "no reason given"}); release it first.`, { conflict: "held" });
  if (record.state !== "resetting") return null;
  const run = record.resetRunId ? `, run ${record.resetRunId}` : "";
  return refuse(409, `Pair ${record.pairId} is being reset already (request ${record.resetRequestId}${run}); wait for that reset to end.`, { conflict: "resetting" });
}

/**
 * POST /api/pairs/{id}/reset: records the admin's request on the pair, then queues a reconcile.
 * `decide` honours it once the VM is idle, whatever the trigger.
 */
export async function resetNow(runtime: ResetNowRuntime, id: string, by: string, logger: Logger): Promise<JsonResponse> {
  const pair = pairNamed(runtime, id);
  if (!pair) return notFound(runtime, id);
  try {
    // Set by the change each time it reads the record (`as`: TypeScript does not see the closure assign it).
    let refused = null as JsonResponse | null;
    const update = await updatePair({ store: runtime.store, logger }, pair.id, (current) => {
      const record = current?.record ?? newPairRecord(pair.id, runtime.clock());
      refused = refusal(record);
      if (refused) return null;
      const at = runtime.clock().toISOString();
      // The request is history too: it may wait hours for a busy VM.
      const event: PairEvent = { pairId: pair.id, at, kind: "state", trigger: "admin", from: record.state, to: record.state, reason: `reset requested by ${by}`, resetRequestId: null, resetRunId: null };
      return { record: { ...record, resetRequestedAt: at, resetRequestedBy: by, updatedAt: at }, events: [event] };
    });
    if (!update.written) return update.conflict ? refuse(503, `Pair ${pair.id}'s record kept changing; retry.`) : refused!;
    await runtime.queue.send({ trigger: "admin" });
    logger.info(`pair ${pair.id}: reset requested by ${by}; a reconcile is queued`);
    const { state, resetRequestedAt } = update.record;
    return { status: 202, body: { pair: pair.id, state, resetRequestedAt, resetRequestedBy: by, reconcile: "queued" } };
  } catch (cause) {
    return unavailable(cause, logger, "Nothing was requested; retry later.");
  }
}

export interface HtmlResponse {
  status: number;
  html: string;
  headers: Record<string, string>;
}

export interface StatusPageRuntime {
  settings: Pick<Settings, "githubApiUrl">;
  config: Pick<LabConfig, "github" | "pairs" | "historyDays">;
  store: Pick<PairStore, "listPairs" | "listEvents" | "listEventsSince">;
  history: Pick<HistoryStore, "read">;
  clock: () => Date;
  simulatedClock?: { speed: number };
}

/** Events read per pair for its strip: a day's worth and more; fewer back means the pair has no older one. */
const STRIP_EVENTS = 200;

/** GET /api/status?days=N: the page for people; the capacity report under the pairs covers N days (default 7). */
export async function statusPage(runtime: StatusPageRuntime, logger: Logger, daysText: string | null = null): Promise<HtmlResponse> {
  const lab = `${runtime.config.github.owner}/${runtime.config.github.repo}`;
  try {
    const [stored, report] = await Promise.all([runtime.store.listPairs(), reportView(runtime, daysText, logger)]);
    const records = new Map(stored.map((s) => [s.record.pairId, s.record]));
    const pairs = await Promise.all(
      runtime.config.pairs.map(async (pair) => {
        const events = await runtime.store.listEvents(pair.id, STRIP_EVENTS);
        return { record: records.get(pair.id) ?? newPairRecord(pair.id, runtime.clock()), vmRunnerLabel: pair.vmRunnerLabel, events, fromFirstRecord: events.length < STRIP_EVENTS };
      }),
    );
    const githubUrl = runtime.settings.githubApiUrl === "https://api.github.com" ? "https://github.com" : runtime.settings.githubApiUrl.replace(/\/api\/v3$/, "");
    return { status: 200, html: renderStatusPage({ lab, githubUrl, drawnAt: runtime.clock(), pairs, report, ...(runtime.simulatedClock ? { simulatedClock: runtime.simulatedClock } : {}) }), headers: STATUS_PAGE_HEADERS };
  } catch (cause) {
    const failed = unavailable(cause, logger, "Reload the page in a minute.");
    return { status: failed.status, html: `<!doctype html><title>lab-reset</title><p>${String((failed.body as { error: string }).error).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`)}</p>`, headers: { ...STATUS_PAGE_HEADERS, "retry-after": "60" } };
  }
}

/** The report for the page; a report that cannot be read or drawn costs the page one line, never the pairs. */
async function reportView(runtime: StatusPageRuntime, daysText: string | null, logger: Logger): Promise<ReportView> {
  const days = reportDays(daysText, runtime.config.historyDays);
  if (typeof days !== "number") return { days: Math.min(DEFAULT_REPORT_DAYS, runtime.config.historyDays), report: null, problem: (days.body as { error: string }).error.replace(/\.$/, "") };
  try {
    return { days, report: await recentReport(runtime, days) };
  } catch (cause) {
    logger.error(`status page: the capacity report is unavailable: ${cause instanceof Error ? (cause.stack ?? cause.message) : String(cause)}`);
    return { days, report: null, problem: cause instanceof StoreError ? "the lab's history could not be read from storage; reload in a minute" : "it could not be drawn (see the app's log)" };
  }
}
