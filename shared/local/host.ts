/**
 * A small stand-in for the Azure Functions host (Core Tools cannot be installed here): serves
 * the same function definitions on loopback, each HTTP function at /api/<route>, runs timers on
 * their schedule, runs a timer now on POST /admin/functions/<name> (the host's convention), and
 * serves queue functions from the storage account's queues as the host's queue trigger does.
 * Function keys are not checked, as with `func start`.
 */
import { createServer, type IncomingMessage } from "node:http";
import azureFunctions, { type InvocationContext as Context, type Timer, type TriggerMetadata } from "@azure/functions";
import type { FunctionDefinition } from "../../functions/definitions.js";
import type { Logger } from "../logger.js";
import { parseSchedule } from "../lab/schedule.js";
import { pollQueue, readQueueHostSettings, type QueueHostSettings, type QueuePoller } from "./queue-poller.js";

export interface LocalHost {
  url: string;
  close(): Promise<void>;
}

export interface LocalHostOptions {
  definitions: FunctionDefinition[];
  port?: number;
  logger: Logger;
  /** Run timers on their schedules (off in tests, which invoke them through the admin route). */
  runTimers?: boolean;
  /** Largest body read; larger requests get 413 without being buffered. */
  maxBodyBytes?: number;
  /** The storage account whose queues the queue functions read (AzureWebJobsStorage). Without it, they are not run. */
  queueConnectionString?: string;
  /** Where `/` redirects (the status page), if anywhere. */
  rootRedirect?: string;
  /** Default: host.json's `extensions.queues`. */
  queueSettings?: QueueHostSettings;
}

// The package is a CommonJS bundle whose classes Node cannot see as named ESM exports.
const { HttpRequest, InvocationContext } = azureFunctions;

function contextFor(functionName: string, logger: Logger, triggerMetadata?: TriggerMetadata): Context {
  return new InvocationContext({
    functionName,
    ...(triggerMetadata ? { triggerMetadata } : {}),
    logHandler: (level, ...args) => {
      const text = args.map((a) => (typeof a === "string" ? a : JSON.stringify(a))).join(" ");
      const line = `[${functionName}] ${text}`;
      if (level === "error" || level === "critical") logger.error(line);
      else if (level === "warning") logger.warn(line);
      else logger.info(line);
    },
  });
}

async function readBody(req: IncomingMessage, limit: number): Promise<string | null> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > limit) return null;
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString("utf8");
}

/** The route's `{name}` parameters if `pathname` is `/api/<route>`, else null. */
export function matchRoute(route: string, pathname: string): Record<string, string> | null {
  const want = `api/${route}`.split("/");
  const got = pathname.replace(/^\/+|\/+$/g, "").split("/");
  if (want.length !== got.length) return null;
  const params: Record<string, string> = {};
  for (const [i, part] of want.entries()) {
    const name = /^\{(\w+)\}$/.exec(part)?.[1];
    if (name) params[name] = decodeURIComponent(got[i]!);
    else if (part.toLowerCase() !== got[i]!.toLowerCase()) return null;
  }
  return params;
}

const timerInput = (isPastDue: boolean): Timer => ({ isPastDue, schedule: { adjustForDST: false }, scheduleStatus: { last: "", next: "", lastUpdated: "" } });

export async function startLocalHost(options: LocalHostOptions): Promise<LocalHost> {
  const { definitions, logger } = options;
  const maxBody = options.maxBodyBytes ?? 1024 * 1024;
  const timers = new Set<NodeJS.Timeout>();
  let closing = false;

  const runTimer = async (definition: Extract<FunctionDefinition, { kind: "timer" }>, isPastDue = false) => {
    try {
      await definition.handler(timerInput(isPastDue), contextFor(definition.name, logger));
    } catch (error) {
      logger.error(`[${definition.name}] failed: ${(error as Error).message}`);
    }
  };

  const server = createServer(async (req, res) => {
    const send = (status: number, body?: unknown, headers: Record<string, string> = {}) => {
      res.writeHead(status, { ...(body === undefined ? {} : { "content-type": "application/json; charset=utf-8" }), ...headers });
      res.end(body === undefined ? undefined : JSON.stringify(body));
    };
    try {
      const url = new URL(req.url ?? "/", `http://${req.headers.host ?? "127.0.0.1"}`);
      const admin = /^\/admin\/functions\/([^/]+)$/.exec(url.pathname);
      if (admin) {
        const definition = definitions.find((d) => d.name.toLowerCase() === decodeURIComponent(admin[1]!).toLowerCase());
        if (req.method !== "POST") return send(405, { error: "Use POST to run a function now." });
        if (!definition || definition.kind !== "timer") return send(404, { error: `No timer function named ${admin[1]}. Timers: ${definitions.filter((d) => d.kind === "timer").map((d) => d.name).join(", ")}` });
        await runTimer(definition);
        return send(202);
      }
      // Routes match as the Functions host matches them: case-insensitively, `{name}` segments as parameters.
      const matched = definitions.flatMap((d) => (d.kind === "http" ? [{ definition: d, params: matchRoute(d.route, url.pathname) }] : [])).filter((m) => m.params !== null);
      if (matched.length === 0) {
        if (url.pathname === "/" && options.rootRedirect) return send(302, undefined, { location: options.rootRedirect });
        return send(404, { error: `No function at ${url.pathname}. Functions: ${definitions.filter((d) => d.kind === "http").map((d) => `/api/${d.route}`).join(", ")}` });
      }
      const found = matched.find((m) => m.definition.methods.includes((req.method ?? "GET") as never));
      if (!found) return send(405, { error: `${url.pathname} accepts ${[...new Set(matched.flatMap((m) => m.definition.methods))].join(", ")}` });
      const { definition, params } = found;
      const body = await readBody(req, maxBody);
      if (body === null) return send(413, { error: `Body is larger than ${maxBody} bytes.` });
      const headers: Record<string, string> = {};
      for (const [name, value] of Object.entries(req.headers)) if (typeof value === "string") headers[name] = value;
      const request = new HttpRequest({
        method: req.method ?? "GET",
        url: url.toString(),
        headers,
        params: params!,
        ...(body.length > 0 ? { body: { string: body } } : {}),
      });
      const response = await definition.handler(request, contextFor(definition.name, logger));
      const init = response as { status?: number; jsonBody?: unknown; body?: unknown; headers?: Record<string, string> };
      if (typeof init.body === "string") {
        res.writeHead(init.status ?? 200, init.headers ?? {});
        return res.end(init.body);
      }
      send(init.status ?? 200, init.jsonBody, init.headers ?? {});
    } catch (error) {
      logger.error(`local host: ${(error as Error).stack ?? String(error)}`);
      if (!res.headersSent) send(500, { error: `Unhandled error: ${(error as Error).message}` });
    }
  });

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port ?? 7071, "127.0.0.1", () => resolve());
  });
  const address = server.address();
  const port = typeof address === "object" && address ? address.port : options.port;

  if (options.runTimers) {
    for (const definition of definitions) {
      if (definition.kind !== "timer") continue;
      const schedule = parseSchedule(definition.schedule);
      const arm = () => {
        if (closing) return;
        const wait = schedule.next(new Date()).getTime() - Date.now();
        const maxDelay = 2 ** 31 - 1; // setTimeout's limit (~24.8 days): wake up and look again
        const handle = setTimeout(async () => {
          timers.delete(handle);
          if (wait <= maxDelay) await runTimer(definition);
          arm();
        }, Math.min(wait, maxDelay));
        timers.add(handle);
      };
      arm();
    }
  }

  const pollers: QueuePoller[] = [];
  if (options.queueConnectionString) {
    const queueSettings = options.queueSettings ?? readQueueHostSettings();
    for (const definition of definitions) {
      if (definition.kind !== "queue") continue;
      pollers.push(pollQueue(definition, { connectionString: options.queueConnectionString, settings: queueSettings, logger, contextFor: (name, meta) => contextFor(name, logger, meta) }));
    }
  }

  return {
    url: `http://127.0.0.1:${port}`,
    close: async () => {
      closing = true;
      for (const t of timers) clearTimeout(t);
      await Promise.all(pollers.map((p) => p.stop()));
      await new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      });
    },
  };
}
