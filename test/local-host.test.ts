import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { randomBytes } from "node:crypto";
import { afterEach, describe, expect, inject, it } from "vitest";
import { functionDefinitions } from "../functions/definitions.js";
import { freePort } from "../shared/local/azurite.js";
import { startLocalHost, type LocalHost } from "../shared/local/host.js";
import { silentLogger } from "../shared/logger.js";
import { GitHubStandin } from "../shared/sim/github-standin.js";
import { CoalescedSends, StorageReconcileQueue } from "../shared/storage/queue.js";
import { hostRunnerName, perfRun, startTestLab, vmRunnerName, type TestLab } from "./support/lab.js";

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- answers are checked by the assertions
const json = async (response: Response | Promise<Response>): Promise<any> => (await response).json();

let lab: TestLab | undefined;
let host: LocalHost | undefined;
afterEach(async () => {
  await host?.close();
  await lab?.close();
  host = lab = undefined;
});

const settings = (reconcileQueue: string) => ({ resetSchedule: "0 0 */6 * * *", reconcileQueue });

/** The test lab behind the local host, its triggers handing over through a real Azurite queue that the host polls. */
async function serve() {
  lab = await startTestLab();
  const runtime = lab.runtime;
  const connectionString = inject("azuriteConnectionString");
  const queueName = `q${randomBytes(6).toString("hex")}`;
  runtime.queue = new CoalescedSends(await StorageReconcileQueue.open({ kind: "connectionString", connectionString }, queueName));
  host = await startLocalHost({ definitions: functionDefinitions(() => Promise.resolve(runtime), settings(queueName)), port: 0, logger: silentLogger, queueConnectionString: connectionString });
  return { lab, url: host.url };
}

/** Polls until `check` passes: the queue function runs within about a second of a message. */
async function eventually<T>(read: () => Promise<T>, check: (value: T) => boolean, ms = 15_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await read();
    if (check(value) || Date.now() > deadline) return value;
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe("local host", () => {
  it("serves /api/pairs, runs the timer on POST /admin/functions/scheduledReset, and takes job-completed", async () => {
    const { lab, url } = await serve();
    const empty = await json(fetch(`${url}/api/pairs`));
    expect(empty.pairs.map((p: { id: string; state: string; updatedAt: string | null }) => [p.id, p.state, p.updatedAt])).toEqual([
      ["vm-25-26", "dirty", null],
      ["vm-05-10", "dirty", null],
      ["vm-42-43", "dirty", null],
      ["vm-11-12", "dirty", null],
    ]);

    const timer = await fetch(`${url}/admin/functions/scheduledReset`, { method: "POST" });
    expect(timer.status).toBe(202);
    // The timer queued a reconcile; the host's queue trigger runs it.
    const pairs = await eventually(() => json(fetch(`${url}/api/pairs`)), (b) => b.pairs.every((p: { state: string; resetRunId: number | null }) => p.state === "resetting" && p.resetRunId !== null));
    expect(pairs.pairs[0]).toMatchObject({ id: "vm-25-26", vmRunnerLabel: "vm-25-26", state: "resetting", jobSinceReset: true, attempts: 1, lastError: null });
    expect(pairs.pairs[0].resetRunId).toEqual(expect.any(Number));
    expect(pairs.pairs[0]).not.toHaveProperty("pairId");

    // A job that ends after the reset was requested: the pair is reset again once this reset ends.
    lab.advance(1);
    const perf = perfRun(lab, [vmRunnerName("vm-42-43")], "completed");
    const completed = await fetch(`${url}/api/job-completed`, { method: "POST", body: JSON.stringify({ repository: "microsoft/netperf", runId: perf.id }) });
    expect(completed.status).toBe(202);
    expect(await json(completed)).toEqual({ runId: perf.id, pairs: [{ id: "vm-42-43", state: "resetting", jobSinceReset: true }], reconcile: "queued" });
    const after = await eventually(() => lab.runtime.store.getPair("vm-42-43"), (p) => p?.record.lastJobRunId === perf.id);
    expect(after?.record).toMatchObject({ state: "resetting", jobSinceReset: true, lastJobRunId: perf.id });
  });

  it("answers unknown routes, wrong methods and oversized bodies with JSON errors", async () => {
    const { url } = await serve();
    expect((await fetch(`${url}/api/nope`)).status).toBe(404);
    expect((await fetch(`${url}/api/pairs`, { method: "POST" })).status).toBe(405);
    expect((await fetch(`${url}/admin/functions/nope`, { method: "POST" })).status).toBe(404);
    const big = await fetch(`${url}/api/job-completed`, { method: "POST", body: "x".repeat(70 * 1024) });
    expect(big.status).toBe(413);
    expect((await json(big)).error).toMatch(/larger than 65536/);
  });
});

describe("function registration", () => {
  it("lists the timer with RESET_SCHEDULE, the queue function on RECONCILE_QUEUE, the HTTP and admin functions at auth level function and the signed webhook as anonymous", () => {
    const definitions = functionDefinitions(() => Promise.reject(new Error("unused")), { resetSchedule: "0 30 */2 * * *", reconcileQueue: "lab-q" });
    expect(definitions.map((d) => (d.kind === "http" ? [d.name, d.route, d.methods, d.authLevel] : d.kind === "queue" ? [d.name, d.queueName] : [d.name, d.schedule]))).toEqual([
      ["scheduledReset", "0 30 */2 * * *"],
      ["reconcileLab", "lab-q"],
      ["jobCompleted", "job-completed", ["POST"], "function"],
      ["pairs", "pairs", ["GET"], "function"],
      ["pairEvents", "pairs/{id}/events", ["GET"], "function"],
      ["pairReset", "pairs/{id}/reset", ["POST"], "function"],
      ["plan", "plan", ["GET"], "function"],
      ["report", "report", ["GET"], "function"],
      ["workload", "workload", ["GET"], "function"],
      ["status", "status", ["GET"], "function"],
      ["pairHold", "pairs/{id}/hold", ["POST", "DELETE"], "function"],
      ["githubWebhook", "github-webhook", ["POST"], "anonymous"],
    ]);
  });

  it("package.json main points at the built entry that registers them", () => {
    const pkg = JSON.parse(readFileSync("package.json", "utf8"));
    expect(pkg.main).toBe("dist/functions/index.js");
    expect(readFileSync("dist/functions/index.js", "utf8")).toMatch(/app\.http\(|app\.timer\(/);
  });
});

/** Runs `node dist/shared/local/start.js` as `npm start` does, and waits for a line. */
function startApp(env: Record<string, string>) {
  const child = spawn(process.execPath, ["dist/shared/local/start.js"], {
    env: { PATH: process.env.PATH ?? "", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  child.stdout.on("data", (d: Buffer) => (output += d.toString()));
  child.stderr.on("data", (d: Buffer) => (output += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  const waitFor = async (pattern: RegExp, ms = 20_000) => {
    const deadline = Date.now() + ms;
    while (!pattern.test(output)) {
      if (Date.now() > deadline || child.exitCode !== null) throw new Error(`did not see ${pattern} in:\n${output}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  };
  return { child, exited, waitFor, output: () => output };
}

describe("npm start", () => {
  it("without GitHub settings runs the simulated lab, says so first, and a pair goes busy → dirty → resetting → clean", async () => {
    const port = await freePort();
    // 200 simulated minutes per minute: the first perf run (12 min) and its reset pass in seconds, and the
    // timer's first look (a queue poll, up to a real second, then a reconcile) still comes while the run's job is on the VM.
    // On the tests' Azurite, in tables and a queue of its own: starting its own is the next test's.
    const storage = { AzureWebJobsStorage: inject("azuriteConnectionString"), LAB_TABLE_PREFIX: `t${randomBytes(6).toString("hex")}`, RECONCILE_QUEUE: `q${randomBytes(6).toString("hex")}` };
    const app = startApp({ PORT: String(port), SIM_SPEED: "200", ...storage });
    try {
      await app.waitFor(/^lab-reset: SIMULATED LAB/);
      expect(app.output().split("\n")[0]).toMatch(/SIMULATED LAB.*GITHUB_TOKEN.*GITHUB_APP_ID.*GITHUB_API_URL/);
      // A pair's first record is printed "new → …" (its first event has no from).
      await app.waitFor(/vm-05-10: (new|dirty) → busy/, 30_000);
      await app.waitFor(/vm-05-10: busy → dirty/, 30_000);
      await app.waitFor(/vm-05-10: dirty → resetting/, 30_000);
      await app.waitFor(/vm-05-10: resetting → clean/, 30_000);
      const body = await json(fetch(`http://127.0.0.1:${port}/api/pairs`));
      expect(body.pairs.map((p: { id: string }) => p.id)).toEqual(["vm-25-26", "vm-05-10", "vm-42-43", "vm-11-12"]);
    } finally {
      app.child.kill("SIGINT");
      expect(await app.exited).toBe(0);
    }
  }, 60_000);

  it("with GITHUB_API_URL and GITHUB_TOKEN starts Azurite itself and serves the functions", async () => {
    const github = await GitHubStandin.start();
    github.addRunner({ name: "VM-25-26", labels: ["lab", "vm-25-26"] });
    github.addRunner({ name: hostRunnerName("parent=rr1-netperf-26"), labels: ["parent=rr1-netperf-26\\localadminuser"] });
    const port = await freePort();
    const app = startApp({ GITHUB_API_URL: github.url, GITHUB_TOKEN: github.token, PORT: String(port) });
    try {
      await app.waitFor(/GET {2}http:\/\/127\.0\.0\.1:\d+\/api\/pairs/);
      expect(app.output()).toMatch(/Azurite \(in memory\)/);
      expect((await fetch(`http://127.0.0.1:${port}/admin/functions/scheduledReset`, { method: "POST" })).status).toBe(202);
      const body = await eventually(() => json(fetch(`http://127.0.0.1:${port}/api/pairs`)), (b) => b.pairs.every((p: { state: string }) => p.state === "offline"));
      const states = Object.fromEntries(body.pairs.map((p: { id: string; state: string }) => [p.id, p.state]));
      // Only vm-25-26's VM runner and one of its hosts exist in this stand-in: every pair is offline.
      expect(states).toEqual({ "vm-25-26": "offline", "vm-05-10": "offline", "vm-42-43": "offline", "vm-11-12": "offline" });
      expect(github.dispatches).toHaveLength(0);
    } finally {
      app.child.kill("SIGINT");
      expect(await app.exited).toBe(0);
      await github.close();
    }
  });
});
