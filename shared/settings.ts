/**
 * App settings (environment variables), validated once at start-up. Every problem is reported
 * together, each naming its setting.
 */
import { z } from "zod";
import { ConfigurationError } from "./lab/config.js";
import { parseSchedule } from "./lab/schedule.js";
import type { GitHubAuth } from "./github/client.js";

export const DEFAULT_RESET_SCHEDULE = "0 0 */6 * * *";
/** How often failed webhook deliveries are looked for and redelivered (GitHub App credentials only). */
export const DEFAULT_REDELIVER_SCHEDULE = "0 */5 * * * *";
export const DEFAULT_OIDC_ISSUER = "https://token.actions.githubusercontent.com";

/** `owner/repo`, as GitHub spells a repository's full name. */
export const REPOSITORY_PATTERN = /^[A-Za-z0-9_.-]+\/[A-Za-z0-9_.-]+$/;

const KEY_VAULT_REFERENCE = /^@Microsoft\.KeyVault\(/i;

const optionalText = z
  .string()
  .trim()
  .transform((v) => (v === "" ? undefined : v))
  .optional();

const LOOPBACK_HOSTS = new Set(["127.0.0.1", "localhost", "[::1]"]);
// Token keys fetched over plain HTTP could be swapped on the way; http is for a loopback test issuer only.
const issuerUrl = z.url({ protocol: /^https?$/, message: "must be the token issuer's URL, e.g. https://token.actions.githubusercontent.com" }).refine((value) => {
  const url = new URL(value);
  return url.protocol === "https:" || LOOPBACK_HOSTS.has(url.hostname);
}, "must use https (http only for a loopback test issuer)");

/** The connection-string keys the storage SDKs read, in their spelling (the queue SDK matches some case-sensitively). */
const CONNECTION_STRING_KEYS = ["DefaultEndpointsProtocol", "AccountName", "AccountKey", "EndpointSuffix", "TableEndpoint", "QueueEndpoint", "BlobEndpoint", "FileEndpoint", "SharedAccessSignature", "UseDevelopmentStorage", "DevelopmentStorageProxyUri"];
const canonicalKey = new Map(CONNECTION_STRING_KEYS.map((key) => [key.toLowerCase(), key]));

export const NOT_A_CONNECTION_STRING = 'is not a connection string (expected "AccountName=…;AccountKey=…" or "UseDevelopmentStorage=true")';

/**
 * Checks a storage connection string before an SDK sees it (the SDKs fail on a malformed one
 * with a TypeError from deep inside), and returns it as both SDKs read it: keys in their
 * spelling, and an account-key string without protocol or endpoints completed with https and
 * core.windows.net (both SDKs refuse it otherwise). `problem` names what to fix.
 */
export function checkConnectionString(value: string): { connectionString: string } | { problem: string } {
  const parts = new Map<string, string>();
  let rewritten = false;
  for (const segment of value.split(";").map((s) => s.trim()).filter((s) => s !== "")) {
    const eq = segment.indexOf("=");
    if (eq <= 0) return { problem: NOT_A_CONNECTION_STRING };
    const key = segment.slice(0, eq).trim();
    const canonical = canonicalKey.get(key.toLowerCase()) ?? key;
    rewritten ||= canonical !== key;
    parts.set(canonical, segment.slice(eq + 1).trim());
  }
  const complete = (key: string, v: string) => {
    parts.set(key, v);
    rewritten = true;
  };
  if (![...parts.keys()].some((key) => canonicalKey.has(key.toLowerCase()))) return { problem: NOT_A_CONNECTION_STRING };
  const development = parts.get("UseDevelopmentStorage");
  if (development !== undefined) {
    if (development.toLowerCase() !== "true") return { problem: `has UseDevelopmentStorage=${development}: use "UseDevelopmentStorage=true" (Azurite on its default ports) or the account's connection string` };
    // The queue SDK recognises it only at the very start, spelt so.
    if (development !== "true" || [...parts.keys()][0] !== "UseDevelopmentStorage") {
      parts.delete("UseDevelopmentStorage");
      return { connectionString: ["UseDevelopmentStorage=true", ...[...parts].map(([key, v]) => `${key}=${v}`)].join(";") };
    }
  } else if (parts.has("AccountKey")) {
    if (!parts.get("AccountName")) return { problem: "has an AccountKey but no AccountName: copy the whole connection string from the storage account's Access keys" };
    if (!/^[A-Za-z0-9+/]+={0,2}$/.test(parts.get("AccountKey")!)) return { problem: "has an AccountKey that is not base64: copy the key again from the storage account's Access keys" };
    const protocol = parts.get("DefaultEndpointsProtocol");
    if (protocol !== undefined && !/^https?$/i.test(protocol)) return { problem: `has DefaultEndpointsProtocol=${protocol}: use https (or http for Azurite)` };
    if (protocol === undefined) complete("DefaultEndpointsProtocol", "https");
    const table = Boolean(parts.get("TableEndpoint"));
    const queue = Boolean(parts.get("QueueEndpoint"));
    if (!parts.get("EndpointSuffix") && !(table && queue)) {
      // One endpoint given alone means a custom host: name the other rather than guess it.
      if (table !== queue) {
        const [given, missing] = table ? ["TableEndpoint", "QueueEndpoint"] : ["QueueEndpoint", "TableEndpoint"];
        return { problem: `has a ${given} but no ${missing} (nor EndpointSuffix): add ${missing}=…; lab-reset uses the account's tables and queues` };
      }
      complete("EndpointSuffix", "core.windows.net");
    }
  } else if (parts.has("SharedAccessSignature")) {
    for (const endpoint of ["TableEndpoint", "QueueEndpoint"]) {
      if (!parts.get(endpoint)) return { problem: `has a SharedAccessSignature but no ${endpoint}: add ${endpoint}=…; lab-reset uses the account's tables and queues` };
    }
  } else {
    return { problem: "has no AccountKey (nor SharedAccessSignature): copy the whole connection string from the storage account's Access keys" };
  }
  for (const endpoint of ["TableEndpoint", "QueueEndpoint"]) {
    const url = parts.get(endpoint);
    if (url !== undefined && !(URL.canParse(url) && /^https?:$/.test(new URL(url).protocol))) {
      return { problem: `has ${endpoint}=${url}, which is not an http(s) URL: give e.g. https://ACCOUNT.${endpoint === "TableEndpoint" ? "table" : "queue"}.core.windows.net` };
    }
  }
  // Untouched when nothing was missing or misspelt, so the string still equals the setting.
  return { connectionString: rewritten ? [...parts].map(([key, v]) => `${key}=${v}`).join(";") : value };
}

const connectionString = z.string().transform((value, ctx) => {
  // An unresolved Key Vault reference is reported as such (below), not as a malformed string.
  if (KEY_VAULT_REFERENCE.test(value)) return value;
  const checked = checkConnectionString(value);
  if ("problem" in checked) {
    ctx.addIssue({ code: "custom", message: checked.problem });
    return z.NEVER;
  }
  return checked.connectionString;
});

const repositoryList = z
  .string()
  .transform((value) => value.split(",").map((r) => r.trim()).filter((r) => r !== ""))
  .pipe(z.array(z.string().regex(REPOSITORY_PATTERN, 'must list repositories as "owner/repo", separated by commas')).min(1, 'must list at least one "owner/repo"'));

const webhookSecrets = (value: string) => value.split(",").map((secret) => secret.trim());

// Names are the app settings' own, so zod's issue paths name the setting to fix.
export const SettingsSchema = z
  .object({
    GITHUB_API_URL: optionalText.pipe(z.url({ protocol: /^https?$/, message: "must be an http(s) URL such as https://api.github.com or https://HOST/api/v3" }).optional()),
    GITHUB_TOKEN: optionalText,
    GITHUB_APP_ID: optionalText.pipe(z.string().regex(/^\d+$/, "must be the GitHub App's numeric id").optional()),
    GITHUB_APP_INSTALLATION_ID: optionalText.pipe(z.string().regex(/^\d+$/, "must be the numeric installation id").optional()),
    GITHUB_APP_PRIVATE_KEY: optionalText.pipe(z.string().regex(/-----BEGIN [A-Z ]*PRIVATE KEY-----/, "must be a PEM private key (-----BEGIN … PRIVATE KEY-----)").optional()),
    LAB_CONFIG_PATH: optionalText,
    AzureWebJobsStorage: optionalText.pipe(connectionString.optional()),
    AzureWebJobsStorage__accountName: optionalText,
    AzureWebJobsStorage__tableServiceUri: optionalText.pipe(z.url().optional()),
    AzureWebJobsStorage__queueServiceUri: optionalText.pipe(z.url().optional()),
    AzureWebJobsStorage__clientId: optionalText,
    RECONCILE_QUEUE: optionalText.pipe(z.string().regex(/^[a-z0-9](?!.*--)[a-z0-9-]{1,55}[a-z0-9]$/, "must be a queue name: 3-57 lower-case letters, digits and single hyphens (the host adds -poison)").optional()),
    LAB_TABLE_PREFIX: optionalText.pipe(z.string().regex(/^[A-Za-z][A-Za-z0-9]{2,40}$/, "must be 3-41 letters and digits, starting with a letter").optional()),
    RESET_SCHEDULE: optionalText,
    REDELIVER_SCHEDULE: optionalText,
    // "true" when the deployment created the tables and queues (infra/modules/storage.bicep): the app then never creates them.
    LAB_STORAGE_PROVISIONED: optionalText.pipe(z.enum(["true", "false"], { message: 'must be "true" (the deployment created the tables and queues) or "false"' }).optional()),
    OIDC_DISABLED: optionalText.pipe(z.enum(["true", "false"], { message: 'must be "true" (local work and tests only: job-completed then trusts any caller) or "false"' }).optional()),
    OIDC_ISSUER: optionalText.pipe(issuerUrl.optional()),
    OIDC_AUDIENCE: optionalText,
    ALLOWED_REPOSITORIES: optionalText.pipe(repositoryList.optional()),
    // Two, comma-separated, while the secret is rotated: a delivery signed with either is accepted.
    // Two, comma-separated, while the secret is rotated: a delivery signed with either is accepted.
    GITHUB_WEBHOOK_SECRET: optionalText.pipe(
      z
        .string()
        .refine((value) => webhookSecrets(value).length <= 2, "holds at most two secrets (new,old) while rotating")
        .refine((value) => webhookSecrets(value).every((secret) => secret.length >= 16), "must be at least 16 characters (each, when two); generate one with: openssl rand -hex 32")
        .optional(),
    ),
  })
  .superRefine((env, ctx) => {
    for (const [name, value] of Object.entries(env)) {
      if (typeof value === "string" && KEY_VAULT_REFERENCE.test(value)) {
        ctx.addIssue({
          code: "custom",
          path: [name],
          message: "is an unresolved Key Vault reference: give the app's identity the Key Vault Secrets User role and check the secret URI",
        });
      }
    }
    const appParts = [env.GITHUB_APP_ID, env.GITHUB_APP_INSTALLATION_ID, env.GITHUB_APP_PRIVATE_KEY];
    if (appParts.some(Boolean) && !appParts.every(Boolean)) {
      for (const name of ["GITHUB_APP_ID", "GITHUB_APP_INSTALLATION_ID", "GITHUB_APP_PRIVATE_KEY"] as const) {
        if (!env[name]) ctx.addIssue({ code: "custom", path: [name], message: "is required when any GITHUB_APP_* setting is set" });
      }
    }
    if (!env.AzureWebJobsStorage && !env.AzureWebJobsStorage__accountName && Boolean(env.AzureWebJobsStorage__tableServiceUri) !== Boolean(env.AzureWebJobsStorage__queueServiceUri)) {
      const missing = env.AzureWebJobsStorage__tableServiceUri ? "AzureWebJobsStorage__queueServiceUri" : "AzureWebJobsStorage__tableServiceUri";
      ctx.addIssue({ code: "custom", path: [missing], message: "is required beside the other service URI (or set AzureWebJobsStorage__accountName instead): lab-reset uses the account's tables and queues" });
    }
    for (const name of ["RESET_SCHEDULE", "REDELIVER_SCHEDULE"] as const) {
      const schedule = env[name];
      if (!schedule) continue;
      try {
        parseSchedule(schedule);
      } catch (error) {
        ctx.addIssue({ code: "custom", path: [name], message: (error as Error).message });
      }
    }
  });

export type StorageSetting =
  | { kind: "connectionString"; connectionString: string }
  | { kind: "identity"; tableServiceUrl: string; queueServiceUrl: string; clientId?: string }
  | { kind: "none" };

export const DEFAULT_RECONCILE_QUEUE = "lab-reset-reconcile";

export interface Settings {
  githubApiUrl: string;
  /** null when no GitHub credentials are set (the local host then explains what to set). */
  githubAuth: GitHubAuth | null;
  labConfigPath: string;
  storage: StorageSetting;
  tablePrefix: string;
  /** The deployment created every table and queue: open them, never create them (LAB_STORAGE_PROVISIONED). */
  storageProvisioned: boolean;
  /** The queue that hands "look now" from the triggers to the reconcile function. */
  reconcileQueue: string;
  resetSchedule: string;
  /** The redeliverWebhooks timer's schedule. */
  redeliverSchedule: string;
  /** How job-completed callers prove who they are: a GitHub Actions OIDC token, unless switched off. */
  oidc: OidcSettings;
  /** Repositories whose runs may report (`owner/repo`); null means the lab config's repository. */
  allowedRepositories: string[] | null;
  /** Shared secrets of the workflow_job webhook (two while rotating); empty refuses every delivery. */
  webhookSecrets: string[];
}

export type OidcSettings =
  /** `audience` null: not configured, which stops start-up (see callerSettingsProblems). */
  | { disabled: false; issuer: string; audience: string | null }
  /** OIDC_DISABLED=true: local work and tests only. */
  | { disabled: true };

export const OIDC_DISABLED_WARNING =
  "OIDC IS OFF (OIDC_DISABLED=true): job-completed trusts any caller that reaches it. Use this only for local work and tests; in Azure set OIDC_AUDIENCE and remove OIDC_DISABLED.";

/** Said once at start-up when the webhook is set up without the App's credentials. */
export const NO_REDELIVERY_WARNING =
  "Webhook deliveries that fail (a 503, a timeout, the app stopped) are not redelivered: GitHub's deliveries API needs the GitHub App's credentials (GITHUB_APP_ID, GITHUB_APP_INSTALLATION_ID, GITHUB_APP_PRIVATE_KEY), not GITHUB_TOKEN. A lost job start or end waits for the next look (a later delivery, or the timer).";

export const GITHUB_SETTINGS_HINT =
  "set GITHUB_TOKEN (or GITHUB_APP_ID, GITHUB_APP_INSTALLATION_ID and GITHUB_APP_PRIVATE_KEY), and GITHUB_API_URL for GitHub Enterprise Server";

export function readSettings(env: NodeJS.ProcessEnv = process.env): Settings {
  const result = SettingsSchema.safeParse(env);
  if (!result.success) {
    throw new ConfigurationError(
      "App settings are invalid; fix these and restart:",
      result.error.issues.map((i) => `${i.path.join(".") || "(settings)"} ${i.message}`),
    );
  }
  const s = result.data;
  const githubAuth: GitHubAuth | null = s.GITHUB_APP_ID
    ? {
        kind: "app",
        appId: s.GITHUB_APP_ID,
        installationId: Number(s.GITHUB_APP_INSTALLATION_ID),
        // App settings often carry the PEM on one line with literal \n.
        privateKey: s.GITHUB_APP_PRIVATE_KEY!.replace(/\\n/g, "\n"),
      }
    : s.GITHUB_TOKEN
      ? { kind: "token", token: s.GITHUB_TOKEN }
      : null;
  const storage: StorageSetting = s.AzureWebJobsStorage
    ? { kind: "connectionString", connectionString: s.AzureWebJobsStorage }
    : s.AzureWebJobsStorage__tableServiceUri || s.AzureWebJobsStorage__accountName
      ? {
          kind: "identity",
          tableServiceUrl: s.AzureWebJobsStorage__tableServiceUri ?? `https://${s.AzureWebJobsStorage__accountName}.table.core.windows.net`,
          queueServiceUrl: s.AzureWebJobsStorage__queueServiceUri ?? `https://${s.AzureWebJobsStorage__accountName}.queue.core.windows.net`,
          ...(s.AzureWebJobsStorage__clientId ? { clientId: s.AzureWebJobsStorage__clientId } : {}),
        }
      : { kind: "none" };
  return {
    githubApiUrl: (s.GITHUB_API_URL ?? "https://api.github.com").replace(/\/+$/, ""),
    githubAuth,
    labConfigPath: s.LAB_CONFIG_PATH ?? "lab.config.json",
    storage,
    tablePrefix: s.LAB_TABLE_PREFIX ?? "labreset",
    storageProvisioned: s.LAB_STORAGE_PROVISIONED === "true",
    reconcileQueue: s.RECONCILE_QUEUE ?? DEFAULT_RECONCILE_QUEUE,
    resetSchedule: s.RESET_SCHEDULE ?? DEFAULT_RESET_SCHEDULE,
    redeliverSchedule: s.REDELIVER_SCHEDULE ?? DEFAULT_REDELIVER_SCHEDULE,
    oidc: s.OIDC_DISABLED === "true" ? { disabled: true } : { disabled: false, issuer: (s.OIDC_ISSUER ?? DEFAULT_OIDC_ISSUER).replace(/\/+$/, ""), audience: s.OIDC_AUDIENCE ?? null },
    allowedRepositories: s.ALLOWED_REPOSITORIES ?? null,
    webhookSecrets: s.GITHUB_WEBHOOK_SECRET ? webhookSecrets(s.GITHUB_WEBHOOK_SECRET) : [],
  };
}

/**
 * Settings the app cannot serve callers without, beyond their format. Checked when the app
 * starts (loadStartup) and when a runtime is built, so a missing audience never means "trust anyone".
 */
export function callerSettingsProblems(settings: Settings): string[] {
  if (!settings.oidc.disabled && settings.oidc.audience === null) {
    return [
      "OIDC_AUDIENCE is not set: set it to the audience your perf workflows request their GitHub Actions OIDC token for (e.g. api://<function app name>), or set OIDC_DISABLED=true for local work and tests only.",
    ];
  }
  return [];
}
