/**
 * The app's functions, listed once: functions/index.ts registers them with Azure, and the local
 * host (shared/local) serves the same list. Handlers only adapt HTTP and timer inputs to the core.
 */
import type { HttpHandler, HttpMethod, HttpRequest, HttpResponseInit, InvocationContext, TimerHandler } from "@azure/functions";
import * as core from "../shared/triggers/job-completed.js";
import type { Logger } from "../shared/logger.js";
import type { Runtime } from "../shared/runtime.js";
import * as webhook from "../shared/triggers/webhook.js";

export type FunctionDefinition =
  | { kind: "http"; name: string; route: string; methods: HttpMethod[]; authLevel: "function" | "anonymous"; handler: HttpHandler }
  | { kind: "timer"; name: string; schedule: string; handler: TimerHandler };

export const contextLogger = (context: InvocationContext): Logger => ({
  info: (m, ...r) => context.log(m, ...r),
  warn: (m, ...r) => context.warn(m, ...r),
  error: (m, ...r) => context.error(m, ...r),
});

const toHttp = (response: core.JsonResponse): HttpResponseInit => ({ status: response.status, jsonBody: response.body, ...(response.headers ? { headers: response.headers } : {}) });

/** Refuses a body larger than `limit` from its content-length, before buffering it. */
function tooLarge(request: HttpRequest, limit: number): HttpResponseInit | null {
  const length = Number(request.headers.get("content-length") ?? "0");
  return length > limit ? toHttp({ status: 413, body: { error: `Body is larger than ${limit} bytes.` } }) : null;
}

export function functionDefinitions(runtime: () => Promise<Runtime>, resetSchedule: string): FunctionDefinition[] {
  return [
    {
      kind: "timer",
      name: "scheduledReset",
      schedule: resetSchedule,
      handler: async (_timer, context) => {
        await core.scheduledReset(await runtime(), contextLogger(context));
      },
    },
    {
      kind: "http",
      name: "jobCompleted",
      route: "job-completed",
      methods: ["POST"],
      authLevel: "function",
      handler: async (request, context) => {
        const refused = tooLarge(request, core.MAX_BODY_BYTES);
        if (refused) return refused;
        // The function key (auth level "function") is checked by Azure; the OIDC token by jobCompleted.
        return toHttp(await core.jobCompleted(await runtime(), await request.text(), contextLogger(context), { authorization: request.headers.get("authorization") ?? undefined }));
      },
    },
    {
      kind: "http",
      name: "pairs",
      route: "pairs",
      methods: ["GET"],
      authLevel: "function",
      handler: async (_request, context) => toHttp(await core.pairs(await runtime(), contextLogger(context))),
    },
    {
      kind: "http",
      name: "githubWebhook",
      route: "github-webhook",
      methods: ["POST"],
      // GitHub cannot send a function key: the X-Hub-Signature-256 HMAC over the body is the authentication.
      authLevel: "anonymous",
      handler: async (request, context) => {
        const refused = tooLarge(request, webhook.MAX_WEBHOOK_BODY_BYTES);
        if (refused) return refused;
        const header = (name: string) => request.headers.get(name) ?? undefined;
        return toHttp(
          await webhook.githubWebhook(
            await runtime(),
            { event: header("x-github-event"), deliveryId: header("x-github-delivery"), signature: header("x-hub-signature-256"), body: await request.text() },
            contextLogger(context),
          ),
        );
      },
    },
  ];
}
