/**
 * The CLI's one way to call a running lab-reset app: Node's fetch, the function key as
 * `x-functions-key`, a timeout per call, and every failure turned into one line saying what to do.
 */
import type { z } from "zod";
import { zodProblems } from "../lab/config.js";
import type { CliContext } from "./context.js";
import { CliError, usageError } from "./errors.js";

export const DEFAULT_URL = "http://127.0.0.1:7071";

/** The hint after a 404 on a pair's route: usually a mistyped pair; for a listed pair, an app older than this command. */
export const UNKNOWN_PAIR = "lab-reset status lists the pairs (a 404 for a listed pair means the app predates this command)";

/** The options every command that talks to the app takes. */
export interface RemoteOptions {
  url?: string;
  key?: string;
  json?: boolean;
}

export interface App {
  /** Without a trailing slash, e.g. `https://lab-reset.azurewebsites.net`. */
  url: string;
  key: string | undefined;
  timeoutMs: number;
}

export interface Call {
  method: "GET" | "POST" | "DELETE";
  path: string;
  body?: unknown;
  /** What to do after a 404, e.g. "run lab-reset status for the pair ids". */
  notFound?: string;
  /** What to do after a 409. */
  conflict?: string;
}

/** The app named by --url/--key, else LAB_RESET_URL/LAB_RESET_KEY, else the local host. */
export function appFrom(options: RemoteOptions, context: CliContext): App {
  const url = options.url ?? (context.env.LAB_RESET_URL || DEFAULT_URL);
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw usageError(`--url ${url} is not a URL; give the app's address, e.g. ${DEFAULT_URL}`);
  }
  if (parsed.protocol !== "http:" && parsed.protocol !== "https:") throw usageError(`--url ${url} is not an http(s) URL; give the app's address, e.g. ${DEFAULT_URL}`);
  return { url: url.replace(/\/+$/, ""), key: options.key ?? (context.env.LAB_RESET_KEY || undefined), timeoutMs: context.timeoutMs };
}

/** Sends one request; answers the parsed JSON body of a 2xx, or throws a CliError for anything else. */
export async function callApp(app: App, call: Call): Promise<unknown> {
  const request = `${call.method} ${call.path}`;
  let response: Response;
  try {
    response = await fetch(`${app.url}${call.path}`, {
      method: call.method,
      headers: {
        accept: "application/json",
        ...(app.key !== undefined ? { "x-functions-key": app.key } : {}),
        ...(call.body !== undefined ? { "content-type": "application/json" } : {}),
      },
      ...(call.body !== undefined ? { body: JSON.stringify(call.body) } : {}),
      signal: AbortSignal.timeout(app.timeoutMs),
    });
  } catch (error) {
    throw new CliError(`cannot reach lab-reset at ${app.url}: ${transportProblem(error, request, app.timeoutMs)}; start it (npm start) or set --url/LAB_RESET_URL`);
  }
  let text: string;
  try {
    text = await response.text();
  } catch (error) {
    throw new CliError(`lab-reset at ${app.url} broke off its answer to ${request}: ${transportProblem(error, request, app.timeoutMs)}; try again`);
  }
  const body = parseJson(text);
  if (response.ok) {
    if (body === undefined && text.trim() !== "") throw new CliError(`${request}: ${app.url} answered ${response.status} with something that is not JSON; is --url/LAB_RESET_URL the lab-reset app?`);
    return body ?? null;
  }
  throw new CliError(refusal(app, call, response.status, appError(body)));
}

/** Checks an answer's shape, so a table is never drawn from something else. */
export function answerAs<T>(schema: z.ZodType<T>, body: unknown, app: App, call: Pick<Call, "method" | "path">): T {
  const result = schema.safeParse(body);
  if (result.success) return result.data;
  const problems = zodProblems(result.error);
  throw new CliError(`${call.method} ${call.path}: unexpected answer from ${app.url} (${problems.slice(0, 2).join("; ")}); is --url the lab-reset app, at the same version as this CLI?`);
}

function refusal(app: App, call: Call, status: number, error: string | undefined): string {
  const what = `${call.method} ${call.path}`;
  const from = `${status} from ${app.url}`;
  if (status === 401 || status === 403) {
    const todo = app.key === undefined ? "pass --key or set LAB_RESET_KEY to the app's function key" : "check --key/LAB_RESET_KEY: it must be the app's function key";
    return `${what}: the key was refused (${from}${error ? `: ${error}` : ""}); ${todo}`;
  }
  if (status === 404) return `${what}: ${error ?? "not found"} (${from}); ${call.notFound ?? "is --url the lab-reset app, at the same version as this CLI?"}`;
  if (status === 409) return `${what}: ${error ?? "conflict"} (${from}); ${call.conflict ?? "see lab-reset status"}`;
  if (status >= 500) return `${what}: lab-reset failed (${from}): ${error ?? "no error given"}; retry later, or read the app's log`;
  return `${what}: refused (${from}): ${error ?? "no error given"}; see lab-reset --help`;
}

function transportProblem(error: unknown, request: string, timeoutMs: number): string {
  if (error instanceof Error && (error.name === "TimeoutError" || error.name === "AbortError")) return `no answer to ${request} within ${timeoutMs / 1000} s`;
  // fetch says "fetch failed"; the reason (ECONNREFUSED, ENOTFOUND, a TLS error) is its cause.
  const cause = error instanceof Error ? (error.cause as { code?: string; message?: string } | undefined) : undefined;
  if (cause?.code === "ECONNREFUSED") return "connection refused (ECONNREFUSED)";
  if (cause?.code === "ENOTFOUND") return "no such host (ENOTFOUND)";
  return oneLine(cause?.code ?? cause?.message ?? (error instanceof Error ? error.message : String(error)));
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

/** The app's `error` field (and `problems`, if it lists them), on one line. */
function appError(body: unknown): string | undefined {
  if (typeof body !== "object" || body === null) return undefined;
  const { error, problems } = body as { error?: unknown; problems?: unknown };
  const parts = [typeof error === "string" ? error : undefined, ...(Array.isArray(problems) ? problems.map(String) : [])].filter((p) => p !== undefined);
  return parts.length > 0 ? oneLine(parts.join("; ")) : undefined;
}

const oneLine = (text: string) => {
  const flat = text.replace(/\s+/g, " ").trim();
  return flat.length > 300 ? `${flat.slice(0, 299)}…` : flat;
};
