import { afterEach, describe, expect, it } from "vitest";
import * as handlers from "../shared/triggers/job-completed.js";
import { silentLogger } from "../shared/logger.js";
import { reconcile } from "../shared/reconcile/reconcile.js";
import { finishReset, hostRunnerName, perfRun, startTestLab, vmRunnerName, type TestLab } from "./support/lab.js";

let lab: TestLab;
afterEach(async () => lab?.close());

const dispatchedPairs = (l: TestLab) => l.github.dispatches.filter((d) => d.runId !== null).map((d) => d.inputs.pair);
const report = (runId: number, extra: Record<string, unknown> = {}) => JSON.stringify({ repository: "microsoft/netperf", runId, ...extra });
const stored = async (l: TestLab, id: string) => (await l.runtime.store.getPair(id))?.record;

describe("reconcile against the GitHub stand-in and Azurite", () => {
  it("the first timer run resets every idle pair of an unknown lab, with the inputs the reset workflow expects", async () => {
    lab = await startTestLab();
    const result = await handlers.scheduledReset(lab.runtime, silentLogger);
    expect(result.pairs.map((p) => p.decision)).toEqual(Array(4).fill("reset-dispatched"));
    expect(dispatchedPairs(lab).sort()).toEqual(["vm-05-10", "vm-11-12", "vm-25-26", "vm-42-43"]);
    const dispatch = lab.github.dispatches.find((d) => d.inputs.pair === "vm-25-26")!;
    expect(dispatch).toMatchObject({ workflow: "lab-reset.yml", ref: "main", returnRunDetails: true });
    expect(JSON.parse(String(dispatch.inputs.hosts))).toEqual([
      { runnerLabel: "parent=rr1-netperf-26\\localadminuser", vmName: "netperf-windows-2022-client" },
      { runnerLabel: "child=rr1-netperf-25\\localadminuser", vmName: "netperf-windows-2022-server" },
    ]);
    const record = await stored(lab, "vm-25-26");
    expect(record).toMatchObject({ state: "resetting", resetRunId: dispatch.runId, resetRequestId: dispatch.inputs.request_id, attempts: 1 });
    const events = await lab.runtime.store.listEvents("vm-25-26");
    expect(events.map((e) => `${e.kind}:${e.to}:${e.trigger}`)).toEqual(["dispatch:resetting:timer", "state:resetting:timer"]);
  });

  it("running the timer twice changes nothing the second time", async () => {
    lab = await startTestLab();
    await handlers.scheduledReset(lab.runtime, silentLogger);
    const before = await lab.runtime.store.listPairs();
    const second = await handlers.scheduledReset(lab.runtime, silentLogger);
    expect(second.pairs.map((p) => p.decision)).toEqual(Array(4).fill("already-resetting"));
    expect(lab.github.dispatches).toHaveLength(4);
    expect(await lab.runtime.store.listPairs()).toEqual(before);
  });

  it("follows a reset run to clean, then a job-completed call resets only the pair the run used", async () => {
    lab = await startTestLab();
    await handlers.scheduledReset(lab.runtime, silentLogger);
    for (const d of lab.github.dispatches) finishReset(lab, d.runId!);
    lab.advance(10);
    const after = await handlers.scheduledReset(lab.runtime, silentLogger);
    expect(after.pairs.map((p) => [p.state, p.decision])).toEqual(Array(4).fill(["clean", "skipped-fresh"]));

    const perf = perfRun(lab, [vmRunnerName("vm-42-43")], "completed");
    const response = await handlers.jobCompleted(lab.runtime, report(perf.id), silentLogger);
    expect(response.status).toBe(202);
    expect(response.body).toMatchObject({ runId: perf.id, pairs: [{ id: "vm-42-43", state: "resetting", decision: "reset-dispatched" }], alsoReconciled: [] });
    expect(dispatchedPairs(lab).filter((p) => p === "vm-42-43")).toHaveLength(2);
    expect(lab.github.dispatches).toHaveLength(5);
    expect(await stored(lab, "vm-42-43")).toMatchObject({ lastJobRunId: perf.id, jobSinceReset: true });
  });

  it("does not reset a pair whose VM runs a job while GitHub's busy flag still reads false", async () => {
    lab = await startTestLab();
    perfRun(lab, [vmRunnerName("vm-25-26")]); // job in progress; the runner's busy flag lags
    const result = await handlers.scheduledReset(lab.runtime, silentLogger);
    expect(result.pairs.find((p) => p.id === "vm-25-26")).toMatchObject({ state: "busy", decision: "deferred-busy" });
    expect(dispatchedPairs(lab)).not.toContain("vm-25-26");
  });

  it("does not reset a pair whose VM runner reports busy", async () => {
    lab = await startTestLab();
    lab.github.setRunner(vmRunnerName("vm-05-10"), { busy: true });
    const result = await handlers.scheduledReset(lab.runtime, silentLogger);
    expect(result.pairs.find((p) => p.id === "vm-05-10")).toMatchObject({ decision: "deferred-busy" });
    expect(dispatchedPairs(lab)).not.toContain("vm-05-10");
  });

  it("a job on a GitHub-hosted or unrelated runner in the same repository affects no pair", async () => {
    lab = await startTestLab();
    perfRun(lab, ["GitHub Actions 12", "WIN-B9SEU47NHOT"]);
    const result = await handlers.scheduledReset(lab.runtime, silentLogger);
    expect(result.pairs.map((p) => p.decision)).toEqual(Array(4).fill("reset-dispatched"));
  });

  it("records a pair offline and does not reset it when a host runner is offline", async () => {
    lab = await startTestLab();
    lab.github.setRunner(hostRunnerName("child=rr1-netperf-11\\localadminuser"), { status: "offline" });
    const result = await handlers.scheduledReset(lab.runtime, silentLogger);
    expect(result.pairs.find((p) => p.id === "vm-11-12")).toMatchObject({ state: "offline", decision: "skipped-offline" });
    expect(dispatchedPairs(lab)).not.toContain("vm-11-12");
    expect((await stored(lab, "vm-11-12"))?.reason).toMatch(/host runner RR1-NETPERF-11 is offline/);
  });

  it("a pair whose reset finished before a job ran on it is reset again in the same pass (follow, then dispatch)", async () => {
    lab = await startTestLab();
    await handlers.scheduledReset(lab.runtime, silentLogger);
    const first = lab.github.dispatches.find((d) => d.inputs.pair === "vm-42-43")!;
    lab.advance(8);
    finishReset(lab, first.runId!);
    lab.advance(5);
    const perf = perfRun(lab, [vmRunnerName("vm-42-43")], "completed");
    const response = await handlers.jobCompleted(lab.runtime, report(perf.id), silentLogger);
    expect(response.body).toMatchObject({ pairs: [{ id: "vm-42-43", state: "resetting", decision: "reset-dispatched" }] });
    expect(dispatchedPairs(lab).filter((p) => p === "vm-42-43")).toHaveLength(2);
    expect((await stored(lab, "vm-42-43"))?.resetRunId).not.toBe(first.runId);
  });

  it("a busy pair is reset by the first later trigger that finds it idle", async () => {
    lab = await startTestLab();
    const perf = perfRun(lab, [vmRunnerName("vm-42-43")]);
    await handlers.scheduledReset(lab.runtime, silentLogger);
    expect(await stored(lab, "vm-42-43")).toMatchObject({ state: "busy" });
    lab.github.setRun(perf.id, { status: "completed", conclusion: "success" });
    lab.advance(5);
    const result = await handlers.scheduledReset(lab.runtime, silentLogger);
    expect(result.pairs.find((p) => p.id === "vm-42-43")).toMatchObject({ decision: "reset-dispatched" });
  });

  it("30 concurrent job-completed calls for one pair dispatch exactly one reset", async () => {
    lab = await startTestLab();
    await handlers.scheduledReset(lab.runtime, silentLogger);
    for (const d of lab.github.dispatches) finishReset(lab, d.runId!);
    lab.advance(10);
    await handlers.scheduledReset(lab.runtime, silentLogger);
    const perf = perfRun(lab, [vmRunnerName("vm-25-26")], "completed");
    const before = lab.github.dispatches.length;
    const responses = await Promise.all(Array.from({ length: 30 }, () => handlers.jobCompleted(lab.runtime, report(perf.id), silentLogger)));
    expect(responses.map((r) => r.status)).toEqual(Array(30).fill(202));
    expect(lab.github.dispatches.length - before).toBe(1);
    const decisions = responses.map((r) => (r.body as { pairs: { decision: string }[] }).pairs[0]!.decision);
    expect(decisions.filter((d) => d === "reset-dispatched")).toHaveLength(1);
    expect(new Set(decisions.filter((d) => d !== "reset-dispatched"))).toEqual(new Set(["already-resetting"]));
  });

  it("a GitHub 500 during a reconcile dispatches nothing and answers 503", async () => {
    lab = await startTestLab();
    const perf = perfRun(lab, [vmRunnerName("vm-25-26")], "completed");
    lab.github.fail({ path: "/repos/microsoft/netperf/actions/runners" }, { status: 500 }, 10);
    const response = await handlers.jobCompleted(lab.runtime, report(perf.id), silentLogger);
    expect(response.status).toBe(503);
    expect(JSON.stringify(response.body)).toMatch(/runners failed with 500/);
    expect(lab.github.dispatches).toHaveLength(0);
    await expect(handlers.scheduledReset(lab.runtime, silentLogger)).rejects.toThrow(/pairs left alone/);
    expect(lab.github.dispatches).toHaveLength(0);
    expect(await stored(lab, "vm-25-26")).toMatchObject({ state: "dirty", lastError: expect.stringMatching(/500/) });
  });

  it("fails closed when the jobs of an in-progress run cannot be read", async () => {
    lab = await startTestLab();
    const perf = perfRun(lab, [vmRunnerName("vm-42-43")]);
    lab.github.fail({ path: `/repos/microsoft/netperf/actions/runs/${perf.id}/jobs` }, { status: 502 }, 10);
    await expect(handlers.scheduledReset(lab.runtime, silentLogger)).rejects.toThrow(/502/);
    expect(lab.github.dispatches).toHaveLength(0);
  });

  it("retries a read that failed once (Octokit's retry plugin) and goes on", async () => {
    lab = await startTestLab();
    lab.github.fail({ path: "/repos/microsoft/netperf/actions/runners" }, { status: 502 }, 1);
    const result = await handlers.scheduledReset(lab.runtime, silentLogger);
    expect(result.ok).toBe(true);
    expect(lab.github.dispatches).toHaveLength(4);
  });

  it("looks again after claiming: a job that started after the first look stops the dispatch", async () => {
    lab = await startTestLab();
    let looks = 0;
    // The second listing of runners happens after the claims; start a job on vm-42-43 just before it.
    const originalFetch = globalThis.fetch;
    globalThis.fetch = async (input, init) => {
      if ((input instanceof Request ? input.url : input.toString()).includes("/actions/runners") && ++looks === 2) lab.github.setRunner(vmRunnerName("vm-42-43"), { busy: true });
      return originalFetch(input, init);
    };
    try {
      const result = await handlers.scheduledReset(lab.runtime, silentLogger);
      expect(result.pairs.find((p) => p.id === "vm-42-43")).toMatchObject({ state: "busy", decision: "deferred-busy" });
    } finally {
      globalThis.fetch = originalFetch;
    }
    expect(dispatchedPairs(lab)).not.toContain("vm-42-43");
    expect(dispatchedPairs(lab)).toHaveLength(3);
    expect((await stored(lab, "vm-42-43"))?.reason).toMatch(/claim released before dispatch/);
  });

  it("marks a pair failed when its reset run fails, and retries it at the first trigger after the backoff", async () => {
    lab = await startTestLab();
    await handlers.scheduledReset(lab.runtime, silentLogger);
    const first = lab.github.dispatches.find((d) => d.inputs.pair === "vm-05-10")!;
    finishReset(lab, first.runId!, "failure");
    lab.advance(10);
    const result = await handlers.scheduledReset(lab.runtime, silentLogger);
    expect(result.pairs.find((p) => p.id === "vm-05-10")).toMatchObject({ state: "failed", decision: "reset-failed" });
    expect((await stored(lab, "vm-05-10"))?.lastError).toMatch(/ended with conclusion "failure"/);
    lab.advance(10);
    const early = await handlers.scheduledReset(lab.runtime, silentLogger);
    expect(early.pairs.find((p) => p.id === "vm-05-10")).toMatchObject({ state: "failed", decision: "retry-later" });
    lab.advance(6);
    const retry = await handlers.scheduledReset(lab.runtime, silentLogger);
    expect(retry.pairs.find((p) => p.id === "vm-05-10")).toMatchObject({ state: "resetting", decision: "reset-dispatched" });
    expect(await stored(lab, "vm-05-10")).toMatchObject({ attempts: 2 });
  });

  it("marks a reset that never completes failed after resetTimeoutMinutes, and cancels its run", async () => {
    lab = await startTestLab();
    await handlers.scheduledReset(lab.runtime, silentLogger);
    lab.advance(31);
    const result = await handlers.scheduledReset(lab.runtime, silentLogger);
    expect(result.pairs.map((p) => p.decision)).toEqual(Array(4).fill("reset-failed"));
    expect((await stored(lab, "vm-25-26"))?.lastError).toMatch(/did not complete within 30 minutes/);
    // A run left queued could restore the VM hours later without any check.
    const cancels = lab.github.requests.filter((r) => r.method === "POST" && r.path.endsWith("/cancel"));
    expect(cancels).toHaveLength(4);
    for (const d of lab.github.dispatches) expect(lab.github.getRun(d.runId!)).toMatchObject({ status: "completed", conclusion: "cancelled" });
  });

  it("sees a reset done when its host jobs are, while the run's own report job still runs", async () => {
    lab = await startTestLab();
    await handlers.scheduledReset(lab.runtime, silentLogger);
    const reset = lab.github.dispatches.find((d) => d.inputs.pair === "vm-42-43")!;
    lab.github.setRun(reset.runId!, { status: "in_progress" });
    lab.advance(7);
    for (const job of lab.github.jobsOf(reset.runId!)) lab.github.setJob(Number(job.id), { status: "completed", conclusion: "success" });
    // The reset workflow's last job calls job-completed for its own run, which is still in progress.
    const response = await handlers.jobCompleted(lab.runtime, report(reset.runId!), silentLogger);
    expect(response.status).toBe(202);
    expect(await stored(lab, "vm-42-43")).toMatchObject({ state: "clean", resetRunId: reset.runId });
  });

  it("does not dispatch when the claimed record was written meanwhile (a webhook's job start)", async () => {
    lab = await startTestLab();
    await cleanLab(lab);
    lab.advance(61);
    let looks = 0;
    const originalFetch = globalThis.fetch;
    globalThis.fetch = async (input, init) => {
      const url = input instanceof Request ? input.url : input.toString();
      // The second look happens after the claims: a webhook delivery lands on vm-25-26 just then.
      if (url.includes("/actions/runners") && ++looks === 2) {
        const claimed = (await lab.runtime.store.getPair("vm-25-26"))!;
        await lab.runtime.store.replacePair({ ...claimed.record, busyUntil: new Date(lab.now.value.getTime() + 15 * 60_000).toISOString(), busyRunId: 99 }, claimed.etag);
      }
      return originalFetch(input, init);
    };
    try {
      await handlers.scheduledReset(lab.runtime, silentLogger);
    } finally {
      globalThis.fetch = originalFetch;
    }
    const periodic = lab.github.dispatches.slice(4).map((d) => d.inputs.pair);
    expect(periodic).not.toContain("vm-25-26");
    expect(periodic).toHaveLength(3);
    expect(await stored(lab, "vm-25-26")).toMatchObject({ state: "clean", busyRunId: 99, attempts: 0, reason: expect.stringMatching(/changed while it was claimed/) });
  });

  it("on GitHub Enterprise Server (no return_run_details) dispatches plainly and finds the run by request id", async () => {
    lab = await startTestLab({ ghes: true });
    await handlers.scheduledReset(lab.runtime, silentLogger);
    const accepted = lab.github.dispatches.filter((d) => d.runId !== null);
    expect(accepted).toHaveLength(4);
    expect(accepted.every((d) => !d.returnRunDetails)).toBe(true);
    // Only the first dispatch asks for run details; the client remembers the refusal.
    expect(lab.github.dispatches.filter((d) => d.returnRunDetails)).toHaveLength(1);
    expect(await stored(lab, "vm-25-26")).toMatchObject({ state: "resetting", resetRunId: null });
    lab.advance(2);
    await handlers.scheduledReset(lab.runtime, silentLogger);
    const runId = accepted.find((d) => d.inputs.pair === "vm-25-26")!.runId;
    expect(await stored(lab, "vm-25-26")).toMatchObject({ state: "resetting", resetRunId: runId });
    finishReset(lab, runId!);
    await handlers.scheduledReset(lab.runtime, silentLogger);
    expect(await stored(lab, "vm-25-26")).toMatchObject({ state: "clean" });
  });

  it("records a dispatch GitHub refuses (422) as failed with GitHub's message", async () => {
    lab = await startTestLab();
    lab.github.fail({ method: "POST", path: /\/dispatches$/ }, { status: 422, body: { message: "Workflow does not have 'workflow_dispatch' trigger" } }, 4);
    const result = await reconcile({ ...lab.runtime }, "timer");
    expect(result.ok).toBe(false);
    expect(await stored(lab, "vm-25-26")).toMatchObject({ state: "failed", lastError: expect.stringMatching(/workflow_dispatch' trigger/) });
  });

  it("keeps a claim whose dispatch got no clear answer (500) and never dispatches it twice", async () => {
    lab = await startTestLab();
    lab.github.fail({ method: "POST", path: /\/dispatches$/ }, { status: 500 }, 4);
    await reconcile({ ...lab.runtime }, "timer");
    expect(lab.github.requests.filter((r) => r.method === "POST")).toHaveLength(4);
    expect(await stored(lab, "vm-25-26")).toMatchObject({ state: "resetting", lastError: expect.stringMatching(/dispatch answer unknown/) });
    await reconcile({ ...lab.runtime }, "timer");
    expect(lab.github.requests.filter((r) => r.method === "POST")).toHaveLength(4);
  });

  it("uses the org runner list when runnerScope is org", async () => {
    const { seedConfig } = await import("./support/lab.js");
    lab = await startTestLab({ config: { ...seedConfig, github: { ...seedConfig.github, runnerScope: "org" } } });
    await handlers.scheduledReset(lab.runtime, silentLogger);
    expect(lab.github.requests.some((r) => r.path === "/orgs/microsoft/actions/runners")).toBe(true);
    expect(lab.github.requests.some((r) => r.path === "/repos/microsoft/netperf/actions/runners")).toBe(false);
  });
});

describe("job-completed input", () => {
  it.each([
    ["not JSON", "{oops", 400, /not JSON/],
    ["a missing runId", JSON.stringify({ repository: "microsoft/netperf" }), 400, /\$\.runId/],
    ["a runId of the wrong type", JSON.stringify({ repository: "microsoft/netperf", runId: true }), 400, /\$\.runId/],
    ["an extra field", JSON.stringify({ repository: "microsoft/netperf", runId: 1, pair: "vm-25-26" }), 400, /pair/],
    ["a malformed repository", JSON.stringify({ repository: "netperf", runId: 1 }), 400, /\$\.repository/],
    ["another repository", JSON.stringify({ repository: "someone/else", runId: 1 }), 403, /serves microsoft\/netperf/],
    ["a run GitHub does not know", JSON.stringify({ repository: "microsoft/netperf", runId: 424242 }), 404, /no run 424242/],
    ["a body over 64 KiB", JSON.stringify({ repository: "microsoft/netperf", runId: 1, runnerName: "x".repeat(70_000) }), 413, /larger than 65536/],
  ])("answers %s with its 4xx and writes nothing", async (_, body, status, message) => {
    lab = await startTestLab();
    const response = await handlers.jobCompleted(lab.runtime, body, silentLogger);
    expect(response.status).toBe(status);
    expect(JSON.stringify(response.body)).toMatch(message);
    expect(await lab.runtime.store.listPairs()).toEqual([]);
    expect(lab.github.dispatches).toHaveLength(0);
  });

  it("accepts quoted numbers and a runnerName, and records the job on that runner's pair", async () => {
    lab = await startTestLab();
    const perf = { id: Number(lab.github.addRun({ status: "in_progress", jobs: [{ runnerName: "GitHub Actions 3", status: "in_progress" }] }).id) };
    const response = await handlers.jobCompleted(lab.runtime, JSON.stringify({ repository: "Microsoft/NetPerf", runId: String(perf.id), runAttempt: "1", runnerName: "VM-11-12" }), silentLogger);
    expect(response.status).toBe(202);
    expect(response.body).toMatchObject({ pairs: [{ id: "vm-11-12", decision: "reset-dispatched" }] });
    expect(await stored(lab, "vm-11-12")).toMatchObject({ lastJobRunId: perf.id });
  });
});

/** A lab whose four pairs were all reset a while ago and are clean. */
async function cleanLab(l: TestLab) {
  await handlers.scheduledReset(l.runtime, silentLogger);
  for (const d of l.github.dispatches) if (d.runId !== null) finishReset(l, d.runId);
  l.advance(10);
  await handlers.scheduledReset(l.runtime, silentLogger);
}

describe("the timer as backstop for lost job-completed calls (I3)", () => {
  it("resets a pair whose perf run finished without calling job-completed", async () => {
    lab = await startTestLab();
    await cleanLab(lab);
    lab.advance(5);
    const perf = perfRun(lab, [vmRunnerName("vm-42-43")], "completed"); // its job-completed call is lost
    lab.advance(5);
    const result = await handlers.scheduledReset(lab.runtime, silentLogger);
    expect(result.pairs.map((p) => [p.id, p.decision])).toEqual([
      ["vm-25-26", "skipped-fresh"],
      ["vm-05-10", "skipped-fresh"],
      ["vm-42-43", "reset-dispatched"],
      ["vm-11-12", "skipped-fresh"],
    ]);
    expect(await stored(lab, "vm-42-43")).toMatchObject({ lastJobRunId: perf.id, jobSinceReset: true });
  });

  it("does not reset again for jobs that ended before the pair's last reset", async () => {
    lab = await startTestLab();
    perfRun(lab, [vmRunnerName("vm-42-43")], "completed");
    lab.advance(1);
    await cleanLab(lab);
    lab.advance(5);
    const result = await handlers.scheduledReset(lab.runtime, silentLogger);
    expect(result.pairs.map((p) => p.decision)).toEqual(Array(4).fill("skipped-fresh"));
  });
});

describe("GitHub request budget", () => {
  it("one reconcile of the seed lab stays within its budget, and unchanged lists are answered 304", async () => {
    lab = await startTestLab();
    await cleanLab(lab);
    lab.advance(61); // no longer fresh: every idle pair gets its periodic reset
    perfRun(lab, [vmRunnerName("vm-25-26")]); // one in-progress run, its VM busy
    perfRun(lab, [vmRunnerName("vm-11-12")], "completed"); // one finished run not seen before
    lab.github.clearRequests();
    const result = await handlers.scheduledReset(lab.runtime, silentLogger);
    const runnerPages = Math.ceil(10 / 100);
    const inProgressRuns = 1;
    const budget =
      runnerPages + 1 + inProgressRuns + // first look: runners, in-progress runs, their jobs
      1 + 1 + // completed runs since the oldest reset, and the jobs of the one not seen before
      0 + // reset runs followed: none in flight
      result.dispatches + // one dispatch per reset
      (result.dispatches > 0 ? runnerPages + 1 + inProgressRuns : 0); // the second look after claiming
    expect(result.dispatches).toBe(3);
    expect(lab.github.requests.length).toBeLessThanOrEqual(budget);

    // Nothing changed on GitHub: the same lists are asked for again with their ETags.
    lab.github.clearRequests();
    await handlers.scheduledReset(lab.runtime, silentLogger);
    // Only the three new reset runs (and their jobs) are read for the first time.
    const resetRuns = new Set(lab.github.dispatches.slice(-3).map((d) => d.runId));
    const gets = lab.github.requests.filter((r) => r.method === "GET" && !resetRuns.has(Number(/\/actions\/runs\/(\d+)/.exec(r.path)?.[1])));
    expect(gets.length).toBeGreaterThan(0);
    expect(gets.every((r) => r.status === 304)).toBe(true);
    expect(lab.runtime.github.stats().notModified).toBeGreaterThanOrEqual(gets.length);
  });
});

