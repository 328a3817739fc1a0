/**
 * The CLI's own way to GitHub, for the commands that must work while the app is stopped: the
 * person's token (GITHUB_TOKEN, else the GitHub CLI's), and the app's GitHub client over it.
 */
import { execFile } from "node:child_process";
import { createOctokit, OctokitLabGitHub } from "../github/client.js";
import type { LabConfig } from "../lab/config.js";
import type { CliContext } from "./context.js";
import { CliError, usageError } from "./errors.js";

export const DEFAULT_GITHUB_API_URL = "https://api.github.com";

export interface GitHubAccess {
  /** Without a trailing slash: https://api.github.com, or https://HOST/api/v3 for GitHub Enterprise Server. */
  apiUrl: string;
  token: string;
  /** Where the token came from, to name it when GitHub refuses it. */
  tokenFrom: "GITHUB_TOKEN" | "gh auth token";
}

/** The API base from GITHUB_API_URL, and a token from GITHUB_TOKEN or `gh auth token`. */
export async function githubAccess(context: CliContext): Promise<GitHubAccess> {
  const apiUrl = (context.env.GITHUB_API_URL || DEFAULT_GITHUB_API_URL).replace(/\/+$/, "");
  if (!/^https?:\/\/[^/]/i.test(apiUrl) || !URL.canParse(apiUrl)) {
    throw usageError(`GITHUB_API_URL=${apiUrl} is not an http(s) URL; set it to ${DEFAULT_GITHUB_API_URL}, or https://HOST/api/v3 for GitHub Enterprise Server`);
  }
  const token = context.env.GITHUB_TOKEN?.trim();
  if (token) return { apiUrl, token, tokenFrom: "GITHUB_TOKEN" };
  return { apiUrl, token: await ghAuthToken(context, ghHost(apiUrl)), tokenFrom: "gh auth token" };
}

/** The host `gh` knows the API by: github.com for api.github.com (and SUBDOMAIN.ghe.com for api.SUBDOMAIN.ghe.com), else the server's. */
function ghHost(apiUrl: string): string {
  const host = new URL(apiUrl).host;
  if (host === "api.github.com") return "github.com";
  return /^api\.[^.]+\.ghe\.com$/i.test(host) ? host.slice("api.".length) : host;
}

function ghAuthToken(context: CliContext, host: string): Promise<string> {
  const todo = `set GITHUB_TOKEN or run gh auth login --hostname ${host}`;
  return new Promise((resolve, reject) => {
    // The caller's environment (PATH, GH_CONFIG_DIR, GH_TOKEN) decides which gh and which sign-in.
    execFile("gh", ["auth", "token", "--hostname", host], { env: { ...context.env }, timeout: 10_000 }, (error, stdout, stderr) => {
      const token = stdout.trim();
      if (!error && token !== "") return resolve(token);
      const why =
        (error as NodeJS.ErrnoException | null)?.code === "ENOENT" ? "gh (the GitHub CLI) is not installed"
        : `gh auth token has none for ${host}${stderr.trim() ? ` (${stderr.trim().split("\n")[0]})` : ""}`;
      reject(new CliError(`no GitHub token: GITHUB_TOKEN is not set and ${why}; ${todo}`));
    });
  });
}

/**
 * The app's GitHub client (throttling, retries, label writes sent once) with the person's token.
 * Its warnings (a rate limit) go to stderr; failures come back as GitHubErrors the command words.
 */
export function cliGitHub(context: CliContext, access: GitHubAccess, config: LabConfig): OctokitLabGitHub {
  const octokit = createOctokit({
    baseUrl: access.apiUrl,
    auth: { kind: "token", token: access.token },
    logger: { info: () => {}, warn: (message) => context.stderr(`lab-reset: GitHub: ${message}\n`), error: () => {} },
    timeoutMs: Math.max(context.timeoutMs, 20_000),
    retries: 2,
    ...context.githubClient,
  });
  return new OctokitLabGitHub(octokit, config);
}
