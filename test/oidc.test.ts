import { afterEach, describe, expect, it } from "vitest";
import { ConfigurationError } from "../shared/lab/config.js";
import * as handlers from "../shared/triggers/job-completed.js";
import { silentLogger, type Logger } from "../shared/logger.js";
import { createRuntime, loadStartup } from "../shared/runtime.js";
import { readSettings } from "../shared/settings.js";
import { seedConfig, perfRun, startTestLab, vmRunnerName, type TestLab } from "./support/lab.js";
import { TestIssuer } from "./support/oidc-issuer.js";

let lab: TestLab | undefined;
let issuer: TestIssuer | undefined;
afterEach(async () => {
  await lab?.close();
  await issuer?.close();
  lab = issuer = undefined;
});

const AUDIENCE = "lab-reset-test";

async function withOidc(options: { basePath?: string; settings?: Record<string, string>; logger?: Logger } = {}) {
  issuer = await TestIssuer.start(options.basePath ? { basePath: options.basePath } : {});
  lab = await startTestLab({ settings: { OIDC_ISSUER: issuer.url, OIDC_AUDIENCE: AUDIENCE, ...options.settings }, ...(options.logger ? { logger: options.logger } : {}) });
  return { lab, issuer };
}

const call = (l: TestLab, body: Record<string, unknown>, token?: string) =>
  handlers.jobCompleted(l.runtime, JSON.stringify(body), silentLogger, token === undefined ? {} : { authorization: `Bearer ${token}` });

const facts = async (l: TestLab) => (await l.runtime.facts.listSince(new Date(0))).map((f) => f.fact);

describe("job-completed with a GitHub Actions OIDC token", () => {
  it("records the jobs of the run and attempt the token names and queues a reconcile, which resets the pair the run used", async () => {
    const { lab, issuer } = await withOidc();
    const perf = perfRun(lab, [vmRunnerName("vm-42-43")], "completed");
    const [job] = lab.github.jobsOf(perf.id);
    // The body names no attempt: the token's is read.
    const { response, result } = await lab.jobCompleted(JSON.stringify({ repository: "microsoft/netperf", runId: perf.id }), { authorization: `Bearer ${await issuer.mint({ runId: perf.id, runAttempt: 1 })}` });
    expect(response).toEqual({ status: 202, body: { runId: perf.id, pairs: [{ id: "vm-42-43", state: "dirty", jobSinceReset: true }], reconcile: "queued" } });
    expect(lab.github.requests.some((r) => r.path === `/repos/microsoft/netperf/actions/runs/${perf.id}/attempts/1/jobs`)).toBe(true);
    expect(await facts(lab)).toMatchObject([{ phase: "ended", jobId: job!.id, runId: perf.id, runnerName: vmRunnerName("vm-42-43"), source: "job-completed" }]);
    expect(result).toMatchObject({ trigger: "job-completed" });
    expect(result?.pairs.find((p) => p.id === "vm-42-43")).toMatchObject({ decision: "reset-dispatched" });
    expect(lab.github.dispatches.map((d) => d.inputs.pair)).toContain("vm-42-43");
  });

  it("reads the jobs of the attempt the token names, not of the run's latest attempt", async () => {
    const { lab, issuer } = await withOidc();
    const run = { id: Number(lab.github.addRun({ name: "perf", status: "completed", conclusion: "success", runAttempt: 2, jobs: [{ runnerName: vmRunnerName("vm-11-12") }] }).id) };
    const response = await call(lab, { repository: "microsoft/netperf", runId: run.id }, await issuer.mint({ runId: run.id, runAttempt: 2 }));
    expect(response).toMatchObject({ status: 202, body: { pairs: [{ id: "vm-11-12" }] } });
    expect(lab.github.requests.filter((r) => r.path.startsWith(`/repos/microsoft/netperf/actions/runs/${run.id}/`)).map((r) => r.path)).toEqual([
      `/repos/microsoft/netperf/actions/runs/${run.id}/attempts/2/jobs`,
    ]);
  });

  it("answers 404 for a run GitHub does not know, recording nothing and queueing nothing", async () => {
    const { lab, issuer } = await withOidc();
    const response = await call(lab, { repository: "microsoft/netperf", runId: 424_242 }, await issuer.mint({ runId: 424_242 }));
    expect(response).toMatchObject({ status: 404, body: { error: expect.stringMatching(/no run 424242/) } });
    expect(await facts(lab)).toEqual([]);
    expect(lab.queue.length).toBe(0);
  });

  it("reads the issuer's discovery document and keys once, then verifies from the cache", async () => {
    const { lab, issuer } = await withOidc();
    const perf = perfRun(lab, [vmRunnerName("vm-25-26")], "completed");
    for (let i = 0; i < 3; i++) {
      expect((await call(lab, { repository: "microsoft/netperf", runId: perf.id }, await issuer.mint({ runId: perf.id }))).status).toBe(202);
    }
    expect(issuer.requests).toEqual(["/.well-known/openid-configuration", "/.well-known/jwks"]);
  });

  it("tolerates a minute of clock skew between the caller and lab-reset", async () => {
    const { lab, issuer } = await withOidc();
    const perf = perfRun(lab, [vmRunnerName("vm-05-10")], "completed");
    const early = await issuer.mint({ runId: perf.id }, { notBefore: 30 });
    const late = await issuer.mint({ runId: perf.id }, { notBefore: -400, expiresIn: -30 });
    expect((await call(lab, { repository: "microsoft/netperf", runId: perf.id }, early)).status).toBe(202);
    expect((await call(lab, { repository: "microsoft/netperf", runId: perf.id }, late)).status).toBe(202);
  });

  it("works with an issuer below a path, as GitHub Enterprise Server's https://HOST/_services/token", async () => {
    const { lab, issuer } = await withOidc({ basePath: "/_services/token" });
    const perf = perfRun(lab, [vmRunnerName("vm-11-12")], "completed");
    expect((await call(lab, { repository: "microsoft/netperf", runId: perf.id }, await issuer.mint({ runId: perf.id }))).status).toBe(202);
    expect(issuer.requests[0]).toBe("/_services/token/.well-known/openid-configuration");
  });

  it("lets a run of another allowed repository report the lab VM runner it used", async () => {
    const { lab, issuer } = await withOidc({ settings: { ALLOWED_REPOSITORIES: "microsoft/netperf,microsoft/msquic" } });
    const token = await issuer.mint({ repository: "microsoft/msquic", runId: 9001 });
    const withoutRunner = await call(lab, { repository: "microsoft/msquic", runId: 9001 }, token);
    expect(withoutRunner).toMatchObject({ status: 400, body: { error: expect.stringMatching(/name the VM runner in runnerName/) } });
    expect(await facts(lab)).toEqual([]);
    expect(lab.queue.length).toBe(0);
    const requests = lab.github.requests.length;
    const response = await call(lab, { repository: "microsoft/msquic", runId: 9001, runnerName: "VM-05-10" }, token);
    expect(response).toMatchObject({ status: 202, body: { runId: 9001, pairs: [{ id: "vm-05-10", jobSinceReset: true }], reconcile: "queued" } });
    // lab-reset cannot read another repository's jobs: the call itself is the fact.
    expect(lab.github.requests.slice(requests).some((r) => r.path.includes("/actions/runs/"))).toBe(false);
    expect(await facts(lab)).toMatchObject([{ phase: "ended", jobId: null, runId: 9001, runnerName: "VM-05-10", source: "job-completed" }]);
    const result = await lab.settle();
    expect(result?.pairs.find((p) => p.id === "vm-05-10")).toMatchObject({ decision: "reset-dispatched" });
    expect(await lab.runtime.store.getPair("vm-05-10")).toMatchObject({ record: { lastJobRunId: 9001, jobSinceReset: true } });
  });
});

describe("OIDC switched off", () => {
  it("warns loudly when the runtime is built and on every call", async () => {
    const warnings: string[] = [];
    const logger: Logger = { ...silentLogger, warn: (m) => void warnings.push(m) };
    lab = await startTestLab({ logger });
    expect(warnings).toEqual([expect.stringMatching(/^OIDC IS OFF \(OIDC_DISABLED=true\)/)]);
    await handlers.jobCompleted(lab.runtime, "{}", logger);
    await handlers.jobCompleted(lab.runtime, "{}", logger);
    expect(warnings.filter((w) => /OIDC IS OFF/.test(w))).toHaveLength(3);
  });
});

describe("caller settings", () => {
  const base = { GITHUB_TOKEN: "t", AzureWebJobsStorage: "UseDevelopmentStorage=true" };
  const problems = (run: () => unknown): string => {
    try {
      run();
    } catch (error) {
      if (error instanceof ConfigurationError) return error.message;
      throw error;
    }
    return "";
  };

  it("stops start-up without OIDC_AUDIENCE unless OIDC_DISABLED=true, saying what to set", async () => {
    expect(problems(() => loadStartup(base))).toMatch(/OIDC_AUDIENCE is not set: set it to the audience .* or set OIDC_DISABLED=true/);
    await expect(createRuntime(readSettings(base), seedConfig)).rejects.toThrow(/OIDC_AUDIENCE is not set/);
    expect(problems(() => loadStartup({ ...base, OIDC_AUDIENCE: "https://lab-reset.example" }))).toBe("");
    expect(problems(() => loadStartup({ ...base, OIDC_DISABLED: "true" }))).toBe("");
  });

  it("defaults the issuer to GitHub's and the allowed repositories to the config's", () => {
    const settings = readSettings({ ...base, OIDC_AUDIENCE: "aud" });
    expect(settings.oidc).toEqual({ disabled: false, issuer: "https://token.actions.githubusercontent.com", audience: "aud" });
    expect(settings.allowedRepositories).toBeNull();
    expect(readSettings({ ...base, OIDC_AUDIENCE: "aud", ALLOWED_REPOSITORIES: " microsoft/netperf , microsoft/msquic " }).allowedRepositories).toEqual(["microsoft/netperf", "microsoft/msquic"]);
  });

  it("names every malformed caller setting at once", () => {
    const message = problems(() =>
      readSettings({ ...base, OIDC_DISABLED: "yes", OIDC_ISSUER: "http://token.example.com", ALLOWED_REPOSITORIES: "netperf,microsoft/msquic", GITHUB_WEBHOOK_SECRET: "short" }),
    );
    expect(message).toMatch(/OIDC_DISABLED must be "true"/);
    expect(message).toMatch(/OIDC_ISSUER must use https/);
    expect(message).toMatch(/ALLOWED_REPOSITORIES.* must list repositories as "owner\/repo"/);
    expect(message).toMatch(/GITHUB_WEBHOOK_SECRET must be at least 16 characters/);
  });

  it("stops on an unresolved Key Vault reference for the webhook secret", () => {
    expect(problems(() => readSettings({ ...base, OIDC_DISABLED: "true", GITHUB_WEBHOOK_SECRET: "@Microsoft.KeyVault(SecretUri=https://kv.vault.azure.net/secrets/hook)" }))).toMatch(
      /GITHUB_WEBHOOK_SECRET is an unresolved Key Vault reference/,
    );
  });
});
