/**
 * The composition root: builds the GitHub client, the store and the config once per process
 * (GitHub App tokens are cached by the Octokit instance, so it must not be rebuilt per request).
 */
import { DefaultAzureCredential } from "@azure/identity";
import { ConfigurationError, labKey, loadLabConfigFile, type LabConfig } from "./lab/config.js";
import { createOctokit, OctokitLabGitHub, type LabGitHub } from "./github/client.js";
import { consoleLogger, type Logger } from "./logger.js";
import { OidcVerifier } from "./triggers/oidc.js";
import { callerSettingsProblems, GITHUB_SETTINGS_HINT, OIDC_DISABLED_WARNING, readSettings, type Settings } from "./settings.js";
import { TableStore, type PairStore, type TableConnection } from "./storage/tables.js";
import { MemoryDeliveryLog, TableDeliveryLog, type DeliveryLog } from "./triggers/webhook.js";

export interface Runtime {
  settings: Settings;
  config: LabConfig;
  github: LabGitHub;
  store: PairStore;
  clock: () => Date;
  logger: Logger;
  /** Checks job-completed callers' OIDC tokens; null when OIDC_DISABLED=true. */
  oidc: OidcVerifier | null;
  /** Repositories whose runs and jobs may report (`owner/repo`). */
  allowedRepositories: string[];
  /** Webhook deliveries already handled. */
  deliveries: DeliveryLog;
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
  /** Default: a table beside the store's, or this process's memory when the store is an override without Table Storage. */
  deliveries?: DeliveryLog;
  /** Octokit tuning for tests: fast retries, short timeouts. */
  githubClient?: { timeoutMs?: number; retries?: number; retryBaseMs?: number; maxRateLimitWaitSeconds?: number; writeSpacingMs?: number; rateLimitBaseMs?: number };
}

export async function createRuntime(settings: Settings, config: LabConfig, overrides: RuntimeOverrides = {}): Promise<Runtime> {
  const logger = overrides.logger ?? consoleLogger;
  const problems: string[] = [];
  if (!overrides.github && settings.githubAuth === null) problems.push(`No GitHub credentials: ${GITHUB_SETTINGS_HINT}.`);
  if (!overrides.store && settings.storage.kind === "none") {
    problems.push("No Table Storage: set AzureWebJobsStorage (a connection string) or AzureWebJobsStorage__accountName (managed identity).");
  }
  problems.push(...callerSettingsProblems(settings));
  if (problems.length > 0) throw new ConfigurationError("lab-reset cannot start:", problems);

  const github =
    overrides.github ??
    new OctokitLabGitHub(createOctokit({ baseUrl: settings.githubApiUrl, auth: settings.githubAuth!, logger, ...overrides.githubClient }), config);
  const storage = settings.storage;
  const connection: TableConnection | null =
    storage.kind === "connectionString"
      ? { kind: "connectionString", connectionString: storage.connectionString }
      : storage.kind === "identity"
        ? { kind: "identity", tableServiceUrl: storage.tableServiceUrl, credential: new DefaultAzureCredential(storage.clientId ? { managedIdentityClientId: storage.clientId } : {}) }
        : null;
  const tables = { tablePrefix: settings.tablePrefix, lab: labKey(config) };
  const store = overrides.store ?? (await TableStore.open({ connection: connection!, ...tables }));
  const deliveries = overrides.deliveries ?? (connection ? await TableDeliveryLog.open({ connection, ...tables }) : new MemoryDeliveryLog());

  const allowedRepositories = settings.allowedRepositories ?? [`${config.github.owner}/${config.github.repo}`];
  const oidc = settings.oidc.disabled ? null : new OidcVerifier({ issuer: settings.oidc.issuer, audience: settings.oidc.audience!, allowedRepositories });
  if (oidc === null) logger.warn(OIDC_DISABLED_WARNING);
  return { settings, config, github, store, clock: overrides.clock ?? (() => new Date()), logger, oidc, allowedRepositories, deliveries };
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
