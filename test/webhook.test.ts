/**
 * The workflow_job webhook: a delivery is checked, recorded as one job fact and a reconcile is
 * queued; the answer never waits on GitHub. What the pair becomes is the reconcile's to say, so
 * each behaviour is checked in the answer, then again once the queue is served (`lab.settle()`).
 */
import { afterEach, describe, expect, it } from "vitest";
import { silentLogger } from "../shared/logger.js";
import type { Runtime } from "../shared/runtime.js";
import { StoreError } from "../shared/storage/connection.js";
import type { FactStore } from "../shared/storage/facts.js";
import type { ReconcileQueue } from "../shared/storage/queue.js";
import { githubWebhook, type WebhookDelivery } from "../shared/triggers/webhook.js";
import { finishReset, perfRun, reportReset, startTestLab, vmRunnerName, type TestLab } from "./support/lab.js";
import { signedDelivery, WEBHOOK_SECRET, workflowJobPayload } from "./support/webhook-deliveries.js";

let lab: TestLab | undefined;
afterEach(async () => {
  await lab?.close();
  lab = undefined;
});

const start = (settings: Record<string, string> = {}) => startTestLab({ settings: { GITHUB_WEBHOOK_SECRET: WEBHOOK_SECRET, ...settings } });
const deliver = (l: TestLab, delivery: WebhookDelivery, runtime: Runtime = l.runtime) => githubWebhook(runtime, delivery, silentLogger);
const stored = async (l: TestLab, id: string) => (await l.runtime.store.getPair(id))?.record;
const facts = async (l: TestLab) => (await l.runtime.facts.listSince(new Date(0))).map((f) => f.fact);
const dispatchedPairs = (l: TestLab) => l.github.dispatches.filter((d) => d.runId !== null).map((d) => d.inputs.pair);
const resultOf = (result: { pairs: { id: string }[] } | null, id: string) => result?.pairs.find((p) => p.id === id);

/** Every pair reset once and clean: resets requested at 12:00, the lab's clock at 12:10 + `thenMinutes`. */
async function cleanLab(l: TestLab, thenMinutes = 1) {
  await l.timer();
  for (const d of l.github.dispatches) finishReset(l, d.runId!);
  l.advance(10);
  const after = await l.timer();
  expect(after.pairs.every((p) => p.state === "clean")).toBe(true);
  l.github.dispatches.length = 0;
  // Later messages are inserted after the timer's (see "the hand-over to the reconcile").
  l.advance(thenMinutes);
}

/** The runtime with each call to its store, facts and queue logged by name, in order. */
function watched(l: TestLab): { runtime: Runtime; calls: string[] } {
  const calls: string[] = [];
  const watch = <T extends object>(target: T, name: string): T =>
    new Proxy(target, {
      get(t, property, receiver) {
        const value: unknown = Reflect.get(t, property, receiver);
        if (typeof value !== "function") return value;
        return (...args: unknown[]) => {
          calls.push(`${name}.${String(property)}`);
          return (value as (...a: unknown[]) => unknown).apply(t, args);
        };
      },
    });
  const runtime = { ...l.runtime, store: watch(l.runtime.store, "store"), facts: watch(l.runtime.facts, "facts"), queue: watch(l.runtime.queue, "queue") };
  return { runtime, calls };
}

/** Table Storage refusing the fact's insert, as a throttled or unreachable account does. */
function failingFacts(l: TestLab): FactStore {
  return {
    record: () => Promise.reject(new StoreError("record job 1 started", new Error("503 Server Busy"))),
    listSince: (since) => l.runtime.facts.listSince(since),
    prune: (before) => l.runtime.facts.prune(before),
  };
}
const failingQueue: ReconcileQueue = { send: () => Promise.reject(new StoreError("queue a reconcile on labreset-reconcile", new Error("503 Server Busy"))), now: () => Promise.resolve(new Date()) };

describe("workflow_job in_progress", () => {
  it("records the job's start with one storage write and no GitHub request; the reconcile then holds the pair busy while GitHub's runner still reads idle", async () => {
    lab = await start();
    const startedAt = "2026-11-27T12:00:05Z";
    const delivery = await signedDelivery(workflowJobPayload("in_progress", { runnerName: "vm-25-26", runId: 777, jobId: 4001, startedAt }));
    const { runtime, calls } = watched(lab);
    const requests = lab.github.requests.length;
    const response = await deliver(lab, delivery, runtime);
    expect(response).toEqual({
      status: 202,
      body: { deliveryId: delivery.deliveryId, action: "in_progress", jobId: 4001, runId: 777, runner: "vm-25-26", recorded: "started", reconcile: "queued" },
    });
    expect(lab.github.requests.length).toBe(requests);
    expect(calls).toEqual(["facts.record", "queue.send"]);
    expect(await facts(lab)).toEqual([
      { phase: "started", jobId: 4001, runId: 777, runnerName: "vm-25-26", runnerId: expect.any(Number), at: "2026-11-27T12:00:05.000Z", githubAt: "2026-11-27T12:00:05.000Z", source: "webhook", recordedAt: lab.now.value.toISOString() },
    ]);
    expect(lab.queue.length).toBe(1);
    // The answer wrote no pair record: that is the reconcile's.
    expect(await lab.runtime.store.listPairs()).toEqual([]);

    const result = await lab.settle();
    expect(resultOf(result, "vm-25-26")).toMatchObject({ state: "busy", decision: "deferred-busy" });
    expect(await stored(lab, "vm-25-26")).toMatchObject({ state: "busy", jobSinceReset: true, lastJobRunId: 777, lastJobAt: "2026-11-27T12:00:05.000Z" });
    expect((await lab.runtime.store.listEvents("vm-25-26")).map((e) => [e.trigger, e.to])).toEqual([["webhook", "busy"]]);
    expect(dispatchedPairs(lab)).not.toContain("vm-25-26");
  });

  it("answers a repeated delivery as a duplicate without recording it again, and still queues a reconcile", async () => {
    lab = await start();
    const delivery = await signedDelivery(workflowJobPayload("in_progress", { runnerName: "VM-05-10", runId: 31, startedAt: lab.now.value.toISOString() }));
    expect(await deliver(lab, delivery)).toMatchObject({ status: 202, body: { recorded: "started" } });
    const first = await lab.runtime.facts.listSince(new Date(0));
    const again = await deliver(lab, delivery);
    expect(again).toMatchObject({ status: 200, body: { deliveryId: delivery.deliveryId, recorded: "started", duplicate: true, reconcile: "queued" } });
    expect(await lab.runtime.facts.listSince(new Date(0))).toEqual(first);
    // The first delivery's hand-over may be what failed: a repeat queues too.
    expect(lab.queue.length).toBe(2);
    expect(resultOf(await lab.settle(), "vm-05-10")).toMatchObject({ state: "busy" });
  });

  it("dedupes by job and phase, not by delivery id: another delivery of the same start, even at the same moment, is a duplicate", async () => {
    lab = await start();
    const payload = workflowJobPayload("in_progress", { runnerName: "VM-05-10", runId: 31, jobId: 7007 });
    const [a, b] = await Promise.all([signedDelivery(payload), signedDelivery(payload)]);
    expect(a.deliveryId).not.toBe(b.deliveryId);
    const answers = await Promise.all([deliver(lab, a), deliver(lab, b)]);
    expect(answers.map((r) => r.status).sort()).toEqual([200, 202]);
    expect(await facts(lab)).toHaveLength(1);
    const third = await deliver(lab, await signedDelivery(payload));
    expect(third).toMatchObject({ status: 200, body: { duplicate: true } });
    expect(await facts(lab)).toHaveLength(1);
  });

  it("lets no job that started earlier overwrite the newer job the pair records (out-of-order deliveries)", async () => {
    lab = await start();
    // Neither arrival order nor job id order is start order: job 9001 waited in the queue longer.
    await deliver(lab, await signedDelivery(workflowJobPayload("in_progress", { runnerName: "VM-42-43", runId: 52, jobId: 9001, startedAt: "2026-11-27T11:55:00Z" })));
    const older = await deliver(lab, await signedDelivery(workflowJobPayload("in_progress", { runnerName: "VM-42-43", runId: 51, jobId: 9002, startedAt: "2026-11-27T11:50:00Z" })));
    // Both are facts; the trigger does not judge them.
    expect(older).toMatchObject({ status: 202, body: { recorded: "started", runId: 51 } });
    await lab.settle();
    // Both starts are dated by their arrival (12:00); GitHub's own start times break the tie.
    expect(await stored(lab, "vm-42-43")).toMatchObject({ state: "busy", lastJobRunId: 52, lastJobAt: "2026-11-27T12:00:00.000Z" });
  });

  it("keeps a reset in flight followed, and makes the pair dirty again when the reset ends", async () => {
    lab = await start();
    await lab.timer();
    lab.advance(1);
    const reset = lab.github.dispatches.find((d) => d.inputs.pair === "vm-25-26")!;
    const response = await deliver(lab, await signedDelivery(workflowJobPayload("in_progress", { runnerName: "VM-25-26", runId: 88, startedAt: "2026-11-27T12:01:00Z" })));
    expect(response).toMatchObject({ status: 202, body: { recorded: "started" } });
    expect(resultOf(await lab.settle(), "vm-25-26")).toMatchObject({ state: "resetting", decision: "already-resetting" });
    expect(await stored(lab, "vm-25-26")).toMatchObject({ state: "resetting", resetRunId: reset.runId, jobSinceReset: true, lastJobRunId: 88 });
    finishReset(lab, reset.runId!);
    lab.advance(5);
    // GitHub does not show job 88 at all, but the webhook said it started: the pair stays busy.
    const held = await lab.timer();
    expect(resultOf(held, "vm-25-26")).toMatchObject({ state: "busy", decision: "deferred-busy" });
    lab.advance(15);
    // The look due when the start's hold runs out resets the pair, before any other trigger.
    await lab.settle();
    expect(lab.github.dispatches.filter((d) => d.inputs.pair === "vm-25-26")).toHaveLength(2);
    expect(await stored(lab, "vm-25-26")).toMatchObject({ state: "resetting" });
  });

  it("holds a pair busy for a job that started just before its reset was requested (the job a lagging busy flag hid)", async () => {
    lab = await start();
    await lab.timer(); // resets requested at 12:00
    lab.advance(1);
    const reset = lab.github.dispatches.find((d) => d.inputs.pair === "vm-11-12")!;
    const response = await deliver(lab, await signedDelivery(workflowJobPayload("in_progress", { runnerName: "VM-11-12", runId: 5, startedAt: "2026-11-27T11:59:58Z" })));
    expect(response).toMatchObject({ status: 202, body: { recorded: "started" } });
    expect(resultOf(await lab.settle(), "vm-11-12")).toMatchObject({ state: "resetting", decision: "already-resetting" });
    finishReset(lab, reset.runId!);
    lab.advance(5);
    // The reset succeeded, but the start recorded at 11:59:58 still holds the VM (until 12:14:58).
    expect(resultOf(await lab.timer(), "vm-11-12")).toMatchObject({ state: "busy", decision: "deferred-busy" });
    lab.advance(15);
    await lab.settle();
    expect(lab.github.dispatches.filter((d) => d.inputs.pair === "vm-11-12")).toHaveLength(2);
    expect(await stored(lab, "vm-11-12")).toMatchObject({ state: "resetting" });
  });
});

describe("a start whose started_at is the job's queue time", () => {
  it("holds the pair busy when a job queued before the reset starts after it on a runner GitHub still shows idle, and no reset hits it", async () => {
    lab = await start();
    await cleanLab(lab, 0); // resets requested at 12:00, every pair clean at 12:10
    // The perf job queued at 11:55, while the VM was being reset; GitHub's API does not show it on the runner yet.
    const run = lab.github.addRun({ name: "perf", status: "in_progress", createdAt: "2026-11-27T11:55:00Z", jobs: [{ status: "queued", runnerName: null, labels: ["self-hosted", "lab"] }] });
    const job = lab.github.jobsOf(Number(run.id))[0]!;
    lab.advance(70); // 13:20: the reset is older than freshForMinutes, so a timer would reset an idle clean pair
    const payload = workflowJobPayload("in_progress", { runnerName: "VM-25-26", runId: Number(run.id), jobId: Number(job.id), startedAt: "2026-11-27T11:55:00Z" });
    expect(await deliver(lab, await signedDelivery(payload))).toMatchObject({ status: 202, body: { recorded: "started" } });
    expect((await facts(lab)).at(-1)).toMatchObject({ at: lab.now.value.toISOString(), githubAt: "2026-11-27T11:55:00.000Z" });
    expect(lab.github.getRunner("VM-25-26")?.busy).toBe(false);
    await lab.settle();
    expect(await stored(lab, "vm-25-26")).toMatchObject({ state: "busy" });
    for (const minutes of [1, 13]) {
      lab.advance(minutes);
      expect(resultOf(await lab.timer(), "vm-25-26")).toMatchObject({ state: "busy", decision: "deferred-busy" });
    }
    expect(dispatchedPairs(lab)).not.toContain("vm-25-26");
  });
});

describe("workflow_job completed", () => {
  it("records the job's end with no GitHub request; the reconcile resets the pair the job ran on, recorded as a webhook trigger", async () => {
    lab = await start();
    await cleanLab(lab);
    const perf = perfRun(lab, [vmRunnerName("vm-42-43")], "completed");
    const payload = workflowJobPayload("completed", { runnerName: "VM-42-43", runId: perf.id, completedAt: lab.now.value.toISOString() });
    const { runtime, calls } = watched(lab);
    const requests = lab.github.requests.length;
    const response = await deliver(lab, await signedDelivery(payload), runtime);
    expect(response).toMatchObject({ status: 202, body: { action: "completed", runId: perf.id, runner: "VM-42-43", recorded: "ended", reconcile: "queued" } });
    expect(response.body).not.toHaveProperty("pairs");
    expect(lab.github.requests.length).toBe(requests);
    expect(calls).toEqual(["facts.record", "queue.send"]);
    expect(await facts(lab)).toMatchObject([{ phase: "ended", runId: perf.id, runnerName: "VM-42-43", at: lab.now.value.toISOString(), source: "webhook" }]);
    expect(lab.github.dispatches).toHaveLength(0);

    const result = await lab.settle();
    expect(result).toMatchObject({ trigger: "webhook" });
    expect(resultOf(result, "vm-42-43")).toMatchObject({ decision: "reset-dispatched" });
    expect(dispatchedPairs(lab)).toEqual(["vm-42-43"]);
    expect((await lab.runtime.store.listEvents("vm-42-43", 2)).map((e) => [e.kind, e.trigger])).toEqual([
      ["dispatch", "webhook"],
      ["state", "webhook"],
    ]);
  });

  it("leaves no pair held busy by a job whose completed arrived before its in_progress, nor by that in_progress redelivered", async () => {
    lab = await start();
    await cleanLab(lab);
    lab.advance(5); // 12:16
    const perf = perfRun(lab, [vmRunnerName("vm-42-43")], "completed");
    const jobId = Number(lab.github.jobsOf(perf.id)[0]!.id);
    const job = { runnerName: "VM-42-43", runId: perf.id, jobId, startedAt: "2026-11-27T12:12:00Z" };
    const completed = await deliver(lab, await signedDelivery(workflowJobPayload("completed", { ...job, completedAt: "2026-11-27T12:15:00Z" })));
    const late = await signedDelivery(workflowJobPayload("in_progress", job));
    const started = await deliver(lab, late);
    expect([completed.status, started.status]).toEqual([202, 202]);
    // The start alone would hold the pair until 12:27; its recorded end says the job is over.
    expect(await lab.settle()).not.toBeNull();
    expect(dispatchedPairs(lab)).toEqual(["vm-42-43"]);
    const reset = lab.github.dispatches.find((d) => d.inputs.pair === "vm-42-43")!;
    await reportReset(lab, reset.runId!);
    lab.advance(2);
    expect(await deliver(lab, late)).toMatchObject({ status: 200, body: { duplicate: true, recorded: "started" } });
    expect(resultOf(await lab.settle(), "vm-42-43")).toMatchObject({ state: "clean", decision: "not-needed" });
  });

  it("holds a pair no longer for a late in_progress whose completed was lost, once the timer sees GitHub list the job finished", async () => {
    lab = await start();
    await cleanLab(lab);
    lab.advance(5); // 12:16
    const perf = perfRun(lab, [vmRunnerName("vm-42-43")], "completed");
    const jobId = Number(lab.github.jobsOf(perf.id)[0]!.id);
    // Dated by its arrival (12:16), the start would hold the pair busy until 12:31; no end is ever delivered.
    await deliver(lab, await signedDelivery(workflowJobPayload("in_progress", { runnerName: "VM-42-43", runId: perf.id, jobId, startedAt: "2026-11-27T12:12:00Z" })));
    expect(resultOf(await lab.settle(), "vm-42-43")).toMatchObject({ state: "busy", decision: "deferred-busy" });
    expect(dispatchedPairs(lab)).toEqual([]);
    lab.advance(1);
    // The timer's backstop reads the finished run: its job ended on the VM, so the recorded start holds no more.
    const timer = await lab.timer();
    expect(resultOf(timer, "vm-42-43")).toMatchObject({ decision: "reset-dispatched" });
    expect(dispatchedPairs(lab)).toEqual(["vm-42-43"]);
  });

  it("ignores a job end from before the pair's last reset was requested", async () => {
    lab = await start();
    await lab.timer(); // resets requested at 12:00
    lab.advance(1);
    const before = await lab.runtime.store.getPair("vm-11-12");
    const ends = [
      workflowJobPayload("completed", { runnerName: "VM-11-12", runId: 4711, jobId: 5001, completedAt: "2026-11-27T11:58:00Z" }),
      workflowJobPayload("completed", { runnerName: "VM-05-10", runId: 4712, jobId: 5002, completedAt: "2026-11-27T11:30:00Z" }),
    ];
    for (const payload of ends) expect(await deliver(lab, await signedDelivery(payload))).toMatchObject({ status: 202, body: { recorded: "ended" } });
    expect(await lab.settle()).toMatchObject({ trigger: "webhook" });
    expect((await lab.runtime.store.getPair("vm-11-12"))?.etag).toBe(before?.etag);
    expect(await stored(lab, "vm-05-10")).toMatchObject({ lastJobRunId: null, state: "resetting" });
    expect(lab.github.dispatches).toHaveLength(4);
  });

  it("answers 503 and queues nothing when the fact cannot be recorded, so that GitHub's redelivery is handled", async () => {
    lab = await start();
    await cleanLab(lab);
    const perf = perfRun(lab, [vmRunnerName("vm-25-26")], "completed");
    const delivery = await signedDelivery(workflowJobPayload("completed", { runnerName: "VM-25-26", runId: perf.id, completedAt: lab.now.value.toISOString() }));
    const failed = await deliver(lab, delivery, { ...lab.runtime, facts: failingFacts(lab) });
    expect(failed).toMatchObject({ status: 503, body: { error: expect.stringMatching(/record job .* failed: 503 Server Busy/) }, headers: { "retry-after": "60" } });
    expect(lab.queue.length).toBe(0);
    expect(await facts(lab)).toEqual([]);
    const redelivered = await deliver(lab, delivery);
    expect(redelivered).toMatchObject({ status: 202, body: { recorded: "ended" } });
    await lab.settle();
    expect(dispatchedPairs(lab)).toEqual(["vm-25-26"]);
  });

  it("answers 503 when the reconcile cannot be queued, and a redelivery (a duplicate by then) queues it", async () => {
    lab = await start();
    await cleanLab(lab);
    const perf = perfRun(lab, [vmRunnerName("vm-25-26")], "completed");
    const delivery = await signedDelivery(workflowJobPayload("completed", { runnerName: "VM-25-26", runId: perf.id, completedAt: lab.now.value.toISOString() }));
    const failed = await deliver(lab, delivery, { ...lab.runtime, queue: failingQueue });
    expect(failed).toMatchObject({ status: 503, body: { error: expect.stringMatching(/queue a reconcile .* failed/) }, headers: { "retry-after": "60" } });
    expect(lab.queue.length).toBe(0);
    const redelivered = await deliver(lab, delivery);
    expect(redelivered).toMatchObject({ status: 200, body: { duplicate: true, reconcile: "queued" } });
    expect(lab.queue.length).toBe(1);
    await lab.settle();
    expect(dispatchedPairs(lab)).toEqual(["vm-25-26"]);
  });

  it("records a job of another allowed repository from the delivery itself; the reconcile resets the pair", async () => {
    lab = await start({ ALLOWED_REPOSITORIES: "microsoft/netperf, microsoft/msquic" });
    await cleanLab(lab);
    const payload = workflowJobPayload("completed", { repository: "microsoft/msquic", runnerName: "VM-11-12", runId: 4242, completedAt: lab.now.value.toISOString() });
    const requests = lab.github.requests.length;
    const response = await deliver(lab, await signedDelivery(payload));
    expect(response).toMatchObject({ status: 202, body: { runId: 4242, recorded: "ended", reconcile: "queued" } });
    expect(lab.github.requests.length).toBe(requests);
    expect(resultOf(await lab.settle(), "vm-11-12")).toMatchObject({ decision: "reset-dispatched" });
    expect(dispatchedPairs(lab)).toEqual(["vm-11-12"]);
    expect(await stored(lab, "vm-11-12")).toMatchObject({ lastJobRunId: 4242 });
  });
});

describe("the hand-over to the reconcile", () => {
  // Azure Queue Storage stamps insertion times to the second (RFC 1123), so a delivery's message
  // may carry the very insertion time of the message a reconcile has just served, although its
  // fact was recorded after that reconcile read the facts. The test's frozen clock is that second.
  it("reconciles a delivery whose message carries the same insertion time as the message the reconcile before it served", async () => {
    lab = await start();
    await cleanLab(lab, 0);
    const response = await deliver(lab, await signedDelivery(workflowJobPayload("in_progress", { runnerName: "VM-42-43", runId: 61, startedAt: lab.now.value.toISOString() })));
    expect(response).toMatchObject({ status: 202, body: { reconcile: "queued" } });
    const result = await lab.settle();
    expect(result, "the delivery's message was taken as covered by the timer's reconcile").not.toBeNull();
    expect(resultOf(result, "vm-42-43")).toMatchObject({ state: "busy", decision: "deferred-busy" });
    expect(await stored(lab, "vm-42-43")).toMatchObject({ state: "busy", lastJobRunId: 61 });
  });
});

describe("deliveries that concern no pair", () => {
  it("drops GitHub's recorded payloads of a GitHub-hosted job: nothing recorded, no reconcile, no GitHub request", async () => {
    lab = await start();
    await cleanLab(lab);
    const before = lab.github.requests.length;
    for (const action of ["in_progress", "completed"] as const) {
      const payload = workflowJobPayload(action, { completedAt: lab.now.value.toISOString() }); // runner "GitHub Actions 5", as recorded
      const response = await deliver(lab, await signedDelivery(payload));
      expect(response).toMatchObject({ status: 202, body: { runner: "GitHub Actions 5", ignored: "a GitHub-hosted runner is never a lab runner" } });
    }
    expect(lab.queue.length).toBe(0);
    expect(await lab.runtime.facts.listSince(new Date(0))).toEqual([]);
    expect(lab.github.requests.length).toBe(before);
  });

  it("records a host job's start without a look, and looks at its end (a reset step, or a host freed)", async () => {
    const l = (lab = await start());
    const hostJob = (action: "in_progress" | "completed") => {
      const payload = workflowJobPayload(action, { runnerName: "NETPERF-WIN-01", runId: 77, jobId: 7_701, startedAt: l.now.value.toISOString(), completedAt: action === "completed" ? l.now.value.toISOString() : null });
      payload.workflow_job.labels = ["self-hosted", l.config.pairs[0]!.hosts[0]!.runnerLabel];
      return payload;
    };
    expect(await deliver(lab, await signedDelivery(hostJob("in_progress")))).toMatchObject({ status: 202, body: { recorded: "started", reconcile: "not needed (a host job started)" } });
    expect(lab.queue.length).toBe(0);
    expect(await deliver(lab, await signedDelivery(hostJob("completed")))).toMatchObject({ status: 202, body: { recorded: "ended", reconcile: "queued" } });
    expect(lab.queue.length).toBe(1);
  });

  it("acknowledges queued and waiting jobs, jobs that never reached a runner, and pings, writing and queueing nothing and reading no GitHub", async () => {
    lab = await start();
    const ignored = [
      workflowJobPayload("queued", { runnerName: "VM-25-26" }),
      workflowJobPayload("waiting", { runnerName: "VM-25-26" }),
      workflowJobPayload("in_progress", { runnerName: null }),
      workflowJobPayload("completed", { runnerName: null }),
      // A queued job cancelled before it started, as GitHub may send it: no runner is "" and 0.
      { ...workflowJobPayload("completed", { runnerName: "" }), workflow_job: { ...workflowJobPayload("completed", { runnerName: "" }).workflow_job, runner_id: 0, conclusion: "cancelled" } },
    ];
    const answers = await Promise.all(ignored.map(async (payload) => deliver(lab!, await signedDelivery(payload))));
    expect(answers).toMatchObject([
      { status: 202, body: { ignored: expect.stringMatching(/queued/) } },
      { status: 202, body: { ignored: expect.stringMatching(/waiting/) } },
      { status: 202, body: { ignored: expect.stringMatching(/never reached a runner/) } },
      { status: 202, body: { ignored: expect.stringMatching(/never reached a runner/) } },
      { status: 202, body: { ignored: expect.stringMatching(/never reached a runner/) } },
    ]);
    const ping = await deliver(lab, await signedDelivery({ zen: "Keep it logically awesome.", hook_id: 1 }, { event: "ping" }));
    expect(ping).toMatchObject({ status: 200, body: { ok: true } });
    expect(lab.github.requests).toHaveLength(0);
    expect(await facts(lab)).toEqual([]);
    expect(lab.queue.length).toBe(0);
    expect(await lab.runtime.store.listPairs()).toEqual([]);
  });
});

describe("rotating the webhook secret", () => {
  const NEW_SECRET = "new-webhook-secret-8c3e1a7f2b9d";
  it("accepts deliveries signed with either of two comma-separated secrets, and refuses a third", async () => {
    lab = await start({ GITHUB_WEBHOOK_SECRET: `${NEW_SECRET}, ${WEBHOOK_SECRET}` });
    const payload = (jobId: number) => workflowJobPayload("completed", { runnerName: "VM-25-26", runId: 40 + jobId, jobId, completedAt: lab!.now.value.toISOString() });
    expect(await deliver(lab, await signedDelivery(payload(1), { secret: NEW_SECRET }))).toMatchObject({ status: 202 });
    expect(await deliver(lab, await signedDelivery(payload(2)))).toMatchObject({ status: 202 });
    expect(await deliver(lab, await signedDelivery(payload(3), { secret: "a-third-secret-nobody-configured" }))).toMatchObject({ status: 401 });
    expect(await facts(lab)).toHaveLength(2);
  });

  it("stops start-up on three secrets or a short one, naming the setting", async () => {
    const { readSettings } = await import("../shared/settings.js");
    expect(() => readSettings({ GITHUB_WEBHOOK_SECRET: `${NEW_SECRET},${WEBHOOK_SECRET},${NEW_SECRET}x` })).toThrow(/GITHUB_WEBHOOK_SECRET holds at most two secrets/);
    expect(() => readSettings({ GITHUB_WEBHOOK_SECRET: `${NEW_SECRET},short` })).toThrow(/GITHUB_WEBHOOK_SECRET must be at least 16 characters \(each, when two\)/);
  });
});
