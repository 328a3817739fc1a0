import { createRequire } from "node:module";
import { Octokit } from "@octokit/rest";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { components } from "@octokit/openapi-types";
import type { WebhookDefinition } from "@octokit/webhooks-examples";
import { GitHubModel } from "../shared/sim/github-model.js";
import { GitHubStandin, hostedRunnerName } from "../shared/sim/github-standin.js";
import type { StandinOptions } from "../shared/sim/github-standin.js";

type Runner = components["schemas"]["runner"];
type WorkflowRun = components["schemas"]["workflow-run"];
type Job = components["schemas"]["job"];

let gh: GitHubStandin;

async function start(options?: StandinOptions): Promise<void> {
  await gh.close();
  gh = await GitHubStandin.start(options);
}

beforeEach(async () => {
  gh = await GitHubStandin.start();
});

afterEach(async () => {
  await gh.close();
});

/** fetch with the stand-in's token; `path` is relative to the stand-in's base URL. */
function api(path: string, init: RequestInit & { json?: unknown } = {}): Promise<Response> {
  const { json, ...rest } = init;
  const headers = new Headers(rest.headers);
  if (!headers.has("authorization")) headers.set("authorization", `token ${gh.token}`);
  if (json !== undefined) headers.set("content-type", "application/json");
  return fetch(`${gh.url}${path}`, { ...rest, headers, ...(json === undefined ? {} : { body: JSON.stringify(json) }) });
}

const repoPath = () => `/repos/${gh.owner}/${gh.repo}`;

/** The Link header as { rel: page }. */
function linkPages(response: Response): Record<string, number> {
  const links: Record<string, number> = {};
  for (const part of (response.headers.get("link") ?? "").split(", ").filter(Boolean)) {
    const match = /^<([^>]+)>; rel="(\w+)"$/.exec(part);
    expect(match).not.toBeNull();
    const url = new URL(match?.[1] ?? "");
    expect(url.origin).toBe(gh.url);
    links[match?.[2] ?? ""] = Number(url.searchParams.get("page"));
  }
  return links;
}

function addRunners(count: number): void {
  for (let i = 1; i <= count; i++) gh.addRunner({ name: `VM-${i}`, labels: ["lab", `vm-${i}`] });
}

const hosts = JSON.stringify([
  { runnerLabel: "parent=rr1-netperf-26\\localadminuser", vmName: "netperf-windows-2022-client" },
  { runnerLabel: "child=rr1-netperf-25\\localadminuser", vmName: "netperf-windows-2022-server" },
]);

describe("GitHubStandin", () => {
  it("answers 401 Bad credentials without a token or with a wrong one, and records it", async () => {
    const missing = await fetch(`${gh.url}${repoPath()}/actions/runners`);
    const wrong = await api(`${repoPath()}/actions/runners`, { headers: { authorization: "Bearer nope" } });
    for (const response of [missing, wrong]) {
      expect(response.status).toBe(401);
      expect(await response.json()).toMatchObject({ message: "Bad credentials", status: "401" });
    }
    expect(gh.requests.map((r) => [r.path, r.status])).toEqual([
      ["/repos/microsoft/netperf/actions/runners", 401],
      ["/repos/microsoft/netperf/actions/runners", 401],
    ]);
    expect((await api(`${repoPath()}/actions/runners`, { headers: { authorization: `Bearer ${gh.token}` } })).status).toBe(200);
  });

  it("builds runners with read-only and custom labels", async () => {
    const vm = gh.addRunner({ name: "VM-25-26", labels: ["lab", "os-windows-2022", "vm-25-26"] });
    const other = gh.addRunner({ name: "VM-42-43", labels: ["lab"], status: "offline", busy: true, os: "Linux" });
    expect(vm.labels).toEqual([
      { id: 1, name: "self-hosted", type: "read-only" },
      { id: 2, name: "Windows", type: "read-only" },
      { id: 3, name: "X64", type: "read-only" },
      { id: 4, name: "lab", type: "custom" },
      { id: 5, name: "os-windows-2022", type: "custom" },
      { id: 6, name: "vm-25-26", type: "custom" },
    ]);
    expect(other).toMatchObject({ id: vm.id + 1, status: "offline", busy: true, os: "Linux" });
    expect(other.labels.find((l) => l.name === "lab")?.id).toBe(4);

    gh.setRunner("VM-25-26", { busy: true });
    const one = await api(`${repoPath()}/actions/runners/${vm.id}`);
    expect(await one.json()).toMatchObject({ name: "VM-25-26", busy: true });
    const byName = (await (await api(`${repoPath()}/actions/runners?name=VM-42-43`)).json()) as { total_count: number };
    expect(byName.total_count).toBe(1);

    gh.removeRunner("VM-42-43");
    expect((await api(`${repoPath()}/actions/runners/${other.id}`)).status).toBe(404);
    expect(() => gh.setRunner("VM-42-43", { busy: false })).toThrow(/unknown runner/);
  });

  it("pages 250 runners like GitHub: 3 pages of ≤100, Link next/last/prev/first, each runner once", async () => {
    addRunners(250);
    const names: string[] = [];
    const links: Record<string, number>[] = [];
    for (let page = 1; page <= 3; page++) {
      const response = await api(`${repoPath()}/actions/runners?per_page=100&page=${page}`);
      const body = (await response.json()) as { total_count: number; runners: Runner[] };
      expect(body.total_count).toBe(250);
      names.push(...body.runners.map((r) => r.name));
      links.push(linkPages(response));
    }
    expect(links).toEqual([
      { next: 2, last: 3 },
      { prev: 1, next: 3, last: 3, first: 1 },
      { prev: 2, first: 1 },
    ]);
    expect(names).toHaveLength(250);
    expect(new Set(names).size).toBe(250);

    const clamped = await api(`${repoPath()}/actions/runners?per_page=500`);
    expect(((await clamped.json()) as { runners: Runner[] }).runners).toHaveLength(100);
    expect(linkPages(clamped)).toEqual({ next: 2, last: 3 });
    const byDefault = await api(`/orgs/${gh.owner}/actions/runners`);
    expect(((await byDefault.json()) as { runners: Runner[] }).runners).toHaveLength(30);
    expect(linkPages(byDefault)).toEqual({ next: 2, last: 9 });
  });

  it("filters runs by status or conclusion, event, branch and created, newest first", async () => {
    const old = gh.addRun({ status: "completed", conclusion: "failure", createdAt: "2026-01-01T10:00:00Z" });
    const running = gh.addRun({ createdAt: "2026-02-01T10:00:00Z" });
    const queued = gh.addRun({ status: "queued", event: "schedule", branch: "release", createdAt: "2026-02-02T10:00:00Z" });
    const alsoRunning = gh.addRun({ workflowPath: ".github/workflows/lab-reset.yml", event: "workflow_dispatch" });

    const ids = async (query: string, prefix = `${repoPath()}/actions`) => {
      const body = (await (await api(`${prefix}/runs?${query}`)).json()) as { total_count: number; workflow_runs: WorkflowRun[] };
      expect(body.total_count).toBe(body.workflow_runs.length);
      return body.workflow_runs.map((r) => r.id);
    };
    expect(await ids("status=in_progress")).toEqual([alsoRunning.id, running.id]);
    expect(await ids("status=failure")).toEqual([old.id]);
    expect(await ids("event=schedule")).toEqual([queued.id]);
    expect(await ids("branch=release")).toEqual([queued.id]);
    expect(await ids(`created=${encodeURIComponent(">=2026-02-01T00:00:00Z")}`)).toEqual([alsoRunning.id, queued.id, running.id]);
    expect(await ids("created=2026-01")).toEqual([old.id]);
    expect(await ids("", `${repoPath()}/actions/workflows/lab-reset.yml`)).toEqual([alsoRunning.id]);
    expect(await ids("", `${repoPath()}/actions/workflows/${alsoRunning.workflow_id}`)).toEqual([alsoRunning.id]);

    expect(await (await api(`${repoPath()}/actions/runs/${running.id}`)).json()).toMatchObject({ id: running.id, status: "in_progress" });
    expect((await api(`${repoPath()}/actions/runs/1`)).status).toBe(404);
  });

  it("lists a run's jobs with their runners, and completes them with the run", async () => {
    const vm = gh.addRunner({ name: "VM-25-26", labels: ["lab", "vm-25-26"] });
    const run = gh.addRun({
      runAttempt: 2,
      jobs: [
        { name: "perf", runnerName: "VM-25-26", labels: ["self-hosted", "lab", "vm-25-26"] },
        { name: "gone", runnerName: "VM-99" },
        { name: "waiting", status: "queued" },
      ],
    });
    const jobsOf = async (path: string) => ((await (await api(path)).json()) as { total_count: number; jobs: Job[] }).jobs;
    const jobs = await jobsOf(`${repoPath()}/actions/runs/${run.id}/jobs?filter=latest`);
    expect(jobs.map((j) => [j.name, j.status, j.runner_id, j.runner_name, j.run_attempt])).toEqual([
      ["perf", "in_progress", vm.id, "VM-25-26", 2],
      ["gone", "in_progress", null, "VM-99", 2],
      ["waiting", "queued", null, null, 2],
    ]);
    expect(jobs[0]?.labels).toEqual(["self-hosted", "lab", "vm-25-26"]);
    expect(jobs[1]?.labels).toEqual(["self-hosted", "lab"]);
    expect(await jobsOf(`${repoPath()}/actions/runs/${run.id}/attempts/2/jobs`)).toHaveLength(3);
    expect(await jobsOf(`${repoPath()}/actions/runs/${run.id}/attempts/1/jobs`)).toHaveLength(0);
    expect((await api(`${repoPath()}/actions/runs/999999/jobs`)).status).toBe(404);

    const waitingId = Number(jobs[2]?.id);
    gh.setJob(waitingId, { status: "in_progress", runnerName: "VM-25-26" });
    expect(await (await api(`${repoPath()}/actions/jobs/${waitingId}`)).json()).toMatchObject({ status: "in_progress", runner_id: vm.id });

    gh.setRun(Number(run.id), { status: "completed", conclusion: "cancelled" });
    const done = await jobsOf(`${repoPath()}/actions/runs/${run.id}/jobs`);
    expect(done.map((j) => [j.status, j.conclusion, j.completed_at !== null])).toEqual(Array(3).fill(["completed", "cancelled", true]));
    expect(gh.getRun(Number(run.id))).toMatchObject({ status: "completed", conclusion: "cancelled" });
    expect(() => gh.setRun(Number(run.id), { status: "in_progress", conclusion: "success" })).toThrow(/needs status "completed"/);
  });

  it("dispatches: 200 with run details, 204 without; the run carries the request id and one job per host", async () => {
    const seen: number[] = [];
    gh.onDispatch = (dispatch, run) => {
      expect(dispatch.runId).toBe(run.id);
      seen.push(Number(run.id));
    };
    const inputs = { pair: "vm-25-26", request_id: "req-1", hosts };
    const detailed = await api(`${repoPath()}/actions/workflows/lab-reset.yml/dispatches`, {
      method: "POST",
      json: { ref: "main", inputs, return_run_details: true },
    });
    expect(detailed.status).toBe(200);
    const details = (await detailed.json()) as components["schemas"]["workflow-dispatch-response"];
    const run = gh.getRun(Number(details.workflow_run_id));
    expect(run).toMatchObject({
      path: ".github/workflows/lab-reset.yml",
      event: "workflow_dispatch",
      status: "queued",
      head_branch: "main",
      display_title: "Lab reset vm-25-26 req-1",
    });
    expect(details.run_url).toBe(run?.url);
    const jobs = ((await (await api(`${repoPath()}/actions/runs/${run?.id}/jobs`)).json()) as { jobs: Job[] }).jobs;
    // lab-reset.yml's first step: one check per host; the restores come once the checks pass.
    expect(jobs.map((j) => [j.name, j.status, j.labels, j.runner_name])).toEqual([
      ["Check netperf-windows-2022-client (parent=rr1-netperf-26\\localadminuser)", "queued", ["self-hosted", "parent=rr1-netperf-26\\localadminuser"], null],
      ["Check netperf-windows-2022-server (child=rr1-netperf-25\\localadminuser)", "queued", ["self-hosted", "child=rr1-netperf-25\\localadminuser"], null],
    ]);
    expect(gh.dispatchedHosts(Number(run?.id))).toEqual(JSON.parse(hosts));
    gh.addJobs(Number(run?.id), [{ name: "Reset netperf-windows-2022-client (parent=rr1-netperf-26\\localadminuser)", status: "queued", labels: ["self-hosted", "parent=rr1-netperf-26\\localadminuser"], runnerName: null }]);
    expect(gh.jobsOf(Number(run?.id)).map((j) => j.name)).toHaveLength(3);
    expect(gh.dispatchedHosts(Number(gh.addRun({}).id))).toBeUndefined();

    const plain = await api(`${repoPath()}/actions/workflows/lab-reset.yml/dispatches`, {
      method: "POST",
      json: { ref: "main", inputs: { ...inputs, request_id: "req-2" } },
    });
    expect(plain.status).toBe(204);
    expect(await plain.text()).toBe("");
    const found = gh.runs().find((r) => r.display_title.endsWith(" req-2"));
    expect(gh.dispatches.map((d) => [d.workflow, d.returnRunDetails, d.runId])).toEqual([
      ["lab-reset.yml", true, run?.id],
      ["lab-reset.yml", false, found?.id],
    ]);
    expect(seen).toEqual([run?.id, found?.id]);
  });

  it("rejects invalid dispatches with 422 and creates no run", async () => {
    const dispatch = (json: unknown) => api(`${repoPath()}/actions/workflows/lab-reset.yml/dispatches`, { method: "POST", json });
    const tooMany = Object.fromEntries(Array.from({ length: 26 }, (_, i) => [`input${i}`, "x"]));
    for (const body of [{ inputs: {} }, { ref: "main", inputs: tooMany }, { ref: "main", inputs: { hosts: [] } }]) {
      const response = await dispatch(body);
      expect(response.status).toBe(422);
      expect(((await response.json()) as { message: string }).message).toMatch(/^Invalid request\./);
    }
    expect((await dispatch({ ref: "main", inputs: { count: 2, dry: true } })).status).toBe(204);
    expect(gh.dispatches.map((d) => d.runId === null)).toEqual([true, true, true, false]);
    expect(gh.runs()).toHaveLength(1);
  });

  it("in ghes mode answers 400 to return_run_details and creates no run", async () => {
    await start({ ghes: true });
    const response = await api(`${repoPath()}/actions/workflows/lab-reset.yml/dispatches`, {
      method: "POST",
      json: { ref: "main", inputs: { pair: "vm-25-26" }, return_run_details: true },
    });
    expect(response.status).toBe(400);
    expect(await response.json()).toMatchObject({ message: 'Invalid request.\n\n"return_run_details" is not a permitted key.' });
    expect(gh.runs()).toEqual([]);
    expect(gh.dispatches).toEqual([
      { workflow: "lab-reset.yml", ref: "main", inputs: { pair: "vm-25-26" }, returnRunDetails: true, runId: null },
    ]);
  });

  it("serves faults from fail() the given number of times, with their headers and raw bodies", async () => {
    const path = `${repoPath()}/actions/runners`;
    gh.fail({ method: "GET", path }, { status: 403, body: { message: "API rate limit exceeded" }, headers: { "retry-after": "1", "x-ratelimit-remaining": "0" } }, 2);
    gh.fail({ path: /\/actions\/runs$/ }, { status: 502, raw: "<html>Bad gateway</html>", headers: { "content-type": "text/html" } });
    for (let i = 0; i < 2; i++) {
      const response = await api(path);
      expect(response.status).toBe(403);
      expect(response.headers.get("retry-after")).toBe("1");
      expect(response.headers.get("x-ratelimit-remaining")).toBe("0");
      expect(await response.json()).toEqual({ message: "API rate limit exceeded" });
    }
    expect((await api(path)).status).toBe(200);
    const gateway = await api(`${repoPath()}/actions/runs`);
    expect([gateway.status, gateway.headers.get("content-type"), await gateway.text()]).toEqual([502, "text/html", "<html>Bad gateway</html>"]);
    expect(gh.requests.map((r) => r.status)).toEqual([403, 403, 200, 502]);
  });

  it("never answers a hung request, and close() still returns", async () => {
    gh.hang({ path: `${repoPath()}/actions/runners` });
    await expect(api(`${repoPath()}/actions/runners`, { signal: AbortSignal.timeout(200) })).rejects.toThrow(/aborted|timeout/i);
    expect(gh.requests.at(-1)?.status).toBe(0);
    expect((await api(`${repoPath()}/actions/runners`)).status).toBe(200);
    gh.hang({ path: /runners/ });
    const pending = api(`${repoPath()}/actions/runners`).catch((error: unknown) => error);
    await expect.poll(() => gh.requests.length).toBe(3);
    await gh.close();
    expect(await pending).toBeInstanceOf(Error);
    gh = await GitHubStandin.start();
  });

  it("serves the same routes under /api/v3 and keeps the prefix in Link URLs", async () => {
    addRunners(3);
    const response = await api(`/api/v3${repoPath()}/actions/runners?per_page=2`);
    expect(response.status).toBe(200);
    expect(response.headers.get("link")).toContain(`${gh.url}/api/v3${repoPath()}/actions/runners?per_page=2&page=2`);
    expect(gh.requests[0]).toMatchObject({ method: "GET", path: `${repoPath()}/actions/runners`, query: { per_page: "2" }, status: 200 });
  });

  it("answers 404 for other repositories and unknown routes, 400 for malformed JSON, and counts the rate limit", async () => {
    const other = await api("/repos/someone/else/actions/runners");
    expect(other.status).toBe(404);
    expect(await other.json()).toMatchObject({ message: "Not Found" });
    expect((await api(`/orgs/someone/actions/runners`)).status).toBe(404);
    expect((await api(`${repoPath()}/pulls`)).status).toBe(404);
    const malformed = await api(`${repoPath()}/actions/workflows/lab-reset.yml/dispatches`, { method: "POST", body: "{ref:" });
    expect(malformed.status).toBe(400);
    expect(await malformed.json()).toMatchObject({ message: "Problems parsing JSON" });
    expect(malformed.headers.get("content-type")).toBe("application/json; charset=utf-8");
    expect(malformed.headers.get("x-ratelimit-remaining")).toBe("4996");
    expect(malformed.headers.get("x-ratelimit-used")).toBe("4");
    expect(Number(malformed.headers.get("x-ratelimit-reset"))).toBeGreaterThan(Date.now() / 1000 + 3500);
    expect(malformed.headers.get("x-github-request-id")).toBeTruthy();
  });

  it("works with @octokit/rest: paginate the runner list and dispatch a workflow", async () => {
    addRunners(250);
    for (const baseUrl of [gh.url, `${gh.url}/api/v3`]) {
      const octokit = new Octokit({ auth: gh.token, baseUrl });
      const runners = await octokit.paginate(octokit.rest.actions.listSelfHostedRunnersForRepo, {
        owner: gh.owner,
        repo: gh.repo,
        per_page: 100,
      });
      expect(runners.map((r) => r.name)).toEqual(Array.from({ length: 250 }, (_, i) => `VM-${i + 1}`));
      const response = await octokit.rest.actions.createWorkflowDispatch({
        owner: gh.owner,
        repo: gh.repo,
        workflow_id: "lab-reset.yml",
        ref: "main",
        inputs: { pair: "vm-25-26", request_id: baseUrl, hosts },
      });
      expect(response.status).toBe(204);
    }
    expect(gh.requests.filter((r) => r.path.endsWith("/runners")).map((r) => r.query.page)).toEqual([undefined, "2", "3", undefined, "2", "3"]);
    expect(gh.runs().map((r) => r.display_title)).toEqual([`Lab reset vm-25-26 ${gh.url}/api/v3`, `Lab reset vm-25-26 ${gh.url}`]);
  });
});

describe("GitHubStandin: a front for the GitHub model", () => {
  it("serves a model it is given, whose state, hooks and request log are the stand-in's own", async () => {
    const model = new GitHubModel({ owner: "contoso", repo: "lab" });
    model.addRunner({ name: "VM-1", labels: ["lab"] });
    await start({ model });
    expect(gh.model).toBe(model);
    expect([gh.owner, gh.repo]).toEqual(["contoso", "lab"]);
    const runners = (await (await api("/repos/contoso/lab/actions/runners")).json()) as { runners: Runner[] };
    expect(runners.runners.map((r) => r.name)).toEqual(["VM-1"]);
    // A fault set on either is the other's, and every request is in the model's log.
    gh.injectFault = () => ({ status: 503 });
    expect(model.injectFault).toBe(gh.injectFault);
    expect((await api("/repos/contoso/lab/actions/runs")).status).toBe(503);
    expect(model.requests.map((r) => [r.path, r.status])).toEqual([
      ["/repos/contoso/lab/actions/runners", 200],
      ["/repos/contoso/lab/actions/runs", 503],
    ]);
    expect(gh.requests).toBe(model.requests);
  });
});

describe("GitHubStandin: a runner's labels", () => {
  type LabelAnswer = { total_count: number; labels: { id: number; name: string; type: string }[] };
  const labelsPath = (id: number | string, scope: "repo" | "org" = "repo") =>
    `${scope === "repo" ? repoPath() : `/orgs/${gh.owner}`}/actions/runners/${id}/labels`;
  const names = async (response: Response) => ((await response.json()) as LabelAnswer).labels.map((l) => l.name);

  it("lists, adds and removes custom labels like GitHub, case-insensitively, keeping the read-only ones", async () => {
    const vm = gh.addRunner({ name: "VM-11-12", labels: ["lab", "os-linux", "vm-11-12"], os: "Linux", arch: "ARM64" });
    const listed = await api(labelsPath(vm.id));
    expect(listed.status).toBe(200);
    expect(((await listed.json()) as LabelAnswer)).toEqual({
      total_count: 6,
      labels: [
        { id: 1, name: "self-hosted", type: "read-only" },
        { id: 2, name: "Linux", type: "read-only" },
        { id: 3, name: "ARM64", type: "read-only" },
        { id: 4, name: "lab", type: "custom" },
        { id: 5, name: "os-linux", type: "custom" },
        { id: 6, name: "vm-11-12", type: "custom" },
      ],
    });

    const removed = await api(`${labelsPath(vm.id)}/LAB`, { method: "DELETE" });
    expect(removed.status).toBe(200);
    expect(await names(removed)).toEqual(["self-hosted", "Linux", "ARM64", "os-linux", "vm-11-12"]);
    // The runner list shows the edit at once.
    expect(gh.getRunner("VM-11-12")?.labels.map((l) => l.name)).not.toContain("lab");
    expect((await api(`${labelsPath(vm.id)}/lab`, { method: "DELETE" })).status).toBe(404);

    const added = await api(labelsPath(vm.id), { method: "POST", json: { labels: ["lab", "Os-Linux"] } });
    expect(added.status).toBe(200);
    const body = (await added.json()) as LabelAnswer;
    expect(body.total_count).toBe(6);
    expect(body.labels.find((l) => l.name === "lab")).toEqual({ id: 4, name: "lab", type: "custom" });

    expect(gh.labelCalls.map((c) => [c.operation, c.scope, c.runnerName, c.labels, c.status])).toEqual([
      ["list", "repo", "VM-11-12", [], 200],
      ["remove", "repo", "VM-11-12", ["LAB"], 200],
      ["remove", "repo", "VM-11-12", ["lab"], 404],
      ["add", "repo", "VM-11-12", ["lab", "Os-Linux"], 200],
    ]);
  });

  it("answers 404 for an unknown runner and 422 for read-only labels or a bad body", async () => {
    const vm = gh.addRunner({ name: "VM-25-26", labels: ["lab"] });
    expect((await api(labelsPath(999))).status).toBe(404);
    expect((await api(labelsPath(999), { method: "POST", json: { labels: ["lab"] } })).status).toBe(404);
    for (const readOnly of ["self-hosted", "Windows", "x64"]) {
      const removal = await api(`${labelsPath(vm.id)}/${readOnly}`, { method: "DELETE" });
      expect(removal.status).toBe(422);
      expect(await removal.json()).toMatchObject({ message: "Validation Failed", errors: [expect.stringContaining(readOnly)] });
      expect((await api(labelsPath(vm.id), { method: "POST", json: { labels: [readOnly] } })).status).toBe(422);
    }
    for (const json of [{}, { labels: "lab" }, { labels: [] }, { labels: [7] }]) {
      const response = await api(labelsPath(vm.id), { method: "POST", json });
      expect(response.status).toBe(422);
      expect(((await response.json()) as { message: string }).message).toMatch(/^Invalid request\./);
    }
    expect(gh.getRunner("VM-25-26")?.labels.map((l) => l.name)).toEqual(["self-hosted", "Windows", "X64", "lab"]);
  });

  it("serves set (PUT) and remove-all too, also for org runners, and records them so a test can forbid them", async () => {
    const vm = gh.addRunner({ name: "VM-42-43", labels: ["lab", "vm-42-43"] });
    const octokit = new Octokit({ auth: gh.token, baseUrl: gh.url });
    const set = await octokit.rest.actions.setCustomLabelsForSelfHostedRunnerForRepo({ owner: gh.owner, repo: gh.repo, runner_id: vm.id, labels: ["vm-42-43", "held"] });
    expect(set.data.labels.map((l) => [l.name, l.type])).toEqual([
      ["self-hosted", "read-only"],
      ["Windows", "read-only"],
      ["X64", "read-only"],
      ["vm-42-43", "custom"],
      ["held", "custom"],
    ]);
    const cleared = await octokit.rest.actions.removeAllCustomLabelsFromSelfHostedRunnerForOrg({ org: gh.owner, runner_id: vm.id });
    expect(cleared.data).toMatchObject({ total_count: 3 });
    const org = await octokit.rest.actions.addCustomLabelsToSelfHostedRunnerForOrg({ org: gh.owner, runner_id: vm.id, labels: ["lab"] });
    expect(org.data.labels.map((l) => l.name)).toEqual(["self-hosted", "Windows", "X64", "lab"]);
    await octokit.rest.actions.removeCustomLabelFromSelfHostedRunnerForOrg({ org: gh.owner, runner_id: vm.id, name: "lab" });
    expect(await names(await api(labelsPath(vm.id, "org")))).toEqual(["self-hosted", "Windows", "X64"]);
    expect((await api(labelsPath(vm.id).replace(gh.owner, "someone"), { method: "PUT", json: { labels: [] } })).status).toBe(404);
    expect(gh.labelCalls.map((c) => `${c.scope} ${c.operation}`)).toEqual(["repo set", "org remove-all", "org add", "org remove", "org list"]);
    expect(gh.labelCalls.filter((c) => c.operation === "set" || c.operation === "remove-all")).toHaveLength(2);
  });

  it("answers 403 'Resource not accessible by integration' to label calls its rule denies, and changes nothing", async () => {
    const vm = gh.addRunner({ name: "VM-05-10", labels: ["lab"] });
    gh.denyLabelCall = (call) => call.operation !== "list";
    const denied = await api(`${labelsPath(vm.id)}/lab`, { method: "DELETE" });
    expect(denied.status).toBe(403);
    expect(await denied.json()).toMatchObject({ message: "Resource not accessible by integration", status: "403" });
    expect((await api(labelsPath(vm.id), { method: "POST", json: { labels: ["x"] } })).status).toBe(403);
    expect(await names(await api(labelsPath(vm.id)))).toEqual(["self-hosted", "Windows", "X64", "lab"]);
    expect(gh.labelCalls.map((c) => c.status)).toEqual([403, 403, 200]);
  });

  it("lets a label edit reach job assignment only labelEffectDelaySeconds later", async () => {
    let now = new Date("2026-11-27T12:00:00Z");
    await start({ clock: () => now, labelEffectDelaySeconds: 30 });
    const vm = gh.addRunner({ name: "VM-25-26", labels: ["lab", "vm-25-26"] });
    const edits: [string, string][] = [];
    gh.onLabelsEdited = (runner, at) => edits.push([runner, at.toISOString()]);
    expect((await api(`${labelsPath(vm.id)}/lab`, { method: "DELETE" })).status).toBe(200);
    expect(edits).toEqual([["VM-25-26", "2026-11-27T12:00:30.000Z"]]);
    expect(gh.assignableLabels("VM-25-26")).toContain("lab");
    now = new Date("2026-11-27T12:00:29Z");
    expect(gh.assignableLabels("VM-25-26")).toContain("lab");
    now = new Date("2026-11-27T12:00:30Z");
    expect(gh.assignableLabels("VM-25-26")).toEqual(["self-hosted", "Windows", "X64", "vm-25-26"]);
    // Adding a label the runner has already is no edit.
    await api(labelsPath(vm.id), { method: "POST", json: { labels: ["VM-25-26"] } });
    expect(edits).toHaveLength(1);
    expect(gh.assignableLabels("nobody")).toBeUndefined();
  });
});

describe("GitHubStandin: workflow_job payloads", () => {
  const definitions = createRequire(import.meta.url)("@octokit/webhooks-examples") as WebhookDefinition[];
  const examples = definitions.find((d): d is WebhookDefinition<"workflow_job"> => d.name === "workflow_job")!.examples;
  const example = (action: string) => examples.find((e) => e.action === action && "run_attempt" in e.workflow_job)!;

  it("has the fields of GitHub's recorded deliveries, the runner once a runner has the job", () => {
    gh.addRunner({ name: "VM-25-26", labels: ["lab", "vm-25-26"] });
    const run = gh.addRun({ status: "queued", jobs: [{ name: "perf", status: "queued", labels: ["self-hosted", "lab", "vm-25-26"], runnerName: null }] });
    const jobId = Number(gh.jobsOf(Number(run.id))[0]?.id);
    const queued = gh.workflowJobEvent(jobId, "queued");
    gh.setJob(jobId, { status: "in_progress", runnerName: "VM-25-26" });
    const started = gh.workflowJobEvent(jobId, "in_progress");
    gh.setJob(jobId, { status: "completed", conclusion: "failure" });
    const completed = gh.workflowJobEvent(jobId, "completed");
    for (const event of [queued, started, completed]) {
      expect(Object.keys(event.workflow_job).sort()).toEqual(Object.keys(example(event.action).workflow_job).sort());
      expect(Object.keys(event).sort()).toEqual(["action", "installation", "repository", "sender", "workflow_job"]);
      // Only fields the schema leaves optional may be left out of the repository.
      const missing = Object.keys(example(event.action).repository).filter((key) => !(key in event.repository));
      expect(missing.filter((key) => !["is_template", "topics", "web_commit_signoff_required", "custom_properties"].includes(key))).toEqual([]);
      expect(event.repository.full_name).toBe("microsoft/netperf");
      expect(event.workflow_job).toMatchObject({ id: jobId, run_id: run.id, run_attempt: 1, labels: ["self-hosted", "lab", "vm-25-26"] });
    }
    expect(queued.workflow_job).toMatchObject({ status: "queued", runner_id: null, runner_name: null, runner_group_name: null, conclusion: null, completed_at: null });
    expect(started.workflow_job).toMatchObject({ status: "in_progress", runner_name: "VM-25-26", runner_group_name: "Default", conclusion: null });
    expect(completed.workflow_job).toMatchObject({ status: "completed", runner_name: "VM-25-26", conclusion: "failure", completed_at: expect.any(String) });
  });

  it("names GitHub-hosted runners in their own group", () => {
    const run = gh.addRun({ jobs: [{ name: "report", labels: ["ubuntu-latest"], runnerName: hostedRunnerName(3) }] });
    expect(gh.jobsOf(Number(run.id))[0]).toMatchObject({ runner_id: 3, runner_name: "GitHub Actions 3", runner_group_name: "GitHub Actions" });
  });
});
