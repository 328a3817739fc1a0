/**
 * The composition root: builds the GitHub client, the stores, the queue and the config once per
 * process (GitHub App tokens are cached by the Octokit instance, so it must not be rebuilt per request).
 */
import { DefaultAzureCredential } from "@azure/identity";
import { OidcVerifier } from "./auth/oidc.js";
import { ConfigurationError, labKey, loadLabConfigFile, type LabConfig } from "./lab/config.js";
import { createOctokit, OctokitLabGitHub, type LabGitHub } from "./github/client.js";
import { OctokitHookDeliveries, type HookDeliveries } from "./github/deliveries.js";
import { TriggerLookups } from "./github/lookups.js";
import { routingWarnings } from "./lab/routing.js";
import { consoleLogger, type Logger } from "./logger.js";
import { OncePerKey } from "./once.js";
import { ReconcileWorker } from "./reconcile/worker.js";
import { callerSettingsProblems, GITHUB_SETTINGS_HINT, NO_REDELIVERY_WARNING, OIDC_DISABLED_WARNING, readSettings, type Settings } from "./settings.js";
import type { StorageConnection, StorageRetry } from "./storage/connection.js";
import { MemoryCoverageStore, TableCoverageStore, type CoverageStore } from "./storage/coverage.js";
import { MemoryFactStore, TableFactStore, type FactStore } from "./storage/facts.js";
import { MemoryHistoryStore, recordingResets, TableHistoryStore, type HistoryStore } from "./storage/history.js";
import { MemoryRedeliveryLedger, TableRedeliveryLedger, type RedeliveryLedger } from "./storage/deliveries.js";
import { CoalescedSends, MemoryReconcileQueue, StorageReconcileQueue, type ReconcileQueue } from "./storage/queue.js";
import { TableStore, type PairStore } from "./storage/tables.js";

export interface Runtime {
  settings: Settings;
  config: LabConfig;
  github: LabGitHub;
  /** The reads triggers make of GitHub, shared by all requests of this instance. */
  lookups: TriggerLookups;
  store: PairStore;
  /** What triggers learned (job starts and ends), insert-only. */
  facts: FactStore;
  /** The lab's job and reset history, kept `historyDays` for the report and the advice. */
  history: HistoryStore;
  /** Job ends of a run already recorded by this instance. */
  recordedRuns: OncePerKey;
  /** Routing labels the webhook removed recently, per runner and label. */
  routingCloses: OncePerKey;
  /** How far reconciles have served the queue. */
  coverage: CoverageStore;
  /** "Look now" for the queue-triggered reconcile; sends coalesced per instance. */
  queue: ReconcileQueue;
  /** The queue-triggered reconcile of this instance. */
  worker: ReconcileWorker;
  clock: () => Date;
  logger: Logger;
  /** Checks job-completed callers' OIDC tokens; null when OIDC_DISABLED=true. */
  oidc: OidcVerifier | null;
  /** Repositories whose runs and jobs may report (`owner/repo`). */
  allowedRepositories: string[];
  /** The App's webhook delivery log (null with a plain token: that API takes only the App's JWT). */
  deliveries: HookDeliveries | null;
  /** Which failed deliveries were redelivered, and how far the log was read. */
  ledger: RedeliveryLedger;
  /** Set when `clock` is a simulated lab's (`npm start` without GitHub): pages say so. */
  simulatedClock?: { speed: number };
}

/** Settings and config that must be right before any function is registered. */
export function loadStartup(env: NodeJS.ProcessEnv = process.env): { settings: Settings; config: LabConfig } {
  const settings = readSettings(env);
  const problems = callerSettingsProblems(settings);
  if (problems.length > 0) throw new ConfigurationError("App settings are incomplete; fix these and restart:", problems);
  return { settings, config: loadLabConfigFile(settings.labConfigPath) };
}

export interface RuntimeOverrides {
  clock?: () => Date;
  logger?: Logger;
  github?: LabGitHub;
  store?: PairStore;
  /** Default: beside the store in Table Storage, or this process's memory when no storage is configured. */
  facts?: FactStore;
  /** Default: beside the store in Table Storage, or this process's memory when no storage is configured. */
  history?: HistoryStore;
  coverage?: CoverageStore;
  /** Default: the storage queue (or a memory queue when no storage is configured). */
  queue?: ReconcileQueue;
  /** Default: over the GitHub client with App credentials, else none. */
  deliveries?: HookDeliveries | null;
  ledger?: RedeliveryLedger;
  /** The clock is a simulated lab's, running `speed` times the wall clock. */
  simulatedClock?: { speed: number };
  /** Octokit tuning for tests: fast retries, short timeouts. */
  githubClient?: { timeoutMs?: number; retries?: number; retryBaseMs?: number; maxRateLimitWaitSeconds?: number; writeSpacingMs?: number; rateLimitBaseMs?: number };
  /** Storage SDK tuning for tests of a stopped storage: fewer, quicker retries. */
  storageRetry?: StorageRetry;
}

function connectionOf(settings: Settings, retry: StorageRetry | undefined): StorageConnection | null {
  const storage = settings.storage;
  const common = { provisioned: settings.storageProvisioned, retry };
  if (storage.kind === "connectionString") return { kind: "connectionString", connectionString: storage.connectionString, ...common };
  if (storage.kind === "identity") {
    const credential = new DefaultAzureCredential(storage.clientId ? { managedIdentityClientId: storage.clientId } : {});
    return { kind: "identity", tableServiceUrl: storage.tableServiceUrl, queueServiceUrl: storage.queueServiceUrl, credential, ...common };
  }
  return null;
}

export async function createRuntime(settings: Settings, config: LabConfig, overrides: RuntimeOverrides = {}): Promise<Runtime> {
  const logger = overrides.logger ?? consoleLogger;
  const clock = overrides.clock ?? (() => new Date());
  const problems: string[] = [];
  if (!overrides.github && settings.githubAuth === null) problems.push(`No GitHub credentials: ${GITHUB_SETTINGS_HINT}.`);
  const connection = connectionOf(settings, overrides.storageRetry);
  if (!overrides.store && connection === null) {
    problems.push("No storage: set AzureWebJobsStorage (a connection string) or AzureWebJobsStorage__accountName (managed identity).");
  }
  problems.push(...callerSettingsProblems(settings));
  if (problems.length > 0) throw new ConfigurationError("lab-reset cannot start:", problems);

  const octokit = overrides.github ? null : createOctokit({ baseUrl: settings.githubApiUrl, auth: settings.githubAuth!, logger, ...overrides.githubClient });
  const github = overrides.github ?? new OctokitLabGitHub(octokit!, config);
  // One client for both: the App's tokens are cached once, and its requests are counted with the reconcile's.
  const deliveries = overrides.deliveries !== undefined ? overrides.deliveries : octokit && settings.githubAuth?.kind === "app" ? new OctokitHookDeliveries(octokit) : null;
  const tables = { tablePrefix: settings.tablePrefix, lab: labKey(config) };
  const [pairStore, facts, history, coverage, queue, ledger] = await Promise.all([
    overrides.store ?? TableStore.open({ connection: connection!, ...tables }),
    overrides.facts ?? (connection ? TableFactStore.open({ connection, ...tables }) : new MemoryFactStore()),
    overrides.history ?? (connection ? TableHistoryStore.open({ connection, ...tables, clock }) : new MemoryHistoryStore(clock)),
    overrides.coverage ?? (connection ? TableCoverageStore.open({ connection, ...tables }) : new MemoryCoverageStore()),
    overrides.queue ?? (connection ? StorageReconcileQueue.open(connection, settings.reconcileQueue) : new MemoryReconcileQueue(clock)),
    overrides.ledger ?? (connection ? TableRedeliveryLedger.open({ connection, ...tables }) : new MemoryRedeliveryLedger()),
  ]);

  // Every reset's dispatch and end reach the history through the events that record them.
  const store = recordingResets(pairStore, history, logger);
  const allowedRepositories = settings.allowedRepositories ?? [`${config.github.owner}/${config.github.repo}`];
  const oidc = settings.oidc.disabled ? null : new OidcVerifier({ issuer: settings.oidc.issuer, audience: settings.oidc.audience!, allowedRepositories });
  if (oidc === null) logger.warn(OIDC_DISABLED_WARNING);
  for (const warning of routingWarnings(settings, config)) logger.warn(warning);
  if (settings.webhookSecrets.length > 0 && deliveries === null && settings.githubAuth?.kind !== "app") logger.warn(NO_REDELIVERY_WARNING);
  const runtime: Runtime = {
    settings,
    config,
    github,
    lookups: new TriggerLookups(github, config, clock),
    store,
    facts,
    history,
    recordedRuns: new OncePerKey(clock),
    routingCloses: new OncePerKey(clock),
    coverage,
    queue: new CoalescedSends(queue),
    worker: new ReconcileWorker(() => runtime),
    clock,
    logger,
    oidc,
    allowedRepositories,
    deliveries,
    ledger,
    ...(overrides.simulatedClock ? { simulatedClock: overrides.simulatedClock } : {}),
  };
  return runtime;
}

let shared: Promise<Runtime> | undefined;

/** The process-wide runtime from the environment, built on first use. A failed build is retried next call. */
export function getRuntime(): Promise<Runtime> {
  if (!shared) {
    const { settings, config } = loadStartup();
    shared = createRuntime(settings, config).catch((error: unknown) => {
      shared = undefined;
      throw error;
    });
  }
  return shared;
}
