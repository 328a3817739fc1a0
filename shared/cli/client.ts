/**
 * The CLI's one way to call a running lab-reset app: Node's fetch, the function key as
 * `x-functions-key`, with Entra sign-in a bearer token beside it, a timeout per call, and every
 * failure turned into one line saying what to do.
 */
import type { TokenCredential } from "@azure/core-auth";
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
  /** The client id of the app's Entra app registration (App Service authentication). */
  entra?: string;
  json?: boolean;
}

export interface App {
  /** Without a trailing slash, e.g. `https://lab-reset.azurewebsites.net`. */
  url: string;
  key: string | undefined;
  /** Entra sign-in in front of the app: a bearer token is sent with every call. */
  entra: Entra | undefined;
  timeoutMs: number;
}

interface Entra {
  clientId: string;
  /** Where the client id came from, to name it in messages. */
  from: "--entra" | "LAB_RESET_ENTRA_CLIENT_ID";
  credential: () => Promise<TokenCredential>;
  /** One token per command run. */
  token?: Promise<string>;
}

export interface Call {
  method: "GET" | "POST" | "DELETE";
  path: string;
  body?: unknown;
  /** What to do after a 404, e.g. "run lab-reset status for the pair ids". */
  notFound?: string;
  /** What to do after a 409; a function reads the app's answer to tell one conflict from another. */
  conflict?: string | ((answer: unknown) => string);
}

/** Entra app registrations' client ids are GUIDs. */
const CLIENT_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** The app named by --url/--key/--entra, else LAB_RESET_URL/LAB_RESET_KEY/LAB_RESET_ENTRA_CLIENT_ID, else the local host. */
export function appFrom(options: RemoteOptions, context: CliContext): App {
  const url = options.url ?? (context.env.LAB_RESET_URL || DEFAULT_URL);
  // Blame what the person typed: the flag, or the variable set somewhere in their shell.
  const named = options.url !== undefined ? `--url ${url}` : `LAB_RESET_URL=${url}`;
  const todo = options.url !== undefined ? `give the app's address, e.g. ${DEFAULT_URL}` : `set LAB_RESET_URL to the app's address, e.g. https://<app>.azurewebsites.net, or pass --url`;
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw usageError(`${named} is not a URL; ${todo}`);
  }
  if (parsed.protocol !== "http:" && parsed.protocol !== "https:") throw usageError(`${named} is not an http(s) URL; ${todo}`);
  return { url: url.replace(/\/+$/, ""), key: options.key ?? (context.env.LAB_RESET_KEY || undefined), entra: entraFrom(options, context), timeoutMs: context.timeoutMs };
}

function entraFrom(options: RemoteOptions, context: CliContext): Entra | undefined {
  const clientId = options.entra ?? (context.env.LAB_RESET_ENTRA_CLIENT_ID || undefined);
  if (clientId === undefined) return undefined;
  const from = options.entra !== undefined ? "--entra" : "LAB_RESET_ENTRA_CLIENT_ID";
  if (!CLIENT_ID.test(clientId.trim())) {
    throw usageError(`${from === "--entra" ? `--entra ${clientId}` : `LAB_RESET_ENTRA_CLIENT_ID=${clientId}`} is not a client id; give the client id (a GUID) of lab-reset's Entra app registration`);
  }
  return { clientId: clientId.trim(), from, credential: context.azureCredential ?? defaultAzureCredential };
}

/** Loaded only for --entra: no other command loads the Azure SDK. */
async function defaultAzureCredential(): Promise<TokenCredential> {
  const { DefaultAzureCredential } = await import("@azure/identity");
  return new DefaultAzureCredential();
}

/** Sends one request; answers the parsed JSON body of a 2xx, or throws a CliError for anything else. */
export async function callApp(app: App, call: Call): Promise<unknown> {
  return (await exchange(app, call)).body;
}

/** As callApp, with the time the app says it is: its `Date` header (null without one). */
export async function callAppDated(app: App, call: Call): Promise<{ body: unknown; date: Date | null }> {
  const { body, response } = await exchange(app, call);
  const date = new Date(response.headers.get("date") ?? "");
  return { body, date: Number.isNaN(date.getTime()) ? null : date };
}

async function exchange(app: App, call: Call): Promise<{ body: unknown; response: Response }> {
  const request = `${call.method} ${call.path}`;
  const token = app.entra ? await entraToken(app, app.entra) : undefined;
  let response: Response;
  try {
    response = await fetch(`${app.url}${call.path}`, {
      method: call.method,
      headers: {
        accept: "application/json",
        ...(app.key !== undefined ? { "x-functions-key": app.key } : {}),
        ...(token !== undefined ? { authorization: `Bearer ${token}` } : {}),
        ...(call.body !== undefined ? { "content-type": "application/json" } : {}),
      },
      ...(call.body !== undefined ? { body: JSON.stringify(call.body) } : {}),
      // Not followed: Entra sign-in answers with a redirect to its login page, and a redirect
      // elsewhere would carry the key and the token to another address.
      redirect: "manual",
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
    return { body: body ?? null, response };
  }
  throw new CliError(refusal(app, call, response, body));
}

/** A token for the app registration's scope, from the credential (the Azure CLI's sign-in, by default). */
function entraToken(app: App, entra: Entra): Promise<string> {
  const scope = `api://${entra.clientId}/.default`;
  entra.token ??= (async () => {
    try {
      const credential = await entra.credential();
      // The credential chain may probe for a managed identity first: give it longer than one call.
      const token = await credential.getToken(scope, { abortSignal: AbortSignal.timeout(Math.max(app.timeoutMs, 30_000)) });
      if (!token?.token) throw new Error("the credential returned no token");
      return token.token;
    } catch (error) {
      throw new CliError(`cannot get an Entra token for ${scope} (${entra.from}): ${credentialProblem(error)}; run az login as a person allowed to sign in to lab-reset, or check ${entra.from} is the client id of its app registration`);
    }
  })();
  return entra.token;
}

/**
 * The one reason worth reading: DefaultAzureCredential's message lists every credential it tried
 * (environment, managed identity, …) over many lines; Entra's own refusal (AADSTS…) or the
 * Azure CLI's says what to do.
 */
function credentialProblem(error: unknown): string {
  const errors = (error as { errors?: unknown } | null)?.errors;
  const inner = Array.isArray(errors) ? (errors as unknown[]) : [error];
  const messages = inner.map((e) => (e instanceof Error ? e.message : String(e)));
  const picked = messages.find((m) => /AADSTS\d+/.test(m)) ?? messages.find((m) => /az login|Azure CLI/i.test(m)) ?? messages[0] ?? "no reason given";
  // Entra appends trace and correlation ids and a timestamp: noise on a terminal.
  return oneLine(picked.replace(/\s+Trace ID:[\s\S]*$/, ""), 200).replace(/\.$/, "");
}

/** Checks an answer's shape, so a table is never drawn from something else. */
export function answerAs<T>(schema: z.ZodType<T>, body: unknown, app: App, call: Pick<Call, "method" | "path">): T {
  const result = schema.safeParse(body);
  if (result.success) return result.data;
  const problems = zodProblems(result.error);
  throw new CliError(`${call.method} ${call.path}: unexpected answer from ${app.url} (${problems.slice(0, 2).join("; ")}); is --url the lab-reset app, at the same version as this CLI?`);
}

function refusal(app: App, call: Call, response: Response, body: unknown): string {
  const { status } = response;
  const error = appError(body);
  const what = `${call.method} ${call.path}`;
  const from = `${status} from ${app.url}`;
  const location = response.headers.get("location") ?? "";
  // App Service authentication sends a caller without a session to the Entra login (302), or
  // answers 401 with a Bearer challenge.
  const signIn = (status >= 300 && status < 400 && LOGIN_PAGE.test(location)) || (status === 401 && /^Bearer\b/i.test(response.headers.get("www-authenticate") ?? ""));
  if (signIn) {
    const via = status === 401 ? from : `${status} to the Entra login from ${app.url}`;
    if (app.entra === undefined) return `${what}: lab-reset wants an Entra sign-in (${via}); pass --entra <client-id> or set LAB_RESET_ENTRA_CLIENT_ID to its app registration's client id, after az login`;
    return `${what}: the Entra token for api://${app.entra.clientId} was refused (${via}${challengeError(response)}); check ${app.entra.from} is the client id of lab-reset's app registration, and that it issues tokens for api://${app.entra.clientId} (docs/deploy.md)`;
  }
  if (status >= 300 && status < 400) {
    return `${what}: ${app.url} redirects to ${location || "an address it does not give"} (${status}); give the app's own address as --url/LAB_RESET_URL`;
  }
  if (status === 401 || status === 403) {
    const todo = app.key === undefined ? "pass --key or set LAB_RESET_KEY to the app's function key" : "check --key/LAB_RESET_KEY: it must be the app's function key";
    return `${what}: the key was refused (${from}${error ? `: ${error}` : ""}); ${todo}`;
  }
  if (status === 404) return `${what}: ${error ?? "not found"} (${from}); ${call.notFound ?? "is --url the lab-reset app, at the same version as this CLI?"}`;
  if (status === 409) return `${what}: ${error ?? "conflict"} (${from}); ${typeof call.conflict === "function" ? call.conflict(body) : (call.conflict ?? "see lab-reset status")}`;
  if (status >= 500) return `${what}: lab-reset failed (${from}): ${error ?? "no error given"}; retry later, or read the app's log`;
  return `${what}: refused (${from}): ${error ?? "no error given"}; see lab-reset --help`;
}

/** Entra's login pages (public and sovereign clouds) and App Service authentication's own login route. */
const LOGIN_PAGE = /^https:\/\/login\.(microsoftonline\.com|microsoft\.com|windows\.net|microsoftonline\.us|partner\.microsoftonline\.cn)\/|\/\.auth\/login\b/i;

/** The error_description of a Bearer challenge, if it gives one. */
function challengeError(response: Response): string {
  const description = /error_description="([^"]*)"/i.exec(response.headers.get("www-authenticate") ?? "")?.[1];
  return description ? `: ${oneLine(description, 200)}` : "";
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

const oneLine = (text: string, max = 300) => {
  const flat = text.replace(/\s+/g, " ").trim();
  return flat.length > max ? `${flat.slice(0, max - 1)}…` : flat;
};
