import { appFrom, callApp, UNKNOWN_PAIR, type Call, type RemoteOptions } from "../client.js";
import type { CliContext } from "../context.js";
import { EXIT_OK } from "../errors.js";

const pairPath = (pair: string, action: string) => `/api/pairs/${encodeURIComponent(pair)}/${action}`;

/** `reset <pair>`: asks the app to reset the pair now; it refuses (409) a held pair or one already being reset. */
export function reset(context: CliContext, pair: string, options: RemoteOptions): Promise<number> {
  return act(context, options, `${pair}: reset requested`, {
    method: "POST",
    path: pairPath(pair, "reset"),
    notFound: UNKNOWN_PAIR,
    conflict: `see lab-reset status; a held pair needs lab-reset release ${pair} first`,
  });
}

/** `hold <pair> --reason`: no resets and routing closed until released. */
export function hold(context: CliContext, pair: string, options: RemoteOptions & { reason: string }): Promise<number> {
  return act(context, options, `${pair}: held (${options.reason})`, {
    method: "POST",
    path: pairPath(pair, "hold"),
    body: { reason: options.reason },
    notFound: UNKNOWN_PAIR,
  });
}

/** `release <pair>`: ends the pair's hold; the next reconcile decides it as usual. */
export function release(context: CliContext, pair: string, options: RemoteOptions): Promise<number> {
  return act(context, options, `${pair}: released`, { method: "DELETE", path: pairPath(pair, "hold"), notFound: UNKNOWN_PAIR });
}

async function act(context: CliContext, options: RemoteOptions, done: string, call: Call): Promise<number> {
  const body = await callApp(appFrom(options, context), call);
  context.stdout(options.json ? `${JSON.stringify(body, null, 2)}\n` : `${done}${details(body)}\n`);
  return EXIT_OK;
}

/** What the app says it did, if it says: state, decision, reset run, reason. */
function details(body: unknown): string {
  if (typeof body !== "object" || body === null) return "";
  // The pair's fields may come at the top level or under `pair`.
  const nested = (body as { pair?: unknown }).pair;
  const fields = { ...(typeof nested === "object" && nested !== null ? nested : {}), ...body } as Record<string, unknown>;
  const { state, decision, resetRunId, reason } = fields;
  const parts = [
    typeof state === "string" ? `state ${state}` : undefined,
    typeof decision === "string" ? `decision ${decision}` : undefined,
    typeof resetRunId === "number" ? `reset run ${resetRunId}` : undefined,
    typeof reason === "string" ? reason : undefined,
  ].filter((part) => part !== undefined);
  return parts.length > 0 ? `; ${parts.join(", ")}` : "";
}
