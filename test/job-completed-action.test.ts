/**
 * The composite action perf workflows use (infra/github/job-completed/action.yml): its script,
 * run by bash as the runner would, against the local host with OIDC on, a stand-in for the
 * Actions token endpoint (ACTIONS_ID_TOKEN_REQUEST_URL) and the test issuer.
 */
import { spawn, spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse } from "yaml";
import { z } from "zod";
import { functionDefinitions } from "../functions/definitions.js";
import { startLocalHost, type LocalHost } from "../shared/local/host.js";
import { silentLogger } from "../shared/logger.js";
import { perfRun, startTestLab, vmRunnerName, type TestLab } from "./support/lab.js";
import { TestIssuer } from "./support/oidc-issuer.js";

const ActionSchema = z.object({
  inputs: z.record(z.string(), z.object({ required: z.boolean(), default: z.string().optional() })),
  runs: z.object({ using: z.literal("composite"), steps: z.array(z.object({ shell: z.literal("bash"), env: z.record(z.string(), z.string()), run: z.string() })).length(1) }),
});
const action = ActionSchema.parse(parse(readFileSync("infra/github/job-completed/action.yml", "utf8")));
const step = action.runs.steps[0]!;
const AUDIENCE = "api://lab-reset test";
// The runner's tools the script needs; GitHub-hosted runners have all three.
const tools = ["bash", "curl", "jq"].every((tool) => spawnSync("sh", ["-c", `command -v ${tool}`]).status === 0);

let issuer: TestIssuer;
let lab: TestLab;
let host: LocalHost;
let tokenEndpoint: Server;
let tokenUrl: string;
const audiencesRequested: string[] = [];

beforeAll(async () => {
  issuer = await TestIssuer.start();
  lab = await startTestLab({ settings: { OIDC_ISSUER: issuer.url, OIDC_AUDIENCE: AUDIENCE } });
  const runtime = lab.runtime;
  host = await startLocalHost({ definitions: functionDefinitions(() => Promise.resolve(runtime), runtime.settings), port: 0, logger: silentLogger });
  // As GitHub's: the request token as bearer, the audience in the query, the JWT in `value`.
  tokenEndpoint = createServer((req, res) => {
    const url = new URL(req.url ?? "/", "http://127.0.0.1");
    const audience = url.searchParams.get("audience") ?? "";
    audiencesRequested.push(audience);
    if (req.headers.authorization !== "bearer request-token" || url.searchParams.get("api-version") !== "2.0") {
      res.writeHead(401).end();
      return;
    }
    void issuer.mint({ runId: Number(url.searchParams.get("run")) }, { audience }).then((value) => {
      res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ count: 1, value }));
    });
  });
  await new Promise<void>((resolve) => tokenEndpoint.listen(0, "127.0.0.1", resolve));
  const address = tokenEndpoint.address();
  tokenUrl = `http://127.0.0.1:${typeof address === "object" && address ? address.port : 0}/token?api-version=2.0`;
});
afterAll(async () => {
  await host?.close();
  await lab?.close();
  await issuer?.close();
  tokenEndpoint?.closeAllConnections();
  tokenEndpoint?.close();
});

/** Runs the step's script with the environment the runner gives it (inputs through `env`). */
function runAction(runId: number, inputs: Record<string, string>, env: Record<string, string> = {}): Promise<{ code: number | null; log: string }> {
  const value = (name: string) => inputs[name] ?? action.inputs[name]?.default ?? "";
  const stepEnv = Object.fromEntries(Object.entries(step.env).map(([name, expression]) => [name, value(/inputs\.([\w-]+)/.exec(expression)![1]!)]));
  const child = spawn("bash", ["--noprofile", "--norc", "-e", "-o", "pipefail", "-c", step.run], {
    env: {
      PATH: process.env.PATH ?? "",
      // The runner's own variables; the token endpoint learns the run from its URL here.
      ACTIONS_ID_TOKEN_REQUEST_URL: `${tokenUrl}&run=${runId}`,
      ACTIONS_ID_TOKEN_REQUEST_TOKEN: "request-token",
      GITHUB_REPOSITORY: "microsoft/netperf",
      GITHUB_RUN_ID: String(runId),
      GITHUB_RUN_ATTEMPT: "1",
      ...stepEnv,
      ...env,
    },
  });
  let log = "";
  child.stdout.on("data", (d: Buffer) => (log += d.toString()));
  child.stderr.on("data", (d: Buffer) => (log += d.toString()));
  return new Promise((resolve) => child.once("exit", (code) => resolve({ code, log })));
}

const inputs = () => ({ url: `${host.url}/`, "function-key": "function-key-value", audience: AUDIENCE, "retry-delay-seconds": "0", attempts: "3" });

describe.skipIf(!tools)("the job-completed composite action", () => {
  it("declares the inputs the README's job passes, and requires url, function-key and audience", () => {
    expect(Object.entries(action.inputs).filter(([, i]) => i.required).map(([name]) => name)).toEqual(["url", "function-key", "audience"]);
  });

  it("reports its run with an OIDC token for the configured audience, and lab-reset resets the pair the run used", async () => {
    const perf = perfRun(lab, [vmRunnerName("vm-42-43")], "completed");
    const { code, log } = await runAction(perf.id, inputs());
    expect(log).toMatch(/lab-reset answered 202 \(attempt 1\)/);
    expect(code).toBe(0);
    expect(audiencesRequested.at(-1)).toBe(AUDIENCE);
    expect(log).toMatch(/::add-mask::function-key-value/);
    // lab-reset answered once the run's job end was recorded; the reset follows when the queue is served.
    const facts = (await lab.runtime.facts.listSince(new Date(0))).map((f) => f.fact);
    expect(facts).toContainEqual(expect.objectContaining({ phase: "ended", runId: perf.id, runnerName: vmRunnerName("vm-42-43"), source: "job-completed" }));
    expect(lab.queue.length).toBeGreaterThan(0);
    await lab.settle();
    expect(lab.github.dispatches.filter((d) => d.inputs.pair === "vm-42-43").length).toBeGreaterThan(0);
  });

  it("retries with a fresh token while lab-reset answers 503, then succeeds", async () => {
    const perf = perfRun(lab, [vmRunnerName("vm-11-12")], "completed");
    // Three answers of 500 to the run's jobs: the first read and both of the client's retries.
    lab.github.fail({ path: `/repos/microsoft/netperf/actions/runs/${perf.id}/attempts/1/jobs` }, { status: 500 }, 3);
    const requested = audiencesRequested.length;
    const { code, log } = await runAction(perf.id, inputs());
    expect(log).toMatch(/answered 503 \(attempt 1\)[\s\S]*answered 202 \(attempt 2\)/);
    expect(code).toBe(0);
    expect(audiencesRequested.length - requested).toBe(2);
  });

  it("fails the step without retrying when lab-reset refuses the call (a token for another run)", async () => {
    const perf = perfRun(lab, [vmRunnerName("vm-05-10")], "completed");
    const { code, log } = await runAction(perf.id, inputs(), { GITHUB_RUN_ID: String(perf.id + 100) });
    expect(code).toBe(1);
    expect(log).toMatch(/answered 403 \(attempt 1\)/);
    expect(log).not.toMatch(/attempt 2/);
    expect(log).toMatch(/::error title=lab-reset::job-completed refused the call \(403\)/);
  });

  it("says to add `permissions: id-token: write` when the job cannot request a token", async () => {
    const { code, log } = await runAction(1, inputs(), { ACTIONS_ID_TOKEN_REQUEST_URL: "", ACTIONS_ID_TOKEN_REQUEST_TOKEN: "" });
    expect(code).toBe(1);
    expect(log).toMatch(/add 'permissions: id-token: write'/);
  });
});
