import { generateKeyPairSync } from "node:crypto";
import { afterEach, describe, expect, it } from "vitest";
import { silentLogger } from "../shared/logger.js";
import { createRuntime, type Runtime } from "../shared/runtime.js";
import { readSettings } from "../shared/settings.js";
import { GitHubStandin } from "../shared/sim/github-standin.js";
import { MemoryReconcileQueue } from "../shared/storage/queue.js";
import { scheduledReset } from "../shared/triggers/timer.js";
import { hostRunnerName, seedConfig, vmRunnerName } from "./support/lab.js";
import { openTestStore } from "./support/store.js";

let github: GitHubStandin | undefined;
afterEach(async () => {
  await github?.close();
  github = undefined;
});

/** A key pair as GitHub hands an App's private key out: PKCS#1 PEM. */
const appKey = () => generateKeyPairSync("rsa", { modulusLength: 2048, publicKeyEncoding: { type: "spki", format: "pem" }, privateKeyEncoding: { type: "pkcs1", format: "pem" } });

async function appRuntime(privateKeyPem: string) {
  github = await GitHubStandin.start();
  for (const pair of seedConfig.pairs) {
    github.addRunner({ name: vmRunnerName(pair.id), labels: ["lab", pair.vmRunnerLabel] });
    for (const host of pair.hosts) github.addRunner({ name: hostRunnerName(host.runnerLabel), labels: [host.runnerLabel] });
  }
  const settings = readSettings({
    GITHUB_API_URL: github.url,
    GITHUB_APP_ID: "123456",
    GITHUB_APP_INSTALLATION_ID: "7890",
    // As an app setting holds it: one line, newlines escaped.
    GITHUB_APP_PRIVATE_KEY: privateKeyPem.trim().replace(/\n/g, "\\n"),
    OIDC_DISABLED: "true",
  });
  const queue = new MemoryReconcileQueue(() => new Date());
  const runtime = await createRuntime(settings, seedConfig, { store: await openTestStore(), queue, logger: silentLogger, githubClient: { retries: 0, timeoutMs: 5_000, writeSpacingMs: 0 } });
  return { runtime, queue };
}

/** The timer, then its message served as the queue trigger serves it: the reconcile's result, or the invocation's error. */
async function timer({ runtime, queue }: { runtime: Runtime; queue: MemoryReconcileQueue }) {
  await scheduledReset(runtime, silentLogger);
  const [queued, ...others] = queue.takeAll();
  expect(others).toEqual([]);
  // A failed reconcile is retried later (an alert line says why), not thrown: keep the why for the test.
  const errors: string[] = [];
  const outcome = await runtime.worker.serve(queued!, { ...silentLogger, error: (line: string) => errors.push(line) });
  if (outcome.served !== "reconciled") throw new Error(`the timer's message was not reconciled: ${errors.join("; ")}`);
  return outcome.result;
}

describe("GitHub App authentication", () => {
  it("mints an installation token with an RS256 App JWT, reuses it, and reconciles with it", async () => {
    const { publicKey, privateKey } = appKey();
    const app = await appRuntime(privateKey);
    github!.enableAppAuth({ appId: "123456", installationId: 7890, publicKeyPem: publicKey });
    const first = await timer(app);
    expect(first.pairs.map((p) => p.decision)).toEqual(Array(4).fill("reset-dispatched"));
    const second = await timer(app);
    expect(second.pairs.map((p) => p.decision)).toEqual(Array(4).fill("already-resetting"));
    expect(github!.appTokensMinted).toBe(1);
    expect(github!.requests.filter((r) => r.path === "/app/installations/7890/access_tokens").map((r) => [r.method, r.status])).toEqual([["POST", 201]]);
  });

  it("fails closed when GitHub refuses the App's JWT (a key that is not the App's)", async () => {
    const { privateKey } = appKey();
    const app = await appRuntime(privateKey);
    github!.enableAppAuth({ appId: "123456", installationId: 7890, publicKeyPem: appKey().publicKey });
    await expect(timer(app)).rejects.toThrow(/the reconcile was incomplete: pairs .* left alone/);
    expect(github!.appTokensMinted).toBe(0);
    expect(github!.dispatches).toHaveLength(0);
  });

  it("stops start-up when the private key is still a Key Vault reference", () => {
    expect(() =>
      readSettings({ GITHUB_APP_ID: "1", GITHUB_APP_INSTALLATION_ID: "2", GITHUB_APP_PRIVATE_KEY: "@Microsoft.KeyVault(SecretUri=https://lab-kv.vault.azure.net/secrets/app-key)", OIDC_DISABLED: "true" }),
    ).toThrow(/GITHUB_APP_PRIVATE_KEY is an unresolved Key Vault reference: give the app's identity the Key Vault Secrets User role/);
  });
});
