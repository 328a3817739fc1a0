/**
 * `npm start`: the app on this machine, with the same function definitions Azure runs.
 * Starts Azurite itself when AzureWebJobsStorage is not set, and a simulated lab (GitHub
 * stand-in, simulated clock) when no GitHub settings are given.
 */
import { functionDefinitions } from "../../functions/definitions.js";
import { ConfigurationError } from "../lab/config.js";
import { consoleLogger, type Logger } from "../logger.js";
import type { PairStore } from "../storage/tables.js";
import { startSimulatedLab, type SimulatedLab } from "../sim/local-lab.js";
import { createRuntime, loadStartup } from "../runtime.js";
import { GITHUB_SETTINGS_HINT } from "../settings.js";
import { startAzurite, type RunningAzurite } from "./azurite.js";
import { startLocalHost } from "./host.js";

async function main(): Promise<number> {
  // A local caller has no GitHub Actions token: OIDC is off here unless configured (and said so loudly below).
  const oidcOffByDefault = process.env.OIDC_DISABLED === undefined && !process.env.OIDC_AUDIENCE;
  const { settings, config } = loadStartup(oidcOffByDefault ? { ...process.env, OIDC_DISABLED: "true" } : process.env);
  let sim: SimulatedLab | undefined;
  if (settings.githubAuth === null) {
    const speed = Number(process.env.SIM_SPEED ?? 60);
    console.log(`lab-reset: SIMULATED LAB (no GitHub settings; ${speed} simulated minutes per minute). To use GitHub, ${GITHUB_SETTINGS_HINT}.`);
    sim = await startSimulatedLab(config, {
      speed,
      seed: Number(process.env.SIM_SEED ?? 1),
      onActivity: (pairId, activity, at) => console.log(`[lab ${stamp(at)}] ${pairId}: VM ${activity}`),
    });
    settings.githubApiUrl = sim.url;
    settings.githubAuth = { kind: "token", token: sim.token };
  }
  let azurite: RunningAzurite | undefined;
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
  const runtime = await createRuntime(settings, config, sim ? { clock: sim.now, logger: quiet(consoleLogger) } : {});
  if (sim) runtime.store = printingStateChanges(runtime.store, sim.now);
  if (oidcOffByDefault) console.warn("OIDC is off because this is the local host; to check tokens as Azure does, set OIDC_AUDIENCE=<audience> (and OIDC_ISSUER for GHES).");
  const port = Number(process.env.PORT ?? 7071);
  // In the simulated lab the timer fires on the simulated clock, through the admin route.
  const host = await startLocalHost({
    definitions: functionDefinitions(() => Promise.resolve(runtime), settings),
    port,
    logger: sim ? quiet(consoleLogger) : consoleLogger,
    runTimers: !sim,
    rootRedirect: "/api/status",
    ...(settings.storage.kind === "connectionString" ? { queueConnectionString: settings.storage.connectionString } : {}),
  });
  console.log(`lab-reset for ${config.github.owner}/${config.github.repo} (${config.pairs.length} pairs) against ${settings.githubApiUrl}`);
  console.log(`  GET  ${host.url}/api/pairs`);
  console.log(`  POST ${host.url}/api/job-completed`);
  console.log(`  POST ${host.url}/api/github-webhook${settings.webhookSecret === null ? "   (refuses every delivery until GITHUB_WEBHOOK_SECRET is set)" : ""}`);
  console.log(`  POST ${host.url}/admin/functions/scheduledReset   (timer schedule "${settings.resetSchedule}", UTC)`);

  sim?.run(host.url, settings.resetSchedule);

  await new Promise<void>((resolve) => {
    process.once("SIGINT", resolve);
    process.once("SIGTERM", resolve);
  });
  await sim?.stop();
  await host.close();
  await azurite?.stop();
  return 0;
}

const stamp = (at: Date) => at.toISOString().slice(5, 16).replace("T", " ");

/** The simulated lab prints the app's decisions as state changes; routine log lines would drown them. */
function quiet(logger: Logger): Logger {
  return { info: () => {}, warn: (m, ...r) => (m.includes("OIDC IS OFF") ? undefined : logger.warn(m, ...r)), error: (m, ...r) => logger.error(m, ...r) };
}

/** Prints each state change the app records, as it records it. */
function printingStateChanges(store: PairStore, now: () => Date): PairStore {
  return {
    listPairs: () => store.listPairs(),
    getPair: (id) => store.getPair(id),
    createPair: (r) => store.createPair(r),
    replacePair: (r, etag) => store.replacePair(r, etag),
    listEvents: (id, limit) => store.listEvents(id, limit),
    appendEvents: async (events) => {
      await store.appendEvents(events);
      for (const e of events) {
        console.log(`[app ${stamp(now())}] ${e.pairId}: ${e.kind === "dispatch" ? "reset dispatched" : `${e.from ?? "new"} → ${e.to}`} (${e.trigger}: ${e.reason})`);
      }
    },
  };
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    console.error(error instanceof ConfigurationError ? error.message : error);
    process.exit(1);
  },
);
