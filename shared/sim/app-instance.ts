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
 *   {"event":"reconciles","count":…}        on SIGUSR2, and before it exits on SIGTERM or SIGINT.
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
import { realpathSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { TableClient } from "@azure/data-tables";
import { functionDefinitions } from "../../functions/definitions.js";
import { ConfigurationError } from "../lab/config.js";
import { startLocalHost } from "../local/host.js";
import { QueueHostSettingsSchema, readQueueHostSettings } from "../local/queue-poller.js";
import type { Logger } from "../logger.js";
import { createRuntime, loadStartup } from "../runtime.js";
import { OIDC_DISABLED_WARNING } from "../settings.js";

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

type InstanceLine = { event: "listening"; url: string; pid: number } | ReconcileLine | { event: "reconciles"; count: number };

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

async function main(): Promise<void> {
  if (process.env.APP_INSTANCE_MODE === "floor") return floorMain();
  const logger = instanceLogger();
  const { settings, config } = loadStartup(process.env);
  if (settings.storage.kind !== "connectionString") throw new ConfigurationError("app-instance needs storage:", ["set AzureWebJobsStorage to a connection string (e.g. Azurite's)"]);
  const runtime = await createRuntime(settings, config, { logger });
  const override = process.env.APP_INSTANCE_QUEUE_SETTINGS;
  const queueSettings = override ? QueueHostSettingsSchema.parse({ ...readQueueHostSettings(), ...(JSON.parse(override) as object) }) : readQueueHostSettings();
  const host = await startLocalHost({
    definitions: functionDefinitions(() => Promise.resolve(runtime), settings),
    port: Number(process.env.PORT ?? 0),
    logger,
    queueConnectionString: settings.storage.connectionString,
    queueSettings,
  });
  emit({ event: "listening", url: host.url, pid: process.pid });

  let stopping = false;
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    // A poller waiting on a slow storage call must not keep the process alive for ever.
    setTimeout(() => process.exit(0), 5_000).unref();
    await host.close().catch((error: unknown) => logger.error(`app-instance: close failed: ${(error as Error).message}`));
    emit({ event: "reconciles", count: runtime.worker.reconciles });
    process.exit(0);
  };
  process.on("SIGUSR2", () => emit({ event: "reconciles", count: runtime.worker.reconciles }));
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
  /** The count the worker gave at exit (SIGTERM), if it got that far. */
  finalCount: number | null;
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
  child.stderr!.on("data", (d: Buffer) => (stderr += d.toString()));
  const instance: AppInstance = {
    name,
    url: "",
    child,
    reconciles: [],
    finalCount: null,
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
    child.stdout!.on("data", (d: Buffer) => {
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
        else instance.finalCount = line.count;
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
