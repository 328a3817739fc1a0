import type { TokenCredential } from "@azure/core-auth";
import type { GitHubClientOptions } from "../github/client.js";

/** What a command may touch of the outside world; tests pass their own. */
export interface CliContext {
  stdout(text: string): void;
  stderr(text: string): void;
  env: Readonly<Record<string, string | undefined>>;
  now(): Date;
  /** Per call to the app. */
  timeoutMs: number;
  /**
   * Where `--entra` gets its token (default: `@azure/identity`'s DefaultAzureCredential, which
   * includes the Azure CLI's sign-in). Asked only when --entra/LAB_RESET_ENTRA_CLIENT_ID is given.
   */
  azureCredential?: () => Promise<TokenCredential>;
  /** Tuning of the GitHub client the `routing` commands use; tests make its waits short. */
  githubClient?: Pick<GitHubClientOptions, "retries" | "retryBaseMs" | "writeSpacingMs">;
}

export function processContext(): CliContext {
  return {
    stdout: (text) => process.stdout.write(text),
    stderr: (text) => process.stderr.write(text),
    env: process.env,
    now: () => new Date(),
    timeoutMs: 10_000,
  };
}

/** The lab config file a command reads when none is named: the app's own setting, else its default. */
export function defaultConfigPath(context: CliContext): string {
  return context.env.LAB_CONFIG_PATH || "lab.config.json";
}
