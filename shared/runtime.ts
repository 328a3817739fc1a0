/**
 * The composition root: builds the GitHub client, the store and the config once per process
 * (GitHub App tokens are cached by the Octokit instance, so it must not be rebuilt per request).
 */
import { DefaultAzureCredential } from "@azure/identity";
import { ConfigurationError, labKey, loadLabConfigFile, type LabConfig } from "./config.js";
import { createOctokit, OctokitLabGitHub, type LabGitHub } from "./github.js";
import { consoleLogger, type Logger } from "./logger.js";
import { GITHUB_SETTINGS_HINT, readSettings, type Settings } from "./settings.js";
import { TableStore, type PairStore } from "./store.js";

export interface Runtime {
  settings: Settings;
  config: LabConfig;
  github: LabGitHub;
  store: PairStore;
  clock: () => Date;
  logger: Logger;
}

/** Settings and config that must be right before any function is registered. */
export function loadStartup(env: NodeJS.ProcessEnv = process.env): { settings: Settings; config: LabConfig } {
  const settings = readSettings(env);
  return { settings, config: loadLabConfigFile(settings.labConfigPath) };
}

export interface RuntimeOverrides {
  clock?: () => Date;
  logger?: Logger;
  github?: LabGitHub;
  store?: PairStore;
  /** Octokit tuning for tests: fast retries, short timeouts. */
  githubClient?: { timeoutMs?: number; retries?: number; retryBaseMs?: number; maxRateLimitWaitSeconds?: number; writeSpacingMs?: number };
}

export async function createRuntime(settings: Settings, config: LabConfig, overrides: RuntimeOverrides = {}): Promise<Runtime> {
  const logger = overrides.logger ?? consoleLogger;
  const problems: string[] = [];
  if (!overrides.github && settings.githubAuth === null) problems.push(`No GitHub credentials: ${GITHUB_SETTINGS_HINT}.`);
  if (!overrides.store && settings.storage.kind === "none") {
    problems.push("No Table Storage: set AzureWebJobsStorage (a connection string) or AzureWebJobsStorage__accountName (managed identity).");
  }
  if (problems.length > 0) throw new ConfigurationError("lab-reset cannot start:", problems);

  const github =
    overrides.github ??
    new OctokitLabGitHub(createOctokit({ baseUrl: settings.githubApiUrl, auth: settings.githubAuth!, logger, ...overrides.githubClient }), config);
  const storage = settings.storage;
  const store =
    overrides.store ??
    (await TableStore.open({
      connection:
        storage.kind === "connectionString"
          ? { kind: "connectionString", connectionString: storage.connectionString }
          : {
              kind: "identity",
              tableServiceUrl: storage.kind === "identity" ? storage.tableServiceUrl : "",
              credential: new DefaultAzureCredential(storage.kind === "identity" && storage.clientId ? { managedIdentityClientId: storage.clientId } : {}),
            },
      tablePrefix: settings.tablePrefix,
      lab: labKey(config),
    }));
  return { settings, config, github, store, clock: overrides.clock ?? (() => new Date()), logger };
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
