/**
 * The app's functions, listed once: functions/index.ts registers them with Azure, and the local
 * host (shared/local) serves the same list. Handlers only adapt HTTP, timer and queue inputs to the core.
 */
import type { HttpHandler, HttpMethod, HttpRequest, HttpResponseInit, InvocationContext, StorageQueueHandler, TimerHandler } from "@azure/functions";
import { holdPair, MAX_HOLD_BODY_BYTES, releasePair } from "../shared/admin/holds.js";
import { pairs } from "../shared/admin/pairs.js";
import { pairEvents, plan, resetNow, statusPage } from "../shared/admin/routes.js";
import { report, workload } from "../shared/admin/report.js";
import type { Logger } from "../shared/logger.js";
import type { Runtime } from "../shared/runtime.js";
import type { Settings } from "../shared/settings.js";
import { queuedFrom } from "../shared/reconcile/worker.js";
import type { JsonResponse } from "../shared/triggers/http.js";
import { jobCompleted, MAX_BODY_BYTES } from "../shared/triggers/job-completed.js";
import { redeliverWebhooks } from "../shared/triggers/redeliver.js";
import { scheduledReset } from "../shared/triggers/timer.js";
import { githubWebhook, MAX_WEBHOOK_BODY_BYTES } from "../shared/triggers/webhook.js";

export type FunctionDefinition =
  | { kind: "http"; name: string; route: string; methods: HttpMethod[]; authLevel: "function" | "anonymous"; handler: HttpHandler }
  | { kind: "timer"; name: string; schedule: string; handler: TimerHandler }
  | { kind: "queue"; name: string; queueName: string; handler: StorageQueueHandler };

const contextLogger = (context: InvocationContext): Logger => ({
  info: (m, ...r) => context.log(m, ...r),
  warn: (m, ...r) => context.warn(m, ...r),
  error: (m, ...r) => context.error(m, ...r),
});

const toHttp = (response: JsonResponse): HttpResponseInit => ({ status: response.status, jsonBody: response.body, ...(response.headers ? { headers: response.headers } : {}) });

/** Refuses a body larger than `limit` from its content-length, before buffering it. */
function tooLarge(request: HttpRequest, limit: number): HttpResponseInit | null {
  const length = Number(request.headers.get("content-length") ?? "0");
  return length > limit ? toHttp({ status: 413, body: { error: `Body is larger than ${limit} bytes.` } }) : null;
}

/** Who asks, as App Service authentication (Entra sign-in) names them; a function key names no one. */
const adminName = (request: HttpRequest) => request.headers.get("x-ms-client-principal-name") ?? "admin";

/** The timer settings; `redeliverSchedule` null: no redelivery timer (no GitHub App credentials, so no deliveries API). */
export interface DefinitionSettings {
  resetSchedule: string;
  reconcileQueue: string;
  redeliverSchedule?: string | null;
}

/** The redelivery timer runs only where it can: with the GitHub App's credentials. */
export const redeliverScheduleOf = (settings: Pick<Settings, "githubAuth" | "redeliverSchedule">) => (settings.githubAuth?.kind === "app" ? settings.redeliverSchedule : null);

export function functionDefinitions(runtime: () => Promise<Runtime>, settings: DefinitionSettings): FunctionDefinition[] {
  const redeliver: FunctionDefinition[] = settings.redeliverSchedule
    ? [{ kind: "timer", name: "redeliverWebhooks", schedule: settings.redeliverSchedule, handler: async (_timer, context) => void (await redeliverWebhooks(await runtime(), contextLogger(context))) }]
    : [];
  return [
    ...redeliver,
    {
      kind: "timer",
      name: "scheduledReset",
      schedule: settings.resetSchedule,
      handler: async (_timer, context) => scheduledReset(await runtime(), contextLogger(context)),
    },
    {
      kind: "queue",
      name: "reconcileLab",
      queueName: settings.reconcileQueue,
      handler: async (entry, context) => {
        const logger = contextLogger(context);
        await (await runtime()).worker.serve(queuedFrom(entry, context.triggerMetadata ?? {}, logger), logger);
      },
    },
    {
      kind: "http",
      name: "jobCompleted",
      route: "job-completed",
      methods: ["POST"],
      authLevel: "function",
      handler: async (request, context) => {
        const refused = tooLarge(request, MAX_BODY_BYTES);
        if (refused) return refused;
        // The function key (auth level "function") is checked by Azure; the OIDC token by jobCompleted.
        return toHttp(await jobCompleted(await runtime(), await request.text(), contextLogger(context), { authorization: request.headers.get("authorization") ?? undefined }));
      },
    },
    {
      kind: "http",
      name: "pairs",
      route: "pairs",
      methods: ["GET"],
      authLevel: "function",
      handler: async (_request, context) => toHttp(await pairs(await runtime(), contextLogger(context))),
    },
    {
      kind: "http",
      name: "pairEvents",
      route: "pairs/{id}/events",
      methods: ["GET"],
      authLevel: "function",
      handler: async (request, context) => toHttp(await pairEvents(await runtime(), request.params.id ?? "", request.query.get("limit"), contextLogger(context))),
    },
    {
      kind: "http",
      name: "pairReset",
      route: "pairs/{id}/reset",
      methods: ["POST"],
      authLevel: "function",
      handler: async (request, context) => toHttp(await resetNow(await runtime(), request.params.id ?? "", adminName(request), contextLogger(context))),
    },
    {
      kind: "http",
      name: "plan",
      route: "plan",
      methods: ["GET"],
      authLevel: "function",
      handler: async (_request, context) => toHttp(await plan(await runtime(), contextLogger(context))),
    },
    {
      kind: "http",
      name: "report",
      route: "report",
      methods: ["GET"],
      authLevel: "function",
      handler: async (request, context) => toHttp(await report(await runtime(), request.query.get("days"), contextLogger(context))),
    },
    {
      kind: "http",
      name: "workload",
      route: "workload",
      methods: ["GET"],
      authLevel: "function",
      handler: async (request, context) => toHttp(await workload(await runtime(), request.query.get("days"), contextLogger(context))),
    },
    {
      kind: "http",
      name: "status",
      route: "status",
      methods: ["GET"],
      authLevel: "function",
      handler: async (request, context) => {
        const page = await statusPage(await runtime(), contextLogger(context), request.query.get("days"));
        return { status: page.status, body: page.html, headers: page.headers };
      },
    },
    {
      kind: "http",
      name: "pairHold",
      route: "pairs/{id}/hold",
      methods: ["POST", "DELETE"],
      authLevel: "function",
      handler: async (request, context) => {
        const refused = tooLarge(request, MAX_HOLD_BODY_BYTES);
        if (refused) return refused;
        const hold = { pairId: request.params.id ?? "", principal: adminName(request) };
        const logger = contextLogger(context);
        if (request.method === "DELETE") return toHttp(await releasePair(await runtime(), hold, logger));
        return toHttp(await holdPair(await runtime(), { ...hold, body: await request.text() }, logger));
      },
    },
    {
      kind: "http",
      name: "githubWebhook",
      route: "github-webhook",
      methods: ["POST"],
      // GitHub cannot send a function key: the X-Hub-Signature-256 HMAC over the body is the authentication.
      authLevel: "anonymous",
      handler: async (request, context) => {
        const refused = tooLarge(request, MAX_WEBHOOK_BODY_BYTES);
        if (refused) return refused;
        const header = (name: string) => request.headers.get(name) ?? undefined;
        const delivery = { event: header("x-github-event"), deliveryId: header("x-github-delivery"), signature: header("x-hub-signature-256"), body: await request.text() };
        return toHttp(await githubWebhook(await runtime(), delivery, contextLogger(context)));
      },
    },
  ];
}
