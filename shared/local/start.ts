/**
 * `npm start`: the app on this machine, with the same function definitions Azure runs.
 * Starts Azurite itself when AzureWebJobsStorage is not set, and a simulated lab (GitHub
 * stand-in, simulated clock) when no GitHub settings are given.
 */
import { functionDefinitions, redeliverScheduleOf } from "../../functions/definitions.js";
import { GitHubError } from "../github/client.js";
import { ConfigurationError, type LabConfig } from "../lab/config.js";
import { consoleLogger, type Logger } from "../logger.js";
import type { PairStore } from "../storage/tables.js";
import { SIMULATED_ROUTING_LABELS, startSimulatedLab, type SimulatedLab } from "../sim/local-lab.js";
import { SIM_WEBHOOK_SECRET } from "../sim/simulate.js";
import { createRuntime, loadStartup } from "../runtime.js";
import { GITHUB_SETTINGS_HINT } from "../settings.js";
import { StoreError } from "../storage/connection.js";
import { AzuriteError, startAzurite, type RunningAzurite } from "./azurite.js";
import { startLocalHost, type LocalHost } from "./host.js";
import { watchParents } from "./parents.js";
import { simulatorSettings, StartupError } from "./startup-settings.js";

// What this process started, stopped on every way out (see `stop`).
let sim: SimulatedLab | undefined;
let azurite: RunningAzurite | undefined;
let host: LocalHost | undefined;

// The same checks and words as bin/check-port.mjs, which `npm start` runs before the build.
function localPort(): number {
  const text = process.env.PORT?.trim() || "7071";
  const port = Number(text);
  if (!/^\d+$/.test(text) || port > 65535) throw new StartupError(`PORT "${text}" is not a port number: set PORT to a free port, e.g. 7071`);
  return port;
}

const portInUse = (port: number | string) => `PORT ${port} is in use (by another lab-reset or func start?): stop it or set PORT to a free port, e.g. PORT=${Number(port) + 1} npm start`;

async function main(): Promise<void> {
  const port = localPort();
  // A local caller has no GitHub Actions token: OIDC is off here unless configured (and said so loudly below).
  const oidcOffByDefault = process.env.OIDC_DISABLED === undefined && !process.env.OIDC_AUDIENCE;
  const startup = loadStartup(oidcOffByDefault ? { ...process.env, OIDC_DISABLED: "true" } : process.env);
  const { settings } = startup;
  let { config } = startup;
  if (settings.githubAuth === null) {
    const { speed, seed } = simulatorSettings();
    console.log(`lab-reset: SIMULATED LAB (no GitHub settings; ${speed} simulated minutes per minute). To use GitHub, ${GITHUB_SETTINGS_HINT}.`);
    config = routedAsSimulated(config);
    // The recommended set-up: the lab signs its deliveries with the app's secret, or gives the app its own.
    const ownSecret = settings.webhookSecrets.length === 0;
    if (ownSecret) settings.webhookSecrets = [SIM_WEBHOOK_SECRET];
    console.log(
      `Recommended set-up: lab-reset signs in as the lab's GitHub App, perf jobs route on the label "${config.routingLabels.join('", "')}", and the simulated lab sends signed workflow_job webhook deliveries (secret: ${ownSecret ? "the lab's own, as GITHUB_WEBHOOK_SECRET is unset" : "GITHUB_WEBHOOK_SECRET"}) to /api/github-webhook; perf runs call nothing, reset runs call job-completed.`,
    );
    sim = await startSimulatedLab(config, {
      speed,
      seed,
      webhookSecret: settings.webhookSecrets[0]!,
      onActivity: (pairId, activity, at) => console.log(`[lab ${stamp(at)}] ${pairId}: VM ${activity}`),
      onDeliveryFailed: (delivery, status, at) => console.log(`[lab ${stamp(at)}] webhook delivery ${delivery} failed (${status}): the app's redeliverWebhooks timer will ask for it again`),
    });
    settings.githubApiUrl = sim.url;
    settings.githubAuth = sim.auth;
  }
  if (settings.storage.kind === "none") {
    azurite = await startAzurite();
    settings.storage = { kind: "connectionString", connectionString: azurite.connectionString };
    console.log(`Storage: Azurite (in memory), tables on 127.0.0.1:${azurite.port}, queues on 127.0.0.1:${azurite.queuePort}; set AzureWebJobsStorage to use another account.`);
  }
  if (!sim && azurite) {
    console.warn(
      `WARNING: this local run acts on the real lab at ${settings.githubApiUrl}: it dispatches real resets, and its Table Storage (in-memory Azurite) is not the deployed app's, so the two do not coordinate their claims. Set AzureWebJobsStorage to the deployed storage account to share them.`,
    );
  }
  // GitHub's second between writes is a simulated second here: a wall-clock one would stretch each
  // label edit over `speed` simulated seconds, and stall a reconcile of the simulated lab for minutes.
  const simulated = sim ? { clock: sim.now, logger: quiet(consoleLogger), simulatedClock: { speed: sim.speed }, githubClient: { writeSpacingMs: Math.max(1, Math.round(1000 / sim.speed)) } } : {};
  const runtime = await createRuntime(settings, config, simulated);
  if (sim) runtime.store = printingStateChanges(runtime.store, sim.now);
  if (oidcOffByDefault) console.warn("OIDC is off because this is the local host; to check tokens as Azure does, set OIDC_AUDIENCE=<audience> (and OIDC_ISSUER for GHES).");
  // In the simulated lab the timer fires on the simulated clock, through the admin route.
  host = await startLocalHost({
    definitions: functionDefinitions(() => Promise.resolve(runtime), { ...settings, redeliverSchedule: redeliverScheduleOf(settings) }),
    port,
    logger: sim ? quiet(consoleLogger) : consoleLogger,
    runTimers: !sim,
    rootRedirect: "/api/status",
    ...(settings.storage.kind === "connectionString" ? { queueConnectionString: settings.storage.connectionString } : {}),
  });
  console.log(`lab-reset for ${config.github.owner}/${config.github.repo} (${config.pairs.length} pairs) against ${settings.githubApiUrl}`);
  console.log(`  GET  ${host.url}/api/pairs`);
  console.log(`  POST ${host.url}/api/job-completed`);
  console.log(`  POST ${host.url}/api/github-webhook${settings.webhookSecrets.length === 0 ? "   (refuses every delivery until GITHUB_WEBHOOK_SECRET is set)" : ""}`);
  console.log(`  POST ${host.url}/admin/functions/scheduledReset   (timer schedule "${settings.resetSchedule}", UTC)`);

  sim?.run(host.url, { resetSchedule: settings.resetSchedule, redeliverSchedule: settings.redeliverSchedule });
}

/** The simulated perf jobs route on SIMULATED_ROUTING_LABELS, so the app takes those off a used VM, whatever lab.config.json names. */
function routedAsSimulated(config: LabConfig): LabConfig {
  if (config.routingLabels.join() === SIMULATED_ROUTING_LABELS.join()) return config;
  console.log(`The simulated perf jobs route on "${SIMULATED_ROUTING_LABELS.join('", "')}": routingLabels is that here, not ${JSON.stringify(config.routingLabels)} as in ${process.env.LAB_CONFIG_PATH?.trim() || "lab.config.json"}.`);
  return { ...config, routingLabels: SIMULATED_ROUTING_LABELS };
}

/** Stops what was started, each part even if another fails; bounded, so the process always ends. */
async function stop(): Promise<void> {
  // The lab's clock first, so nothing more reaches the app; its GitHub once the app is done with it.
  const parts = [() => sim?.stop(), () => host?.close(), () => sim?.close(), () => azurite?.stop()];
  const all = (async () => {
    for (const part of parts) await Promise.resolve(part()).catch((error: unknown) => console.error(`lab-reset: while stopping: ${(error as Error).message}`));
  })();
  await Promise.race([all, new Promise((resolve) => setTimeout(resolve, 15_000).unref())]);
}

/** The one line for a failure in settings or surroundings; null for a bug (its stack is printed). */
function problemLine(error: unknown): string | null {
  if (error instanceof ConfigurationError || error instanceof StoreError || error instanceof GitHubError || error instanceof AzuriteError || error instanceof StartupError) return error.message;
  const listen = error as NodeJS.ErrnoException & { port?: number };
  if (listen?.syscall === "listen") {
    const port = listen.port ?? process.env.PORT ?? 7071;
    if (listen.code === "EADDRINUSE") return portInUse(port);
    if (listen.code === "EACCES") return `PORT ${port} is not allowed for this user (EACCES): set PORT to 1024 or above`;
  }
  return null;
}

const stamp = (at: Date) => at.toISOString().slice(5, 16).replace("T", " ");

/** The simulated lab prints the app's decisions as state changes; routine log lines would drown them. */
function quiet(logger: Logger): Logger {
  return {
    // A timer reconcile's one-line summary still shows: it answers "did my manual run work?"; so
    // does a redelivery's, which answers "did the failed delivery come back?".
    info: (m, ...r) => (/^(\[reconcileLab\] )?reconcile \{"trigger":"timer"|^(\[redeliverWebhooks\] )?redeliver \{.*"redelivered":[1-9]/.test(m) ? logger.info(m, ...r) : undefined),
    warn: (m, ...r) => (m.includes("OIDC IS OFF") ? undefined : logger.warn(m, ...r)),
    error: (m, ...r) => logger.error(m, ...r),
  };
}

/** Prints each state change the app records, as it records it. */
function printingStateChanges(store: PairStore, now: () => Date): PairStore {
  return {
    listPairs: () => store.listPairs(),
    getPair: (id) => store.getPair(id),
    createPair: (r) => store.createPair(r),
    replacePair: (r, etag) => store.replacePair(r, etag),
    listEvents: (id, limit) => store.listEvents(id, limit),
    listEventsSince: (id, since) => store.listEventsSince(id, since),
    appendEvents: async (events) => {
      await store.appendEvents(events);
      for (const e of events) {
        console.log(`[app ${stamp(now())}] ${e.pairId}: ${e.kind === "dispatch" ? "reset dispatched" : `${e.from ?? "new"} → ${e.to}`} (${e.trigger}: ${e.reason})`);
      }
    },
  };
}

// A signal during start-up stops too: what has started is stopped, and Azurite processes still
// starting stop by themselves when this process ends (their watchdog). So does the end of
// `npm start` (see parents.ts), which would otherwise leave this process holding the port.
const signalled = new Promise<number>((resolve) => {
  for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) process.once(signal, () => resolve(0));
  watchParents(() => {
    console.error("lab-reset: its parent process (npm start) is gone: stopping");
    resolve(0);
  });
});
// A terminal or pipe closed with the parent must not turn stopping into a crash.
for (const stream of [process.stdout, process.stderr]) stream.on("error", () => {});
const failed = (error: unknown) => {
  console.error(problemLine(error) ?? error);
  return 1;
};
const code = await Promise.race([main().then(() => signalled, failed), signalled]);
await stop();
process.exit(code);
