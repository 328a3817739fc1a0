import { afterEach, describe, expect, it } from "vitest";
import { newPairRecord } from "../shared/lab/pair-record.js";
import { silentLogger, type Logger } from "../shared/logger.js";
import { reconcile } from "../shared/reconcile/reconcile.js";
import { ReconcileWorker } from "../shared/reconcile/worker.js";
import { hostedRunnerName, labResetJobs } from "../shared/sim/github-standin.js";
import type { JobFact } from "../shared/storage/facts.js";
import { jobCompleted } from "../shared/triggers/job-completed.js";
import { scheduledReset } from "../shared/triggers/timer.js";
import { beforeRequest, finishReset, hostRunnerName, perfRun, startTestLab, vmRunnerName, type TestLab } from "./support/lab.js";

let lab: TestLab;
afterEach(async () => {
  await lab?.close();
});

const dispatchedPairs = (l: TestLab) => l.github.dispatches.filter((d) => d.runId !== null).map((d) => d.inputs.pair);
const report = (runId: number, extra: Record<string, unknown> = {}) => JSON.stringify({ repository: "microsoft/netperf", runId, ...extra });
const stored = async (l: TestLab, id: string) => (await l.runtime.store.getPair(id))?.record;

/** A fact as a trigger records it (the webhook's `in_progress` is a start), stamped with the test's clock. */
const jobFact = (l: TestLab, fact: Pick<JobFact, "phase" | "jobId" | "runId" | "runnerName"> & Partial<JobFact>): JobFact => ({
  runnerId: null,
  at: l.now.value.toISOString(),
  source: "webhook",
  recordedAt: l.now.value.toISOString(),
  ...fact,
});

/** Error lines, where the worker's alert of a failed reconcile lands. */
function errorLog() {
  const lines: string[] = [];
  const logger: Logger = { info: () => {}, warn: () => {}, error: (m: string) => lines.push(m) };
  return { logger, text: () => lines.join("\n") };
}

/** A timer reconcile lists runners twice: the first look, then the second look after the claims. */
const beforeSecondLook = (before: () => void | Promise<void>) => beforeRequest(lab, { path: /\/actions\/runners/ }, 2, before);

/** A lab whose four pairs were all reset a while ago and are clean. */
async function cleanLab(l: TestLab) {
  await l.timer();
  for (const d of l.github.dispatches) if (d.runId !== null) finishReset(l, d.runId);
  l.advance(10);
  await l.timer();
}

describe("reconcile against the GitHub stand-in and Azurite", () => {
  it("the first timer run resets every idle pair of an unknown lab, with the inputs the reset workflow expects", async () => {
    lab = await startTestLab();
    const result = await lab.timer();
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

  it("the timer only queues: nothing is read or dispatched until the queue is served", async () => {
    lab = await startTestLab();
    await scheduledReset(lab.runtime, silentLogger);
    expect(lab.queue.length).toBe(1);
    expect(lab.github.requests).toHaveLength(0);
    expect(await lab.runtime.store.listPairs()).toEqual([]);
    expect((await lab.settle())?.dispatches).toBe(4);
  });

  it("running the timer twice changes nothing the second time", async () => {
    lab = await startTestLab();
    await lab.timer();
    const before = await lab.runtime.store.listPairs();
    lab.advance(1);
    const second = await lab.timer();
    expect(second.pairs.map((p) => p.decision)).toEqual(Array(4).fill("already-resetting"));
    expect(lab.github.dispatches).toHaveLength(4);
    expect(await lab.runtime.store.listPairs()).toEqual(before);
  });

  it("follows a reset run to clean, then a job-completed call resets only the pair the run used", async () => {
    lab = await startTestLab();
    await lab.timer();
    for (const d of lab.github.dispatches) finishReset(lab, d.runId!);
    lab.advance(10);
    const after = await lab.timer();
    expect(after.pairs.map((p) => [p.state, p.decision])).toEqual(Array(4).fill(["clean", "skipped-fresh"]));

    lab.advance(1);
    const perf = perfRun(lab, [vmRunnerName("vm-42-43")], "completed");
    const { response, result } = await lab.jobCompleted(report(perf.id));
    expect(response).toEqual({ status: 202, body: { runId: perf.id, pairs: [{ id: "vm-42-43", state: "dirty", jobSinceReset: true }], reconcile: "queued" } });
    expect(result?.trigger).toBe("job-completed");
    expect(result?.pairs.map((p) => [p.id, p.state, p.decision])).toEqual([
      ["vm-25-26", "clean", "not-needed"],
      ["vm-05-10", "clean", "not-needed"],
      ["vm-42-43", "resetting", "reset-dispatched"],
      ["vm-11-12", "clean", "not-needed"],
    ]);
    expect(dispatchedPairs(lab).filter((p) => p === "vm-42-43")).toHaveLength(2);
    expect(lab.github.dispatches).toHaveLength(5);
    expect(await stored(lab, "vm-42-43")).toMatchObject({ lastJobRunId: perf.id, jobSinceReset: true });
  });

  it("does not reset a pair whose VM runs a job while GitHub's busy flag still reads false", async () => {
    lab = await startTestLab();
    perfRun(lab, [vmRunnerName("vm-25-26")]); // job in progress; the runner's busy flag lags
    const result = await lab.timer();
    expect(result.pairs.find((p) => p.id === "vm-25-26")).toMatchObject({ state: "busy", decision: "deferred-busy" });
    expect(dispatchedPairs(lab)).not.toContain("vm-25-26");
  });

  it("does not reset a pair whose VM runner reports busy", async () => {
    lab = await startTestLab();
    lab.github.setRunner(vmRunnerName("vm-05-10"), { busy: true });
    const result = await lab.timer();
    expect(result.pairs.find((p) => p.id === "vm-05-10")).toMatchObject({ decision: "deferred-busy" });
    expect(dispatchedPairs(lab)).not.toContain("vm-05-10");
  });

  it("does not reset a pair a recorded job start holds busy (the webhook ahead of GitHub's busy flag and job list), until its end is recorded", async () => {
    lab = await startTestLab();
    await cleanLab(lab);
    lab.advance(5);
    await lab.runtime.facts.record([jobFact(lab, { phase: "started", jobId: 9001, runId: 901, runnerName: "vm-42-43" })]);
    const held = await lab.timer();
    expect(held.pairs.find((p) => p.id === "vm-42-43")).toMatchObject({ state: "busy", decision: "deferred-busy" });
    expect(lab.github.dispatches).toHaveLength(4);
    lab.advance(5);
    await lab.runtime.facts.record([jobFact(lab, { phase: "ended", jobId: 9001, runId: 901, runnerName: "VM-42-43" })]);
    const ended = await lab.timer();
    expect(ended.pairs.find((p) => p.id === "vm-42-43")).toMatchObject({ state: "resetting", decision: "reset-dispatched" });
    expect(dispatchedPairs(lab).filter((p) => p === "vm-42-43")).toHaveLength(2);
  });

  it("a job on a GitHub-hosted or unrelated runner in the same repository affects no pair", async () => {
    lab = await startTestLab();
    perfRun(lab, ["GitHub Actions 12", "WIN-B9SEU47NHOT"]);
    const result = await lab.timer();
    expect(result.pairs.map((p) => p.decision)).toEqual(Array(4).fill("reset-dispatched"));
  });

  it("records a pair offline and does not reset it when a host runner is offline", async () => {
    lab = await startTestLab();
    lab.github.setRunner(hostRunnerName("child=rr1-netperf-11\\localadminuser"), { status: "offline" });
    const result = await lab.timer();
    expect(result.pairs.find((p) => p.id === "vm-11-12")).toMatchObject({ state: "offline", decision: "skipped-offline" });
    expect(dispatchedPairs(lab)).not.toContain("vm-11-12");
    expect((await stored(lab, "vm-11-12"))?.reason).toMatch(/host runner RR1-NETPERF-11 is offline/);
  });

  it("a pair whose reset finished before a job ran on it is reset again in the same pass (follow, then dispatch)", async () => {
    lab = await startTestLab();
    await lab.timer();
    const first = lab.github.dispatches.find((d) => d.inputs.pair === "vm-42-43")!;
    lab.advance(8);
    finishReset(lab, first.runId!);
    lab.advance(5);
    const perf = perfRun(lab, [vmRunnerName("vm-42-43")], "completed");
    const { response, result } = await lab.jobCompleted(report(perf.id));
    // The call answers from the record as it was: the reset is still being followed.
    expect(response.body).toEqual({ runId: perf.id, pairs: [{ id: "vm-42-43", state: "resetting", jobSinceReset: true }], reconcile: "queued" });
    expect(result?.pairs.find((p) => p.id === "vm-42-43")).toMatchObject({ state: "resetting", decision: "reset-dispatched" });
    expect(dispatchedPairs(lab).filter((p) => p === "vm-42-43")).toHaveLength(2);
    expect((await stored(lab, "vm-42-43"))?.resetRunId).not.toBe(first.runId);
  });

  it("a busy pair is reset by the first later trigger that finds it idle", async () => {
    lab = await startTestLab();
    const perf = perfRun(lab, [vmRunnerName("vm-42-43")]);
    await lab.timer();
    expect(await stored(lab, "vm-42-43")).toMatchObject({ state: "busy" });
    lab.github.setRun(perf.id, { status: "completed", conclusion: "success" });
    lab.advance(5);
    const result = await lab.timer();
    expect(result.pairs.find((p) => p.id === "vm-42-43")).toMatchObject({ decision: "reset-dispatched" });
  });

  it("30 concurrent job-completed calls for one pair, served by several instances at once, dispatch exactly one reset", async () => {
    lab = await startTestLab();
    await cleanLab(lab);
    lab.advance(1);
    const perf = perfRun(lab, [vmRunnerName("vm-25-26")], "completed");
    const before = lab.github.dispatches.length;
    const responses = await Promise.all(Array.from({ length: 30 }, () => jobCompleted(lab.runtime, report(perf.id), silentLogger)));
    for (const response of responses) expect(response).toEqual({ status: 202, body: { runId: perf.id, pairs: [{ id: "vm-25-26", state: "dirty", jobSinceReset: true }], reconcile: "queued" } });
    expect(lab.github.dispatches.length - before).toBe(0);
    // Six instances reconcile at once: they race for the claim, and one wins it.
    const results = await Promise.all(Array.from({ length: 6 }, () => reconcile({ ...lab.runtime }, "job-completed")));
    expect(lab.github.dispatches.length - before).toBe(1);
    const decisions = results.map((r) => r.pairs.find((p) => p.id === "vm-25-26")!.decision);
    expect(decisions.filter((d) => d === "reset-dispatched")).toHaveLength(1);
    expect(new Set(decisions.filter((d) => d !== "reset-dispatched"))).toEqual(new Set(["already-resetting"]));
    // The calls' messages are served as well, and dispatch nothing more.
    await lab.settle();
    expect(lab.queue.length).toBe(0);
    expect(lab.github.dispatches.length - before).toBe(1);
  });

  it.each([
    ["a pair without a record (the claim is a create)", false],
    ["a pair with a record (the claim is an ETag-conditional replace)", true],
  ])("a claim another reconcile wrote between our read and our write wins, for %s: ours is not written, nothing is dispatched for the pair", async (_, known) => {
    lab = await startTestLab();
    if (known) {
      await cleanLab(lab);
      lab.advance(61);
    }
    const before = lab.github.dispatches.length;
    // The records were listed; the other reconcile's claim lands as this one looks at GitHub.
    beforeRequest(lab, { path: /\/actions\/runners/ }, 1, async () => {
      const at = lab.now.value.toISOString();
      const current = await lab.runtime.store.getPair("vm-25-26");
      const theirs = { ...(current?.record ?? newPairRecord("vm-25-26", lab.now.value)), state: "resetting" as const, resetRequestId: "another-reconciles-request", resetRunId: null, resetDispatchedAt: at, attempts: 1, updatedAt: at };
      if (current) await lab.runtime.store.replacePair(theirs, current.etag);
      else await lab.runtime.store.createPair(theirs);
    });
    const result = await lab.timer();
    expect(result.pairs.find((p) => p.id === "vm-25-26")).toMatchObject({ state: "resetting", decision: "already-resetting", resetRequestId: "another-reconciles-request" });
    expect(lab.github.dispatches.slice(before).map((d) => d.inputs.pair).sort()).toEqual(["vm-05-10", "vm-11-12", "vm-42-43"]);
    expect(await stored(lab, "vm-25-26")).toMatchObject({ state: "resetting", resetRequestId: "another-reconciles-request" });
  });

  it("four instances serving timer messages at once claim each pair once and dispatch each reset once", async () => {
    lab = await startTestLab();
    for (let i = 0; i < 4; i++) await scheduledReset(lab.runtime, silentLogger);
    const messages = lab.queue.takeAll();
    expect(messages).toHaveLength(4);
    const outcomes = await Promise.all(messages.map((queued) => new ReconcileWorker(() => lab.runtime).serve(queued, silentLogger)));
    expect(dispatchedPairs(lab).sort()).toEqual(["vm-05-10", "vm-11-12", "vm-25-26", "vm-42-43"]);
    expect(lab.github.dispatches).toHaveLength(4);
    const results = outcomes.flatMap((o) => (o.served === "reconciled" ? [o.result] : []));
    expect(results.length).toBeGreaterThan(1);
    for (const pairId of ["vm-05-10", "vm-11-12", "vm-25-26", "vm-42-43"]) {
      expect(results.map((r) => r.pairs.find((p) => p.id === pairId)!.decision).filter((d) => d === "reset-dispatched")).toHaveLength(1);
    }
  });

  it("a GitHub 500 during a reconcile dispatches nothing, answers 503, and the failed reconcile's message is retried", async () => {
    const log = errorLog();
    lab = await startTestLab({ logger: log.logger });
    const perf = perfRun(lab, [vmRunnerName("vm-25-26")], "completed");
    lab.github.fail({ path: "/repos/microsoft/netperf/actions/runners" }, { status: 500 }, 50);
    const { response, result } = await lab.jobCompleted(report(perf.id));
    expect(response.status).toBe(503);
    expect(JSON.stringify(response.body)).toMatch(/runners failed with 500/);
    expect(result).toBeNull();
    // The failed message is done with: a retry, hidden for a minute, looks again.
    expect(lab.trigger.outcomes.at(-1)).toMatchObject({ served: "retry-later", attempt: 1, queued: true });
    expect(lab.queue.length).toBe(0);
    expect(log.text()).toMatch(/lab-reset alert reconcile-failed: .*try 1\) failed: .*pairs vm-25-26, vm-05-10, vm-42-43, vm-11-12 left alone: .*runners failed with 500.*looking again in 1 min/);
    expect(lab.github.dispatches).toHaveLength(0);
    lab.advance(1);
    expect(lab.queue.length).toBe(1);
    await expect(lab.timer()).rejects.toThrow(/not reconciled/);
    expect(lab.github.dispatches).toHaveLength(0);
    expect(await stored(lab, "vm-25-26")).toMatchObject({ state: "dirty", lastError: expect.stringMatching(/500/) });
  });

  it("fails closed when the jobs of an in-progress run cannot be read", async () => {
    const log = errorLog();
    lab = await startTestLab({ logger: log.logger });
    const perf = perfRun(lab, [vmRunnerName("vm-42-43")]);
    lab.github.fail({ path: `/repos/microsoft/netperf/actions/runs/${perf.id}/jobs` }, { status: 502 }, 10);
    await expect(lab.timer()).rejects.toThrow(/not reconciled/);
    // The first look reads no jobs; the cross-check before each dispatch does, and fails closed.
    expect(log.text()).toMatch(new RegExp(`lab-reset alert reconcile-failed: .*actions/runs/${perf.id}/jobs failed with 502`));
    expect(lab.github.dispatches).toHaveLength(0);
  });

  it("retries a read that failed once (Octokit's retry plugin) and goes on", async () => {
    lab = await startTestLab();
    lab.github.fail({ path: "/repos/microsoft/netperf/actions/runners" }, { status: 502 }, 1);
    const result = await lab.timer();
    expect(result.ok).toBe(true);
    expect(lab.github.dispatches).toHaveLength(4);
  });

  it.each([
    ["the VM runner's busy flag turns true", (l: TestLab) => l.github.setRunner(vmRunnerName("vm-42-43"), { busy: true })],
    ["a job starts on the VM while the busy flag lags", (l: TestLab) => void perfRun(l, [vmRunnerName("vm-42-43")])],
  ])("looks again after claiming: %s after the first look, and the claim is released", async (_, start) => {
    lab = await startTestLab();
    beforeSecondLook(() => start(lab));
    const result = await lab.timer();
    expect(result.pairs.find((p) => p.id === "vm-42-43")).toMatchObject({ state: "busy", decision: "deferred-busy" });
    expect(dispatchedPairs(lab)).not.toContain("vm-42-43");
    expect(dispatchedPairs(lab)).toHaveLength(3);
    expect(await stored(lab, "vm-42-43")).toMatchObject({ state: "busy", attempts: 0, reason: expect.stringMatching(/claim released before dispatch/) });
  });

  it("a job start recorded between the claim and the second look releases the claim (a webhook ahead of GitHub)", async () => {
    lab = await startTestLab();
    await cleanLab(lab);
    lab.advance(61);
    beforeSecondLook(async () => {
      await lab.runtime.facts.record([jobFact(lab, { phase: "started", jobId: 9901, runId: 99, runnerName: "VM-25-26" })]);
    });
    const result = await lab.timer();
    const periodic = lab.github.dispatches.slice(4).map((d) => d.inputs.pair);
    expect(periodic).not.toContain("vm-25-26");
    expect(periodic).toHaveLength(3);
    expect(result.pairs.find((p) => p.id === "vm-25-26")).toMatchObject({ state: "busy", decision: "deferred-busy" });
    expect(await stored(lab, "vm-25-26")).toMatchObject({ state: "busy", lastJobRunId: 99, attempts: 0, reason: expect.stringMatching(/claim released before dispatch/) });
    expect((await lab.runtime.store.listEvents("vm-25-26"))[0]).toMatchObject({ kind: "state", from: "resetting", to: "busy" });
  });

  it("a job start delivered late (its hold already run out), recorded between the claim and the second look, still releases the claim", async () => {
    lab = await startTestLab();
    await cleanLab(lab);
    lab.advance(61);
    const startedAt = new Date(lab.now.value.getTime() - 20 * 60_000).toISOString();
    beforeSecondLook(async () => {
      await lab.runtime.facts.record([jobFact(lab, { phase: "started", jobId: 9902, runId: 98, runnerName: "VM-25-26", at: startedAt })]);
    });
    await lab.timer();
    expect(lab.github.dispatches.slice(4).map((d) => d.inputs.pair)).not.toContain("vm-25-26");
    expect(await stored(lab, "vm-25-26")).toMatchObject({ attempts: 0, reason: expect.stringMatching(/claim released before dispatch: run 98 started a job on the VM \(webhook\) since the first look/) });
    // The start is not forgotten: the next reconcile finds the pair dirty (its hold is over) and resets it.
    lab.advance(1);
    const next = await lab.timer();
    expect(next.pairs.find((p) => p.id === "vm-25-26")).toMatchObject({ decision: "reset-dispatched" });
    expect(await stored(lab, "vm-25-26")).toMatchObject({ state: "resetting", lastJobRunId: 98, jobSinceReset: true });
  });

  it("a job end recorded between the claim and the dispatch does not release the claim: the pair is dispatched once", async () => {
    lab = await startTestLab();
    await cleanLab(lab);
    lab.advance(61);
    beforeSecondLook(async () => {
      await lab.runtime.facts.record([jobFact(lab, { phase: "ended", jobId: 9903, runId: 97, runnerName: "VM-25-26", source: "job-completed" })]);
    });
    const result = await lab.timer();
    const periodic = lab.github.dispatches.slice(4).filter((d) => d.inputs.pair === "vm-25-26");
    expect(periodic).toHaveLength(1);
    expect(lab.github.dispatches).toHaveLength(8);
    expect(result.pairs.find((p) => p.id === "vm-25-26")).toMatchObject({ state: "resetting", decision: "reset-dispatched", resetRunId: periodic[0]!.runId });
    expect(await stored(lab, "vm-25-26")).toMatchObject({ state: "resetting", resetRunId: periodic[0]!.runId, resetRequestId: periodic[0]!.inputs.request_id, attempts: 1 });
    expect((await lab.runtime.store.listEvents("vm-25-26")).map((e) => e.reason)).not.toContainEqual(expect.stringMatching(/claim released/));
  });

  it("re-reads the claim before dispatching: a claim another reconcile took over (another request id) is not dispatched", async () => {
    lab = await startTestLab();
    await cleanLab(lab);
    lab.advance(61);
    beforeSecondLook(async () => {
      const claimed = (await lab.runtime.store.getPair("vm-25-26"))!;
      await lab.runtime.store.replacePair({ ...claimed.record, resetRequestId: "another-reconciles-request" }, claimed.etag);
    });
    const result = await lab.timer();
    const periodic = lab.github.dispatches.slice(4).map((d) => d.inputs.pair);
    expect(periodic).not.toContain("vm-25-26");
    expect(periodic).toHaveLength(3);
    expect(result.pairs.find((p) => p.id === "vm-25-26")?.decision).not.toBe("reset-dispatched");
    // Left to the claim's owner.
    expect(await stored(lab, "vm-25-26")).toMatchObject({ state: "resetting", resetRequestId: "another-reconciles-request" });
  });

  it("re-reads the claim before dispatching: a claim rewritten meanwhile that still carries its request id is dispatched once", async () => {
    lab = await startTestLab();
    await cleanLab(lab);
    lab.advance(61);
    let requestId: string | null = null;
    beforeSecondLook(async () => {
      const claimed = (await lab.runtime.store.getPair("vm-25-26"))!;
      requestId = claimed.record.resetRequestId;
      // Another reconcile following the claim rewrote it (a new ETag), still ours.
      await lab.runtime.store.replacePair({ ...claimed.record, lastError: "noted by another reconcile" }, claimed.etag);
    });
    await lab.timer();
    const dispatched = lab.github.dispatches.slice(4).filter((d) => d.inputs.pair === "vm-25-26");
    expect(dispatched).toHaveLength(1);
    expect(dispatched[0]!.inputs.request_id).toBe(requestId);
    expect(await stored(lab, "vm-25-26")).toMatchObject({ state: "resetting", resetRequestId: requestId, resetRunId: dispatched[0]!.runId });
  });

  it("marks a pair failed when its reset run fails, and retries it at the first trigger after the backoff", async () => {
    lab = await startTestLab();
    await lab.timer();
    const first = lab.github.dispatches.find((d) => d.inputs.pair === "vm-05-10")!;
    finishReset(lab, first.runId!, "failure");
    lab.advance(10);
    const result = await lab.timer();
    expect(result.pairs.find((p) => p.id === "vm-05-10")).toMatchObject({ state: "failed", decision: "reset-failed" });
    expect((await stored(lab, "vm-05-10"))?.lastError).toMatch(/ended with conclusion "failure"/);
    lab.advance(10);
    const early = await lab.timer();
    expect(early.pairs.find((p) => p.id === "vm-05-10")).toMatchObject({ state: "failed", decision: "retry-later" });
    lab.advance(6);
    const retry = await lab.timer();
    expect(retry.pairs.find((p) => p.id === "vm-05-10")).toMatchObject({ state: "resetting", decision: "reset-dispatched" });
    expect(await stored(lab, "vm-05-10")).toMatchObject({ attempts: 2 });
  });

  it("marks a reset that never completes failed after resetTimeoutMinutes, and cancels its run", async () => {
    lab = await startTestLab();
    await lab.timer();
    lab.advance(31);
    // The look due at the time limit judges them; no trigger is needed.
    const result = (await lab.settle())!;
    expect(result.trigger).toBe("webhook");
    expect(result.pairs.map((p) => p.decision)).toEqual(Array(4).fill("reset-failed"));
    expect((await stored(lab, "vm-25-26"))?.lastError).toMatch(/did not complete within 30 minutes/);
    // A run left queued could restore the VM hours later without any check.
    const cancels = lab.github.requests.filter((r) => r.method === "POST" && r.path.endsWith("/cancel"));
    expect(cancels).toHaveLength(4);
    for (const d of lab.github.dispatches) expect(lab.github.getRun(d.runId!)).toMatchObject({ status: "completed", conclusion: "cancelled" });
  });

  it("sees a reset done when its host jobs are, while the run's own report job still runs", async () => {
    lab = await startTestLab();
    await lab.timer();
    const reset = lab.github.dispatches.find((d) => d.inputs.pair === "vm-42-43")!;
    const hosts = lab.github.dispatchedHosts(reset.runId!)!;
    lab.github.setRun(reset.runId!, { status: "in_progress" });
    lab.advance(1);
    // Each host's check passed; its restore job (which needs the check) is not listed yet: not done.
    for (const job of lab.github.jobsOf(reset.runId!)) lab.github.setJob(Number(job.id), { status: "completed", conclusion: "success" });
    expect((await lab.timer()).pairs.find((p) => p.id === "vm-42-43")).toMatchObject({ state: "resetting", decision: "already-resetting" });
    lab.advance(6);
    lab.github.addJobs(reset.runId!, [
      ...hosts.map((host) => ({ name: labResetJobs.restore(host), status: "completed" as const, conclusion: "success", runnerName: hostRunnerName(host.runnerLabel), labels: ["self-hosted", host.runnerLabel] })),
      { name: labResetJobs.report, status: "in_progress" as const, runnerName: hostedRunnerName(2), labels: ["ubuntu-latest"] },
    ]);
    // The reset workflow's last job calls job-completed for its own run, which is still in progress.
    const { response, result } = await lab.jobCompleted(report(reset.runId!));
    expect(response).toEqual({ status: 202, body: { runId: reset.runId, pairs: [], reconcile: "queued" } });
    expect(result?.pairs.find((p) => p.id === "vm-42-43")).toMatchObject({ state: "clean", resetRunId: reset.runId });
    expect(await stored(lab, "vm-42-43")).toMatchObject({ state: "clean", resetRunId: reset.runId });
  });

  it("judges a completed reset run by its host jobs: a failed report job does not fail a good reset", async () => {
    lab = await startTestLab();
    await lab.timer();
    const reset = lab.github.dispatches.find((d) => d.inputs.pair === "vm-42-43")!;
    lab.advance(7);
    for (const job of lab.github.jobsOf(reset.runId!)) lab.github.setJob(Number(job.id), { status: "completed", conclusion: "success" });
    lab.github.addJobs(reset.runId!, [
      ...lab.github.dispatchedHosts(reset.runId!)!.map((host) => ({ name: labResetJobs.restore(host), status: "completed" as const, conclusion: "success", labels: ["self-hosted", host.runnerLabel] })),
      { name: labResetJobs.report, status: "completed", conclusion: "failure", runnerName: hostedRunnerName(2), labels: ["ubuntu-latest"] },
    ]);
    lab.github.setRun(reset.runId!, { status: "completed", conclusion: "failure" });
    const result = await lab.timer();
    expect(result.pairs.find((p) => p.id === "vm-42-43")).toMatchObject({ state: "clean", decision: "skipped-fresh" });
    expect(await stored(lab, "vm-42-43")).toMatchObject({ state: "clean", attempts: 0, lastError: null });
  });

  it("on GitHub Enterprise Server (no return_run_details) dispatches plainly and finds the run by request id", async () => {
    lab = await startTestLab({ ghes: true });
    await lab.timer();
    const accepted = lab.github.dispatches.filter((d) => d.runId !== null);
    expect(accepted).toHaveLength(4);
    expect(accepted.every((d) => !d.returnRunDetails)).toBe(true);
    // Only the first dispatch asks for run details; the client remembers the refusal.
    expect(lab.github.dispatches.filter((d) => d.returnRunDetails)).toHaveLength(1);
    expect(await stored(lab, "vm-25-26")).toMatchObject({ state: "resetting", resetRunId: null });
    lab.advance(2);
    await lab.timer();
    const runId = accepted.find((d) => d.inputs.pair === "vm-25-26")!.runId;
    expect(await stored(lab, "vm-25-26")).toMatchObject({ state: "resetting", resetRunId: runId });
    finishReset(lab, runId!);
    lab.advance(1);
    await lab.timer();
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
    // Nor does the queue's retry of the failed reconcile.
    lab.advance(1);
    await lab.timer();
    expect(lab.github.requests.filter((r) => r.method === "POST")).toHaveLength(4);
  });

  it("uses the org runner list when runnerScope is org", async () => {
    const { seedConfig } = await import("./support/lab.js");
    lab = await startTestLab({ config: { ...seedConfig, github: { ...seedConfig.github, runnerScope: "org" } } });
    await lab.timer();
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
  ])("answers %s with its 4xx, records and queues nothing", async (_, body, status, message) => {
    lab = await startTestLab();
    const response = await jobCompleted(lab.runtime, body, silentLogger);
    expect(response.status).toBe(status);
    expect(JSON.stringify(response.body)).toMatch(message);
    expect(lab.queue.length).toBe(0);
    expect(await lab.runtime.facts.listSince(new Date(0))).toEqual([]);
    expect(await lab.runtime.store.listPairs()).toEqual([]);
    expect(lab.github.dispatches).toHaveLength(0);
  });

  it("accepts quoted numbers and a runnerName, and records the job on that runner's pair", async () => {
    lab = await startTestLab();
    const perf = { id: Number(lab.github.addRun({ status: "in_progress", jobs: [{ runnerName: "GitHub Actions 3", status: "in_progress" }] }).id) };
    const { response, result } = await lab.jobCompleted(JSON.stringify({ repository: "Microsoft/NetPerf", runId: String(perf.id), runAttempt: "1", runnerName: "VM-11-12" }));
    expect(response).toEqual({ status: 202, body: { runId: perf.id, pairs: [{ id: "vm-11-12", state: "dirty", jobSinceReset: true }], reconcile: "queued" } });
    expect(result?.pairs.find((p) => p.id === "vm-11-12")).toMatchObject({ decision: "reset-dispatched" });
    expect(await stored(lab, "vm-11-12")).toMatchObject({ lastJobRunId: perf.id });
  });
});

describe("the timer as backstop for lost job-completed calls (I3)", () => {
  it("resets a pair whose perf run finished without calling job-completed", async () => {
    lab = await startTestLab();
    await cleanLab(lab);
    lab.advance(5);
    const perf = perfRun(lab, [vmRunnerName("vm-42-43")], "completed"); // its job-completed call is lost
    lab.advance(5);
    const result = await lab.timer();
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
    const result = await lab.timer();
    expect(result.pairs.map((p) => p.decision)).toEqual(Array(4).fill("skipped-fresh"));
  });

  it("a job-completed reconcile does not look for lost calls: only the timer's does", async () => {
    lab = await startTestLab();
    await cleanLab(lab);
    lab.advance(5);
    perfRun(lab, [vmRunnerName("vm-42-43")], "completed"); // its job-completed call is lost
    const other = perfRun(lab, ["GitHub Actions 4"], "completed");
    lab.advance(1);
    lab.github.clearRequests();
    const { result } = await lab.jobCompleted(report(other.id));
    expect(result?.pairs.map((p) => p.decision)).toEqual(Array(4).fill("not-needed"));
    expect(lab.github.requests.some((r) => r.path === "/repos/microsoft/netperf/actions/runs" && r.query.status === "completed")).toBe(false);
    lab.advance(1);
    expect((await lab.timer()).pairs.find((p) => p.id === "vm-42-43")).toMatchObject({ decision: "reset-dispatched" });
  });
});

describe("GitHub request budget", () => {
  const runnerPages = Math.ceil(10 / 100);

  it("one timer reconcile of the seed lab stays within its budget, and unchanged lists are answered 304", async () => {
    lab = await startTestLab();
    await cleanLab(lab);
    lab.advance(61); // no longer fresh: every idle pair gets its periodic reset
    perfRun(lab, [vmRunnerName("vm-25-26")]); // one in-progress run, its VM busy
    perfRun(lab, [vmRunnerName("vm-11-12")], "completed"); // one finished run not seen before
    lab.github.clearRequests();
    const result = await lab.timer();
    const inProgressRuns = 1;
    const budget =
      runnerPages + 1 + inProgressRuns + // first look: runners, in-progress runs, their jobs
      1 + 1 + // completed runs since the oldest reset, and the jobs of the one not seen before
      0 + // reset runs followed: none in flight
      result.dispatches + // one dispatch per reset
      (result.dispatches > 0 ? runnerPages + 1 + inProgressRuns : 0); // the second look after claiming
    expect(result.dispatches).toBe(3);
    expect(result.githubRequests).toBe(lab.github.requests.length);
    expect(lab.github.requests.length).toBeLessThanOrEqual(budget);

    // Nothing changed on GitHub: the same lists are asked for again with their ETags.
    lab.github.clearRequests();
    lab.advance(1);
    await lab.timer();
    // Only the three new reset runs (and their jobs) are read for the first time.
    const resetRuns = new Set(lab.github.dispatches.slice(-3).map((d) => d.runId));
    const gets = lab.github.requests.filter((r) => r.method === "GET" && !resetRuns.has(Number(/\/actions\/runs\/(\d+)/.exec(r.path)?.[1])));
    expect(gets.length).toBeGreaterThan(0);
    expect(gets.every((r) => r.status === 304)).toBe(true);
    expect(lab.runtime.github.stats().notModified).toBeGreaterThanOrEqual(gets.length);
  });

  it("a burst of job-completed calls for one run reads its jobs once, and the reconciles that serve them stay within their budget", async () => {
    lab = await startTestLab();
    await cleanLab(lab);
    lab.advance(5);
    const perf = perfRun(lab, [vmRunnerName("vm-42-43")], "completed");
    lab.github.clearRequests();
    const responses = await Promise.all(Array.from({ length: 10 }, () => jobCompleted(lab.runtime, report(perf.id), silentLogger)));
    expect(responses.map((r) => r.status)).toEqual(Array(10).fill(202));
    const jobsPath = `/repos/microsoft/netperf/actions/runs/${perf.id}/jobs`;
    // The calls: the run's jobs once, the runner list (to name the pairs) once.
    expect(lab.github.requests.filter((r) => r.path === jobsPath)).toHaveLength(1);
    expect(lab.github.requests.length).toBeLessThanOrEqual(1 + runnerPages);

    lab.github.clearRequests();
    const reconcilesBefore = lab.runtime.worker.reconciles;
    await lab.settle();
    const reconciles = lab.runtime.worker.reconciles - reconcilesBefore;
    expect(reconciles).toBeGreaterThanOrEqual(1);
    const dispatching =
      runnerPages + 1 + // look: runners, in-progress runs (none); a job-completed reconcile does not look for lost calls
      1 + // the dispatch
      runnerPages + 1; // the second look after claiming
    const following = runnerPages + 1 + 2; // look, then the reset run in flight and its jobs
    expect(lab.github.dispatches.slice(4).map((d) => d.inputs.pair)).toEqual(["vm-42-43"]);
    expect(lab.github.requests.length).toBeLessThanOrEqual(dispatching + (reconciles - 1) * following);
    expect(lab.github.requests.some((r) => r.path === jobsPath)).toBe(false);

    // A late copy of the call reads nothing of the finished run again.
    lab.github.clearRequests();
    expect((await jobCompleted(lab.runtime, report(perf.id), silentLogger)).status).toBe(202);
    expect(lab.github.requests.filter((r) => r.path === jobsPath)).toHaveLength(0);
  });
});
