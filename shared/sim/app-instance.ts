/**
 * One app instance in a process of its own, as Flex Consumption runs one: the runtime built from
 * the app settings in the environment, behind the local host, which serves the HTTP functions and
 * polls the reconcile queue as the Functions host does. The burst benchmark runs two of them on
 * one Azurite; the kill test SIGKILLs one right after a 2xx and starts another.
 *
 *   PORT=0 GITHUB_API_URL=… GITHUB_TOKEN=… AzureWebJobsStorage=… OIDC_DISABLED=true \
 *     node dist/shared/sim/app-instance.js
 *
 * It prints one JSON line per event on stdout, and nothing else there:
 *   {"event":"listening","url":…}           once it serves;
 *   {"event":"reconcile",…}                 for each reconcile it ran (the reconcile's own summary);
 *   {"event":"stats","reconciles":…,"timings":…}   on SIGUSR2, and before it exits on SIGTERM or SIGINT
 *                                           (timings with APP_INSTANCE_TIMINGS=1: where a call's time goes).
 * Warnings and errors go to stderr (the OIDC-off warning, which job-completed repeats per call, once).
 * `APP_INSTANCE_MODE=floor` starts the bare server the burst is compared with instead (see floorMain).
 * `APP_INSTANCE_QUEUE_SETTINGS` (JSON, host.json's `extensions.queues` form) overrides host.json's
 * polling for tests; `APP_INSTANCE_EXIT_WITH_STDIN=1` stops the instance when its parent goes away.
 *
 * `spawnAppInstance` is the parent's side: it starts this file and reads those lines.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { createHmac, timingSafeEqual } from "node:crypto";
import { createServer } from "node:http";
import { monitorEventLoopDelay } from "node:perf_hooks";
import { readFileSync, realpathSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { TableClient } from "@azure/data-tables";
import { functionDefinitions } from "../../functions/definitions.js";
import { ConfigurationError } from "../lab/config.js";
import { startLocalHost } from "../local/host.js";
import { QueueHostSettingsSchema, readQueueHostSettings } from "../local/queue-poller.js";
import type { Logger } from "../logger.js";
import { createRuntime, loadStartup, type Runtime } from "../runtime.js";
import { OIDC_DISABLED_WARNING, type Settings } from "../settings.js";
import { CoalescedSends, StorageReconcileQueue } from "../storage/queue.js";

/** The reconcile's summary line, as the host's log handler prefixes it with the function's name. */
const RECONCILE_SUMMARY = /^(?:\[[^\]]+\] )?reconcile (\{.*\})$/;

export interface ReconcileLine {
  event: "reconcile";
  /** This instance's clock when the summary was logged (the reconcile's end). */
  at: string;
  trigger: string;
  ok: boolean;
  dispatches: number;
  githubRequests: number;
  durationMs: number;
  pairs: Record<string, number>;
}

export interface TimingSummary {
  count: number;
  p50: number;
  p99: number;
  max: number;
}

export interface StatsLine {
  event: "stats";
  /** The worker's count: reconciles this instance ran since it started. */
  reconciles: number;
  /** With APP_INSTANCE_TIMINGS=1: how long each kind of call took since the last SIGUSR2. */
  timings: Record<string, TimingSummary>;
}

type InstanceLine = { event: "listening"; url: string; pid: number } | ReconcileLine | StatsLine;

const emit = (line: InstanceLine) => process.stdout.write(`${JSON.stringify(line)}\n`);

function instanceLogger(): Logger {
  let warnedOidc = false;
  const text = (m: string, rest: unknown[]) => [m, ...rest.map((r) => (typeof r === "string" ? r : JSON.stringify(r)))].join(" ");
  return {
    info: (m, ...rest) => {
      const summary = RECONCILE_SUMMARY.exec(text(m, rest));
      if (summary) emit({ event: "reconcile", at: new Date().toISOString(), ...(JSON.parse(summary[1]!) as Omit<ReconcileLine, "event" | "at">) });
    },
    warn: (m, ...rest) => {
      const line = text(m, rest);
      if (line.includes(OIDC_DISABLED_WARNING)) {
        if (warnedOidc) return;
        warnedOidc = true;
      }
      process.stderr.write(`${line}\n`);
    },
    error: (m, ...rest) => process.stderr.write(`${text(m, rest)}\n`),
  };
}

/**
 * The floor the issue measures a burst against: a bare HTTP server that only checks the body's
 * HMAC and makes one Azurite table write per call (`APP_INSTANCE_MODE=floor`).
 */
async function floorMain(): Promise<void> {
  const secret = process.env.GITHUB_WEBHOOK_SECRET ?? "";
  const table = TableClient.fromConnectionString(process.env.AzureWebJobsStorage ?? "", `${process.env.LAB_TABLE_PREFIX ?? "floor"}Floor`, { allowInsecureConnection: true });
  await table.createTable();
  let n = 0;
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const body = Buffer.concat(chunks);
      const signature = String(req.headers["x-hub-signature-256"] ?? "");
      const expected = Buffer.from(`sha256=${createHmac("sha256", secret).update(body).digest("hex")}`);
      const signed = signature.length === expected.length && timingSafeEqual(Buffer.from(signature), expected);
      table.createEntity({ partitionKey: "floor", rowKey: `${process.pid}-${n++}`, signed }).then(
        () => res.writeHead(202).end(),
        () => res.writeHead(503).end(),
      );
    });
  });
  await new Promise<void>((resolveListen) => server.listen(Number(process.env.PORT ?? 0), "127.0.0.1", resolveListen));
  const address = server.address();
  emit({ event: "listening", url: `http://127.0.0.1:${typeof address === "object" && address ? address.port : 0}`, pid: process.pid });
  const stop = () => server.close(() => process.exit(0));
  process.once("SIGTERM", stop);
  process.once("SIGINT", stop);
  if (process.env.APP_INSTANCE_EXIT_WITH_STDIN === "1") {
    process.stdin.on("data", () => undefined);
    process.stdin.once("close", stop);
  }
}

/** Durations of the calls a trigger makes, per name, to show where an answer's time goes. */
class Timings {
  private readonly samples = new Map<string, number[]>();
  private readonly loopDelay = monitorEventLoopDelay({ resolution: 10 });

  constructor() {
    this.loopDelay.enable();
  }

  async time<T>(name: string, work: () => Promise<T>): Promise<T> {
    const started = performance.now();
    try {
      return await work();
    } finally {
      const list = this.samples.get(name) ?? [];
      list.push(performance.now() - started);
      this.samples.set(name, list);
    }
  }

  summary(): Record<string, TimingSummary> {
    const out: Record<string, TimingSummary> = {};
    for (const [name, list] of this.samples) {
      const sorted = [...list].sort((a, b) => a - b);
      const at = (p: number) => Math.round(sorted[Math.max(0, Math.ceil((p / 100) * sorted.length) - 1)] ?? 0);
      out[name] = { count: sorted.length, p50: at(50), p99: at(99), max: Math.round(sorted.at(-1) ?? 0) };
    }
    const ms = (ns: number) => Math.round(ns / 1e6);
    out["event loop delay"] = { count: this.loopDelay.count, p50: ms(this.loopDelay.percentile(50)), p99: ms(this.loopDelay.percentile(99)), max: ms(this.loopDelay.max) };
    return out;
  }

  reset(): void {
    this.samples.clear();
    this.loopDelay.reset();
  }
}

/** The runtime's storage, queue and lookups, each call timed; behaviour unchanged. */
async function timeRuntime(runtime: Runtime, settings: Settings, timings: Timings): Promise<void> {
  const { facts, lookups, store } = runtime;
  runtime.facts = { ...facts, record: (f) => timings.time("facts.record", () => facts.record(f)), listSince: (d) => facts.listSince(d), prune: (d) => facts.prune(d) };
  // Rebuilt as createRuntime composes it, to time both a caller's wait and each message sent.
  const queue = await StorageReconcileQueue.open({ kind: "connectionString", connectionString: (settings.storage as { connectionString: string }).connectionString }, settings.reconcileQueue);
  const coalesced = new CoalescedSends({ send: (m, o) => timings.time("queue message sent", () => queue.send(m, o)), now: () => queue.now() });
  runtime.queue = { send: (m, o) => timings.time("queue.send (caller)", () => coalesced.send(m, o)), now: () => queue.now() };
  const runJobs = lookups.runJobs.bind(lookups);
  const pairOfRunner = lookups.pairOfRunner.bind(lookups);
  lookups.runJobs = (id, attempt) => timings.time("lookups.runJobs", () => runJobs(id, attempt));
  lookups.pairOfRunner = (name) => timings.time("lookups.pairOfRunner", () => pairOfRunner(name));
  runtime.store = { ...store, listPairs: () => store.listPairs(), getPair: (id) => timings.time("store.getPair", () => store.getPair(id)), createPair: (r) => store.createPair(r), replacePair: (r, e) => store.replacePair(r, e), listEvents: (id, n) => store.listEvents(id, n), listEventsSince: (id, since) => store.listEventsSince(id, since), appendEvents: (e) => store.appendEvents(e) };
}

async function main(): Promise<void> {
  if (process.env.APP_INSTANCE_MODE === "floor") return floorMain();
  const logger = instanceLogger();
  const { settings, config } = loadStartup(process.env);
  if (settings.storage.kind !== "connectionString") throw new ConfigurationError("app-instance needs storage:", ["set AzureWebJobsStorage to a connection string (e.g. Azurite's)"]);
  const runtime = await createRuntime(settings, config, { logger });
  const timings = new Timings();
  if (process.env.APP_INSTANCE_TIMINGS === "1") await timeRuntime(runtime, settings, timings);
  const override = process.env.APP_INSTANCE_QUEUE_SETTINGS;
  const hostJson = JSON.parse(readFileSync("host.json", "utf8")) as { extensions?: { queues?: object } };
  const queueSettings = override ? QueueHostSettingsSchema.parse({ ...hostJson.extensions?.queues, ...(JSON.parse(override) as object) }) : readQueueHostSettings();
  const definitions = functionDefinitions(() => Promise.resolve(runtime), settings).map((d) =>
    d.kind === "http" ? { ...d, handler: (request: Parameters<typeof d.handler>[0], context: Parameters<typeof d.handler>[1]) => timings.time(`handler ${d.name}`, () => Promise.resolve(d.handler(request, context))) } : d,
  );
  const host = await startLocalHost({ definitions, port: Number(process.env.PORT ?? 0), logger, queueConnectionString: settings.storage.connectionString, queueSettings });
  emit({ event: "listening", url: host.url, pid: process.pid });

  const stats = () => emit({ event: "stats", reconciles: runtime.worker.reconciles, timings: timings.summary() });
  let stopping = false;
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    // A poller waiting on a slow storage call must not keep the process alive for ever.
    setTimeout(() => process.exit(0), 5_000).unref();
    await host.close().catch((error: unknown) => logger.error(`app-instance: close failed: ${(error as Error).message}`));
    stats();
    process.exit(0);
  };
  // SIGUSR2: the counts so far, then start counting afresh.
  process.on("SIGUSR2", () => {
    stats();
    timings.reset();
  });
  process.once("SIGTERM", () => void stop());
  process.once("SIGINT", () => void stop());
  if (process.env.APP_INSTANCE_EXIT_WITH_STDIN === "1") {
    process.stdin.on("data", () => undefined);
    process.stdin.once("close", () => void stop());
  }
}

// ---- the parent's side ------------------------------------------------------------------------

export interface AppInstance {
  name: string;
  url: string;
  child: ChildProcess;
  /** Reconciles this instance reported, in order. */
  reconciles: ReconcileLine[];
  /** The last stats line (SIGUSR2 or exit); the count is the worker's. */
  lastStats: StatsLine | null;
  /** Asks for the stats so far (SIGUSR2), and starts its timings afresh. */
  stats(timeoutMs?: number): Promise<StatsLine>;
  /** What the instance wrote to stderr. */
  stderr(): string;
  /** SIGTERM, then waits for its exit (SIGKILL after `graceMs`). */
  stop(graceMs?: number): Promise<void>;
  /** SIGKILL at once: nothing of the instance runs after this call. */
  kill(): Promise<void>;
  exited: Promise<void>;
}

/** The compiled entry next to this module (dist/shared/sim/app-instance.js when run from dist). */
export function appInstanceEntry(): string {
  const here = fileURLToPath(import.meta.url);
  return here.endsWith(".js") ? here : join(dirname(here), "../../dist/shared/sim/app-instance.js");
}

/** Starts an instance with these app settings and waits until it serves. */
export async function spawnAppInstance(name: string, env: Record<string, string>, options: { startTimeoutMs?: number; entry?: string } = {}): Promise<AppInstance> {
  const child = spawn(process.execPath, [options.entry ?? appInstanceEntry()], {
    env: { PATH: process.env.PATH ?? "", PORT: "0", APP_INSTANCE_EXIT_WITH_STDIN: "1", ...env },
    // stdin is a pipe that closes when this process dies, so the instance never outlives it.
    stdio: ["pipe", "pipe", "pipe"],
  });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  let stderr = "";
  const statsWaiters: ((line: StatsLine) => void)[] = [];
  child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
  const instance: AppInstance = {
    name,
    url: "",
    child,
    reconciles: [],
    lastStats: null,
    stats: (timeoutMs = 10_000) =>
      new Promise<StatsLine>((resolveStats, reject) => {
        const timer = setTimeout(() => reject(new Error(`app instance ${name} gave no stats within ${timeoutMs / 1000} s`)), timeoutMs);
        statsWaiters.push((line) => {
          clearTimeout(timer);
          resolveStats(line);
        });
        child.kill("SIGUSR2");
      }),
    stderr: () => stderr,
    exited,
    stop: async (graceMs = 8_000) => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), graceMs);
      await exited;
      clearTimeout(timer);
    },
    kill: async () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill("SIGKILL");
      await exited;
    },
  };
  const listening = new Promise<string>((resolve, reject) => {
    let buffered = "";
    child.stdout.on("data", (d: Buffer) => {
      buffered += d.toString();
      let newline: number;
      while ((newline = buffered.indexOf("\n")) >= 0) {
        const text = buffered.slice(0, newline);
        buffered = buffered.slice(newline + 1);
        let line: InstanceLine;
        try {
          line = JSON.parse(text) as InstanceLine;
        } catch {
          continue;
        }
        if (line.event === "listening") resolve(line.url);
        else if (line.event === "reconcile") instance.reconciles.push(line);
        else {
          instance.lastStats = line;
          for (const waiter of statsWaiters.splice(0)) waiter(line);
        }
      }
    });
    child.once("exit", (code, signal) => reject(new Error(`app instance ${name} exited (${signal ?? code}) before it listened: ${stderr.trim()}`)));
  });
  const timeoutMs = options.startTimeoutMs ?? 30_000;
  let timer: NodeJS.Timeout | undefined;
  try {
    instance.url = await Promise.race([listening, new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`app instance ${name} did not listen within ${timeoutMs / 1000} s: ${stderr.trim()}`)), timeoutMs)))]);
  } catch (error) {
    await instance.kill();
    throw error;
  } finally {
    clearTimeout(timer);
  }
  return instance;
}

const isEntry = process.argv[1] !== undefined && import.meta.url === pathToFileURL(realpathSync(process.argv[1])).href;
if (isEntry) {
  main().catch((error: unknown) => {
    process.stderr.write(`${error instanceof ConfigurationError ? error.message : String((error as Error).stack ?? error)}\n`);
    process.exit(1);
  });
}
