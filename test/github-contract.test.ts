/**
 * The LabGitHub contract: one suite run against both implementations, OctokitLabGitHub (the app's
 * client, through Octokit and its plugins, over the HTTP stand-in) and ModelLabGitHub (in process,
 * over the same GitHub model). Each test sets GitHub's state in the model, calls the interface and
 * checks the answers, the requests GitHub received (method, path, query, status: every attempt)
 * and `stats()`. The last suite runs one mixed script on both side by side and compares every
 * answer field by field: the in-process GitHub speaks GitHub as Octokit sees it.
 */
import { afterEach, describe, expect, it } from "vitest";
import { createOctokit, GitHubError, OctokitLabGitHub, type LabGitHub } from "../shared/github/client.js";
import type { LabConfig } from "../shared/lab/config.js";
import { silentLogger } from "../shared/logger.js";
import { GitHubModel, type FaultSpec } from "../shared/sim/github-model.js";
import { GitHubStandin } from "../shared/sim/github-standin.js";
import { ModelLabGitHub } from "../shared/sim/model-github.js";
import { hostRunnerName, seedConfig, vmRunnerName } from "./support/lab.js";

interface Subject {
  github: LabGitHub;
  model: GitHubModel;
  close(): Promise<void>;
}

interface OpenOptions {
  config?: LabConfig;
  ghes?: boolean;
}

const now = { value: new Date("2026-11-27T12:00:00.000Z") };
const clock = () => now.value;
/** The client's tuning in these tests: 3 retries of a read (the simulator's), no real waiting. */
const RETRIES = 3;

const implementations: [string, (options?: OpenOptions) => Promise<Subject>][] = [
  [
    "OctokitLabGitHub over the HTTP stand-in",
    async ({ config = seedConfig, ghes = false } = {}) => {
      const standin = await GitHubStandin.start({ owner: config.github.owner, repo: config.github.repo, clock, ghes });
      const octokit = createOctokit({
        baseUrl: standin.url,
        auth: { kind: "token", token: standin.token },
        logger: silentLogger,
        retries: RETRIES,
        retryBaseMs: 1,
        rateLimitBaseMs: 1,
        writeSpacingMs: 0,
        timeoutMs: 10_000,
      });
      return { github: new OctokitLabGitHub(octokit, config), model: standin.model, close: () => standin.close() };
    },
  ],
  [
    "ModelLabGitHub over the model",
    ({ config = seedConfig, ghes = false } = {}) => {
      const model = new GitHubModel({ owner: config.github.owner, repo: config.github.repo, clock, ghes });
      return Promise.resolve({ github: new ModelLabGitHub(model, config, { retries: RETRIES }), model, close: () => Promise.resolve() });
    },
  ],
];

const REPO = "/repos/microsoft/netperf";
const pair = seedConfig.pairs[0]!;

/** The seed lab's runners: per pair a VM runner and its two host runners. */
function seedRunners(model: GitHubModel) {
  for (const p of seedConfig.pairs) {
    model.addRunner({ name: vmRunnerName(p.id), labels: ["lab", "os-windows-2022", p.vmRunnerLabel] });
    for (const host of p.hosts) model.addRunner({ name: hostRunnerName(host.runnerLabel), labels: [host.runnerLabel] });
  }
}

/** The next `times` requests matching get `fault`, through the model's fault hook (both fronts ask it). */
function failNext(model: GitHubModel, match: { method: string; path: RegExp }, fault: FaultSpec, times: number) {
  let left = times;
  model.injectFault = (method, path) => (left > 0 && method === match.method && match.path.test(path) ? (left--, fault) : undefined);
}

/** What GitHub received: method, path, query and status of every attempt. */
const received = (model: GitHubModel) => model.requests.map((r) => ({ method: r.method, path: r.path, query: r.query, status: r.status }));
const get = (path: string, query: Record<string, string>, status = 200) => ({ method: "GET", path: `${REPO}${path}`, query, status });

const SECONDARY = { status: 429, body: { message: "You have exceeded a secondary rate limit. Please wait a few minutes before you try again.", documentation_url: "https://docs.github.com/rest" }, headers: { "retry-after": "1" } };

describe.each(implementations)("LabGitHub contract: %s", (_, open) => {
  let subject: Subject;
  afterEach(async () => {
    now.value = new Date("2026-11-27T12:00:00.000Z");
    await subject?.close();
  });
  const start = async (options?: OpenOptions) => {
    subject = await open(options);
    return subject;
  };

  it("lists runners with their read-only and custom labels, one request per page of 100", async () => {
    const { github, model } = await start();
    seedRunners(model);
    model.setRunner("VM-25-26", { busy: true });
    model.setRunner("VM-05-10", { status: "offline" });
    const runners = await github.listRunners();
    expect(runners).toHaveLength(12);
    expect(runners[0]).toEqual({
      id: 1,
      name: "VM-25-26",
      status: "online",
      busy: true,
      labels: [
        { name: "self-hosted", type: "read-only" },
        { name: "Windows", type: "read-only" },
        { name: "X64", type: "read-only" },
        { name: "lab", type: "custom" },
        { name: "os-windows-2022", type: "custom" },
        { name: "vm-25-26", type: "custom" },
      ],
    });
    expect(runners.find((r) => r.name === "VM-05-10")?.status).toBe("offline");
    expect(received(model)).toEqual([get("/actions/runners", { per_page: "100" })]);
    expect(github.stats()).toEqual({ requests: 1, notModified: 0, rateLimitRemaining: 4999 });
  });

  it("pages 250 runners in 3 requests; an unchanged list is answered 304 page by page, a changed page 200", async () => {
    const { github, model } = await start();
    for (let i = 1; i <= 250; i++) model.addRunner({ name: `VM-${i}`, labels: ["lab", `vm-${i}`] });
    const first = await github.listRunners();
    expect(first.map((r) => r.name)).toEqual(Array.from({ length: 250 }, (_, i) => `VM-${i + 1}`));
    const again = await github.listRunners();
    expect(again).toEqual(first);
    model.setRunner("VM-150", { busy: true });
    const changed = await github.listRunners();
    expect(changed.find((r) => r.name === "VM-150")?.busy).toBe(true);
    const page = (n: number, status = 200) => get("/actions/runners", n === 1 ? { per_page: "100" } : { per_page: "100", page: String(n) }, status);
    expect(received(model)).toEqual([page(1), page(2), page(3), page(1, 304), page(2, 304), page(3, 304), page(1, 304), page(2), page(3, 304)]);
    expect(github.stats()).toEqual({ requests: 9, notModified: 5, rateLimitRemaining: 4992 });
  });

  it("lists the active jobs: picked-up unfinished jobs of in-progress runs, skipping reset runs' jobs unread", async () => {
    const { github, model } = await start();
    seedRunners(model);
    const perf = model.addRun({
      jobs: [
        { name: "on a VM", runnerName: "VM-25-26", labels: ["self-hosted", "lab", "os-windows-2022"] },
        { name: "waiting", status: "queued" },
        { name: "done", status: "completed", conclusion: "success", runnerName: "VM-05-10" },
      ],
    });
    const reset = model.addRun({ workflowPath: ".github/workflows/lab-reset.yml", event: "workflow_dispatch", jobs: [{ runnerName: "RR1-NETPERF-26", labels: ["self-hosted", pair.hosts[0]!.runnerLabel] }] });
    model.addRun({ status: "completed", jobs: [{ runnerName: "VM-42-43" }] });
    const jobs = await github.listActiveJobs();
    expect(jobs).toEqual([
      { id: 50_000, run_id: Number(perf.id), status: "in_progress", conclusion: null, runner_name: "VM-25-26", runner_id: 1, labels: ["self-hosted", "lab", "os-windows-2022"], completed_at: null, created_at: "2026-11-27T12:00:00.000Z", started_at: "2026-11-27T12:00:00.000Z", html_url: `https://github.com/microsoft/netperf/actions/runs/${perf.id}/job/50000` },
    ]);
    expect(received(model)).toEqual([get("/actions/runs", { status: "in_progress", per_page: "100" }), get(`/actions/runs/${perf.id}/jobs`, { filter: "latest", per_page: "100" })]);
    expect(reset.path).toBe(".github/workflows/lab-reset.yml");
  });

  it("reads a run with GitHub's timestamps in the app's form, null for a run GitHub does not know", async () => {
    const { github, model } = await start();
    const run = model.addRun({ status: "completed", conclusion: "failure", displayTitle: "Lab reset vm-25-26 req-1", workflowPath: ".github/workflows/lab-reset.yml", runAttempt: 2 });
    expect(await github.getRun(Number(run.id))).toEqual({
      id: Number(run.id),
      status: "completed",
      conclusion: "failure",
      display_title: "Lab reset vm-25-26 req-1",
      path: ".github/workflows/lab-reset.yml",
      html_url: `https://github.com/microsoft/netperf/actions/runs/${run.id}`,
      updated_at: "2026-11-27T12:00:00.000Z",
      run_attempt: 2,
    });
    expect(await github.getRun(424242)).toBeNull();
    expect(received(model).map((r) => r.status)).toEqual([200, 404]);
  });

  it("lists a run's jobs, of an attempt too, and fails a read GitHub answers 404 with the client's message", async () => {
    const { github, model } = await start();
    seedRunners(model);
    const run = model.addRun({ runAttempt: 2, jobs: [{ name: "a", runnerName: "VM-25-26" }, { name: "b", status: "queued" }] });
    const id = Number(run.id);
    expect((await github.listRunJobs(id)).map((j) => [j.status, j.runner_name])).toEqual([
      ["in_progress", "VM-25-26"],
      ["queued", null],
    ]);
    expect(await github.listRunJobs(id, 2)).toHaveLength(2);
    await expect(github.listRunJobs(id, 3)).rejects.toThrow(new GitHubError(`GET ${REPO}/actions/runs/${id}/attempts/3/jobs`, 404, "Not Found - https://docs.github.com/rest"));
    await expect(github.listRunJobs(999_999)).rejects.toMatchObject({ name: "GitHubError", status: 404 });
    expect(received(model)).toEqual([
      get(`/actions/runs/${id}/jobs`, { filter: "latest", per_page: "100" }),
      get(`/actions/runs/${id}/attempts/2/jobs`, { per_page: "100" }),
      get(`/actions/runs/${id}/attempts/3/jobs`, { per_page: "100" }, 404),
      get(`/actions/runs/999999/jobs`, { filter: "latest", per_page: "100" }, 404),
    ]);
  });

  it("lists reset runs dispatched since a time, and completed runs created since a time, in whole seconds", async () => {
    const { github, model } = await start();
    const old = model.addRun({ workflowPath: ".github/workflows/lab-reset.yml", event: "workflow_dispatch", status: "completed", createdAt: "2026-11-27T10:00:00Z" });
    const reset = model.addRun({ workflowPath: ".github/workflows/lab-reset.yml", event: "workflow_dispatch", status: "queued", createdAt: "2026-11-27T11:00:00Z" });
    const perf = model.addRun({ status: "completed", createdAt: "2026-11-27T11:30:00Z" });
    model.addRun({ status: "in_progress", createdAt: "2026-11-27T11:40:00Z" });
    const since = new Date("2026-11-27T11:00:00.900Z");
    expect((await github.listResetRuns(since)).map((r) => r.id)).toEqual([reset.id]);
    expect((await github.listCompletedRuns(since)).map((r) => r.id)).toEqual([perf.id]);
    expect((await github.listCompletedRuns(new Date(0))).map((r) => r.id)).toEqual([perf.id, old.id]);
    expect(received(model)).toEqual([
      get("/actions/workflows/lab-reset.yml/runs", { event: "workflow_dispatch", created: ">=2026-11-27T11:00:00Z", per_page: "100" }),
      get("/actions/runs", { status: "completed", created: ">=2026-11-27T11:00:00Z", per_page: "100" }),
      get("/actions/runs", { status: "completed", created: ">=1970-01-01T00:00:00Z", per_page: "100" }),
    ]);
  });

  it("reads a finished run's jobs once per process", async () => {
    const { github, model } = await start();
    const run = model.addRun({ status: "completed", jobs: [{ name: "a" }] });
    const first = await github.listFinishedRunJobs(Number(run.id));
    expect(await github.listFinishedRunJobs(Number(run.id))).toEqual(first);
    expect(first).toMatchObject([{ status: "completed", conclusion: "success", completed_at: "2026-11-27T12:00:00.000Z" }]);
    expect(github.stats().requests).toBe(1);
  });

  it("dispatches a reset with run details: the run, titled with the request id, one check job per host", async () => {
    const { github, model } = await start();
    const seen: number[] = [];
    model.onDispatch = (_dispatch, run) => seen.push(Number(run.id));
    const result = await github.dispatchReset(pair, "req-1");
    expect(result).toEqual({ outcome: "dispatched", runId: 1000 });
    expect(seen).toEqual([1000]);
    expect(model.getRun(1000)).toMatchObject({ display_title: "Lab reset vm-25-26 req-1", status: "queued", event: "workflow_dispatch", path: ".github/workflows/lab-reset.yml" });
    expect(model.jobsOf(1000).map((j) => j.labels)).toEqual(pair.hosts.map((h) => ["self-hosted", h.runnerLabel]));
    expect(model.requests.map((r) => [r.method, r.path, r.body, r.status])).toEqual([
      ["POST", `${REPO}/actions/workflows/lab-reset.yml/dispatches`, { ref: "main", inputs: { pair: pair.id, hosts: JSON.stringify(pair.hosts), request_id: "req-1" }, return_run_details: true }, 200],
    ]);
    expect(github.stats()).toMatchObject({ requests: 1, notModified: 0 });
  });

  it("dispatches without run details where GitHub refuses them (GHES): sent again without, and never asked again", async () => {
    const { github, model } = await start({ ghes: true });
    expect(await github.dispatchReset(pair, "req-1")).toEqual({ outcome: "dispatched", runId: null });
    expect(await github.dispatchReset(pair, "req-2")).toEqual({ outcome: "dispatched", runId: null });
    expect(model.requests.map((r) => [r.status, (r.body as { return_run_details?: boolean }).return_run_details])).toEqual([
      [400, true],
      [204, undefined],
      [204, undefined],
    ]);
    expect(model.runs().map((r) => r.display_title)).toEqual(["Lab reset vm-25-26 req-2", "Lab reset vm-25-26 req-1"]);
    expect(github.stats().requests).toBe(3);
  });

  it("rejects a dispatch GitHub refuses (4xx) and calls one it gave no clear answer (5xx) unknown, sending neither again", async () => {
    const { github, model } = await start();
    failNext(model, { method: "POST", path: /dispatches$/ }, { status: 502 }, 1);
    const unknown = await github.dispatchReset(pair, "req-1");
    expect(unknown).toEqual({ outcome: "unknown", error: `GitHub POST ${REPO}/actions/workflows/lab-reset.yml/dispatches failed with 502: Bad Gateway - https://docs.github.com/rest` });
    failNext(model, { method: "POST", path: /dispatches$/ }, { status: 422, body: { message: "Invalid request.\n\nFor 'properties/inputs', nil is not an object." } }, 1);
    const rejected = await github.dispatchReset(pair, "req-2");
    expect(rejected).toEqual({ outcome: "rejected", error: `GitHub POST ${REPO}/actions/workflows/lab-reset.yml/dispatches failed with 422: Invalid request.\n\nFor 'properties/inputs', nil is not an object.` });
    expect(received(model).map((r) => r.status)).toEqual([502, 422]);
    expect(model.runs()).toEqual([]);
  });

  it("cancels a run and its unfinished jobs; a finished run's 409 (retried, as the retry plugin does) is no failure", async () => {
    const { github, model } = await start();
    const run = model.addRun({ status: "queued", jobs: [{ status: "queued" }] });
    await github.cancelRun(Number(run.id));
    expect(model.getRun(Number(run.id))).toMatchObject({ status: "completed", conclusion: "cancelled" });
    expect(model.jobsOf(Number(run.id))[0]).toMatchObject({ status: "completed", conclusion: "cancelled" });
    await github.cancelRun(Number(run.id));
    await expect(github.cancelRun(31337)).rejects.toMatchObject({ status: 404 });
    expect(received(model).map((r) => `${r.method} ${r.status}`)).toEqual(["POST 202", "POST 409", "POST 409", "POST 409", "POST 409", "POST 404"]);
    expect(github.stats().requests).toBe(3);
  });

  it("edits a runner's labels with GitHub's answers: done, not-found, and failures for read-only labels and a denied call", async () => {
    const { github, model } = await start();
    seedRunners(model);
    expect(await github.removeRunnerLabel(1, "lab")).toBe("done");
    expect(model.getRunner("VM-25-26")?.labels.map((l) => l.name)).not.toContain("lab");
    expect(await github.removeRunnerLabel(1, "LAB")).toBe("not-found");
    expect(await github.addRunnerLabel(1, "lab")).toBe("done");
    expect(await github.addRunnerLabel(1, "lab")).toBe("done");
    expect(await github.addRunnerLabel(999, "lab")).toBe("not-found");
    expect(await github.removeRunnerLabel(999, "lab")).toBe("not-found");
    await expect(github.removeRunnerLabel(1, "self-hosted")).rejects.toMatchObject({ name: "GitHubError", status: 422, message: expect.stringContaining("'self-hosted' is a read-only label") });
    model.denyLabelCall = () => true;
    await expect(github.addRunnerLabel(1, "lab")).rejects.toThrow(
      new GitHubError(`POST ${REPO}/actions/runners/1/labels`, 403, "Resource not accessible by integration - https://docs.github.com/rest/actions/self-hosted-runners (the token lacks a permission, or the rate limit is spent)"),
    );
    expect(model.labelCalls.map((c) => [c.operation, c.runnerName, c.labels, c.status])).toEqual([
      ["remove", "VM-25-26", ["lab"], 200],
      ["remove", "VM-25-26", ["LAB"], 404],
      ["add", "VM-25-26", ["lab"], 200],
      ["add", "VM-25-26", ["lab"], 200],
      ["add", null, ["lab"], 404],
      ["remove", null, ["lab"], 404],
      ["remove", "VM-25-26", ["self-hosted"], 422],
      ["add", "VM-25-26", ["lab"], 403],
    ]);
    expect(model.requests[2]).toMatchObject({ method: "POST", path: `${REPO}/actions/runners/1/labels`, body: { labels: ["lab"] } });
  });

  it("reads and edits an organisation's runners under runnerScope org", async () => {
    const config: LabConfig = { ...seedConfig, github: { ...seedConfig.github, runnerScope: "org" } };
    const { github, model } = await start({ config });
    seedRunners(model);
    expect(await github.listRunners()).toHaveLength(12);
    expect(await github.removeRunnerLabel(1, "lab")).toBe("done");
    expect(await github.addRunnerLabel(1, "lab")).toBe("done");
    expect(received(model).map((r) => `${r.method} ${r.path}`)).toEqual(["GET /orgs/microsoft/actions/runners", "DELETE /orgs/microsoft/actions/runners/1/labels/lab", "POST /orgs/microsoft/actions/runners/1/labels"]);
    expect(model.labelCalls.map((c) => c.scope)).toEqual(["org", "org"]);
  });

  it("retries a read GitHub answers 5xx: each attempt reaches GitHub, the request counts once; after 3 retries it fails", async () => {
    const { github, model } = await start();
    seedRunners(model);
    failNext(model, { method: "GET", path: /runners$/ }, { status: 502 }, 2);
    expect(await github.listRunners()).toHaveLength(12);
    expect(received(model).map((r) => r.status)).toEqual([502, 502, 200]);
    expect(github.stats()).toEqual({ requests: 1, notModified: 0, rateLimitRemaining: 4997 });
    model.clearRequests();
    failNext(model, { method: "GET", path: /runners$/ }, { status: 503, raw: "<html>upstream connect error</html>", headers: { "content-type": "text/html" } }, 4);
    await expect(github.listRunners()).rejects.toThrow(new GitHubError(`GET ${REPO}/actions/runners`, 503, "<html>upstream connect error</html>"));
    expect(received(model).map((r) => r.status)).toEqual([503, 503, 503, 503]);
    expect(github.stats()).toEqual({ requests: 2, notModified: 0, rateLimitRemaining: 4997 });
  });

  it("waits out a secondary rate limit (429) at most twice; a 429 without a rate-limit reason is no retry", async () => {
    const { github, model } = await start();
    seedRunners(model);
    failNext(model, { method: "GET", path: /runners$/ }, SECONDARY, 2);
    expect(await github.listRunners()).toHaveLength(12);
    failNext(model, { method: "GET", path: /runners$/ }, SECONDARY, 3);
    await expect(github.listRunners()).rejects.toMatchObject({ status: 429, message: expect.stringContaining("secondary rate limit") });
    failNext(model, { method: "GET", path: /runners$/ }, { status: 429, headers: { "retry-after": "1" } }, 1);
    await expect(github.listRunners()).rejects.toThrow(new GitHubError(`GET ${REPO}/actions/runners`, 429, "Too Many Requests - https://docs.github.com/rest"));
    expect(received(model).map((r) => r.status)).toEqual([429, 429, 200, 429, 429, 429, 429]);
    expect(github.stats().requests).toBe(3);
  });

  it("sends a label write once: no retry of a 5xx or a secondary rate limit", async () => {
    const { github, model } = await start();
    seedRunners(model);
    failNext(model, { method: "DELETE", path: /labels/ }, { status: 502 }, 5);
    await expect(github.removeRunnerLabel(1, "lab")).rejects.toThrow(new GitHubError(`DELETE ${REPO}/actions/runners/1/labels/lab`, 502, "Bad Gateway - https://docs.github.com/rest"));
    failNext(model, { method: "POST", path: /labels$/ }, SECONDARY, 5);
    await expect(github.addRunnerLabel(1, "lab")).rejects.toMatchObject({ status: 429 });
    expect(received(model).map((r) => `${r.method} ${r.status}`)).toEqual(["DELETE 502", "POST 429"]);
    expect(model.getRunner("VM-25-26")?.labels.map((l) => l.name)).toContain("lab");
  });

  it("waits out a secondary rate limit on a dispatch (the throttling plugin's), but never resends one after a 5xx", async () => {
    const { github, model } = await start();
    failNext(model, { method: "POST", path: /dispatches$/ }, SECONDARY, 1);
    expect(await github.dispatchReset(pair, "req-1")).toEqual({ outcome: "dispatched", runId: 1000 });
    failNext(model, { method: "POST", path: /dispatches$/ }, { status: 500 }, 5);
    expect(await github.dispatchReset(pair, "req-2")).toMatchObject({ outcome: "unknown" });
    expect(received(model).map((r) => r.status)).toEqual([429, 200, 500]);
  });
});

describe("LabGitHub contract: both implementations side by side", () => {
  it("give equal answers, requests and stats over one mixed script", async () => {
    const subjects = await Promise.all(implementations.map(([, open]) => open()));
    try {
      const transcripts = [];
      for (const { github, model } of subjects) {
        now.value = new Date("2026-11-27T12:00:00.000Z");
        const answers: unknown[] = [];
        const note = async (call: () => Promise<unknown>) => answers.push(await call().catch((error: unknown) => ({ error: (error as Error).message })));
        seedRunners(model);
        for (let i = 0; i < 120; i++) model.addRunner({ name: `EXTRA-${i}`, labels: ["other"] });
        const perf = Number(model.addRun({ jobs: [{ runnerName: "VM-25-26" }, { status: "queued" }] }).id);
        await note(() => github.listRunners());
        await note(() => github.listActiveJobs());
        await note(() => github.dispatchReset(pair, "req-a"));
        now.value = new Date(now.value.getTime() + 60_000);
        model.setJob(Number(model.jobsOf(1001)[0]!.id), { status: "in_progress", runnerName: "RR1-NETPERF-26" });
        await note(() => github.getRun(1001));
        await note(() => github.listRunJobs(1001));
        await note(() => github.listResetRuns(new Date("2026-11-27T11:55:00Z")));
        await note(() => github.removeRunnerLabel(1, "lab"));
        await note(() => github.listRunners());
        model.setRun(perf, { status: "completed", conclusion: "success" });
        await note(() => github.listActiveJobs());
        await note(() => github.listCompletedRuns(new Date("2026-11-27T11:00:00Z")));
        await note(() => github.listFinishedRunJobs(perf));
        failNext(model, { method: "GET", path: /\/runs\/1001$/ }, { status: 502 }, 1);
        await note(() => github.getRun(1001));
        await note(() => github.cancelRun(1001));
        await note(() => github.cancelRun(1001));
        await note(() => github.addRunnerLabel(1, "lab"));
        await note(() => github.getRun(1001));
        transcripts.push({ answers, requests: received(model), stats: github.stats(), labelCalls: model.labelCalls, runs: model.runs() });
      }
      const [http, inProcess] = transcripts;
      expect(inProcess!.answers).toEqual(http!.answers);
      expect(inProcess!.requests).toEqual(http!.requests);
      expect(inProcess!.stats).toEqual(http!.stats);
      expect(inProcess!.labelCalls).toEqual(http!.labelCalls);
      // The runs' API URLs name each front's own address; everything else is GitHub's state.
      const withoutUrls = (runs: unknown) => JSON.parse(JSON.stringify(runs).replace(/http:\/\/127\.0\.0\.1:\d+|https:\/\/api\.github\.com/g, "API"));
      expect(withoutUrls(inProcess!.runs)).toEqual(withoutUrls(http!.runs));
      expect(http!.stats.notModified).toBeGreaterThan(0);
    } finally {
      await Promise.all(subjects.map((s) => s.close()));
    }
  });
});
