import { afterEach, describe, expect, it } from "vitest";
import * as handlers from "../shared/triggers/job-completed.js";
import { silentLogger } from "../shared/logger.js";
import { githubWebhook } from "../shared/triggers/webhook.js";
import { finishReset, perfRun, startTestLab, vmRunnerName, type TestLab } from "./support/lab.js";
import { signedDelivery, WEBHOOK_SECRET, workflowJobPayload } from "./support/webhook-deliveries.js";

let lab: TestLab | undefined;
afterEach(async () => {
  await lab?.close();
  lab = undefined;
});

const start = (settings: Record<string, string> = {}) => startTestLab({ settings: { GITHUB_WEBHOOK_SECRET: WEBHOOK_SECRET, ...settings } });
const deliver = async (l: TestLab, delivery: Awaited<ReturnType<typeof signedDelivery>>) => githubWebhook(l.runtime, delivery, silentLogger);
const stored = async (l: TestLab, id: string) => (await l.runtime.store.getPair(id))?.record;
const dispatchedPairs = (l: TestLab) => l.github.dispatches.filter((d) => d.runId !== null).map((d) => d.inputs.pair);

/** Every pair reset once and clean, at the lab's clock. */
async function cleanLab(l: TestLab) {
  await handlers.scheduledReset(l.runtime, silentLogger);
  for (const d of l.github.dispatches) finishReset(l, d.runId!);
  l.advance(10);
  await handlers.scheduledReset(l.runtime, silentLogger);
  l.github.dispatches.length = 0;
}

describe("workflow_job in_progress", () => {
  it("marks the pair busy and ran-a-job at once, while GitHub's runner still reads idle", async () => {
    lab = await start();
    const startedAt = "2026-11-27T12:00:05Z";
    const response = await deliver(lab, await signedDelivery(workflowJobPayload("in_progress", { runnerName: "vm-25-26", runId: 777, startedAt })));
    expect(response).toMatchObject({ status: 202, body: { pair: "vm-25-26", applied: true, state: "busy" } });
    expect(await stored(lab, "vm-25-26")).toMatchObject({ state: "busy", jobSinceReset: true, lastJobRunId: 777, lastJobAt: "2026-11-27T12:00:05.000Z" });
    const events = await lab.runtime.store.listEvents("vm-25-26");
    expect(events.map((e) => [e.trigger, e.to])).toEqual([["webhook", "busy"]]);
    expect(lab.github.dispatches).toHaveLength(0);
  });

  it("answers a repeated delivery as a duplicate without writing again", async () => {
    lab = await start();
    const delivery = await signedDelivery(workflowJobPayload("in_progress", { runnerName: "VM-05-10", runId: 31 }));
    expect((await deliver(lab, delivery)).status).toBe(202);
    const first = await lab.runtime.store.getPair("vm-05-10");
    const again = await deliver(lab, delivery);
    expect(again).toMatchObject({ status: 200, body: { duplicate: true, pair: "vm-05-10" } });
    expect((await lab.runtime.store.getPair("vm-05-10"))?.etag).toBe(first?.etag);
  });

  it("lets no job that started earlier overwrite the newer job the pair records (out-of-order deliveries)", async () => {
    lab = await start();
    await deliver(lab, await signedDelivery(workflowJobPayload("in_progress", { runnerName: "VM-42-43", runId: 52, jobId: 9002, startedAt: "2026-11-27T12:10:00Z" })));
    const older = await deliver(lab, await signedDelivery(workflowJobPayload("in_progress", { runnerName: "VM-42-43", runId: 51, jobId: 9001, startedAt: "2026-11-27T12:05:00Z" })));
    expect(older).toMatchObject({ status: 202, body: { applied: false } });
    expect(await stored(lab, "vm-42-43")).toMatchObject({ lastJobRunId: 52, lastJobAt: "2026-11-27T12:10:00.000Z" });
  });

  it("keeps a reset in flight followed, and makes the pair dirty again when the reset ends", async () => {
    lab = await start();
    await handlers.scheduledReset(lab.runtime, silentLogger);
    const reset = lab.github.dispatches.find((d) => d.inputs.pair === "vm-25-26")!;
    const response = await deliver(lab, await signedDelivery(workflowJobPayload("in_progress", { runnerName: "VM-25-26", runId: 88, startedAt: "2026-11-27T12:01:00Z" })));
    expect(response).toMatchObject({ status: 202, body: { applied: true, state: "resetting" } });
    expect(await stored(lab, "vm-25-26")).toMatchObject({ state: "resetting", resetRunId: reset.runId, jobSinceReset: true, lastJobRunId: 88 });
    finishReset(lab, reset.runId!);
    lab.advance(5);
    // GitHub does not show job 88 at all, but the webhook said it started: the pair stays busy.
    const held = await handlers.scheduledReset(lab.runtime, silentLogger);
    expect(held.pairs.find((p) => p.id === "vm-25-26")).toMatchObject({ state: "busy", decision: "deferred-busy" });
    lab.advance(15);
    const next = await handlers.scheduledReset(lab.runtime, silentLogger);
    expect(next.pairs.find((p) => p.id === "vm-25-26")).toMatchObject({ decision: "reset-dispatched" });
  });

  it("holds a pair busy for a job that started just before its reset was requested (the job a lagging busy flag hid)", async () => {
    lab = await start();
    await handlers.scheduledReset(lab.runtime, silentLogger); // resets requested at 12:00
    const response = await deliver(lab, await signedDelivery(workflowJobPayload("in_progress", { runnerName: "VM-11-12", runId: 5, startedAt: "2026-11-27T11:59:58Z" })));
    expect(response).toMatchObject({ status: 202, body: { applied: true, state: "resetting" } });
    expect(await stored(lab, "vm-11-12")).toMatchObject({ state: "resetting", busyRunId: 5, jobSinceReset: true });
  });

  it("ignores a job end from before the pair's last reset was requested", async () => {
    lab = await start();
    await handlers.scheduledReset(lab.runtime, silentLogger); // resets requested at 12:00
    const before = await lab.runtime.store.getPair("vm-11-12");
    const perf = perfRun(lab, [vmRunnerName("vm-11-12")], "completed");
    const payload = workflowJobPayload("completed", { runnerName: "VM-11-12", runId: perf.id, completedAt: "2026-11-27T11:58:00Z" });
    const response = await deliver(lab, await signedDelivery(payload));
    expect(response).toMatchObject({ status: 202, body: { applied: false } });
    expect((await lab.runtime.store.getPair("vm-11-12"))?.etag).toBe(before?.etag);
  });
});

describe("workflow_job completed", () => {
  it("runs the job-completed reconcile: the pair the job ran on is reset, recorded as a webhook trigger", async () => {
    lab = await start();
    await cleanLab(lab);
    const perf = perfRun(lab, [vmRunnerName("vm-42-43")], "completed");
    const payload = workflowJobPayload("completed", { runnerName: "VM-42-43", runId: perf.id, completedAt: lab.now.value.toISOString() });
    const response = await deliver(lab, await signedDelivery(payload));
    expect(response).toMatchObject({ status: 202, body: { applied: true, pairs: [{ id: "vm-42-43", decision: "reset-dispatched" }] } });
    expect(dispatchedPairs(lab)).toEqual(["vm-42-43"]);
    expect((await lab.runtime.store.listEvents("vm-42-43", 2)).map((e) => [e.kind, e.trigger])).toEqual([
      ["dispatch", "webhook"],
      ["state", "webhook"],
    ]);
  });

  it("changes nothing for a job that ended before the pair's last reset was requested", async () => {
    lab = await start();
    await handlers.scheduledReset(lab.runtime, silentLogger);
    const perf = perfRun(lab, [vmRunnerName("vm-05-10")], "completed");
    const response = await deliver(lab, await signedDelivery(workflowJobPayload("completed", { runnerName: "VM-05-10", runId: perf.id, completedAt: "2026-11-27T11:30:00Z" })));
    expect(response).toMatchObject({ status: 202, body: { applied: false } });
    expect(lab.github.dispatches).toHaveLength(4);
    expect(lab.github.requests.some((r) => r.path.endsWith(`/runs/${perf.id}`))).toBe(false);
  });

  it("forgets a delivery whose handling failed, so that GitHub's redelivery is handled", async () => {
    lab = await start();
    const perf = perfRun(lab, [vmRunnerName("vm-25-26")], "completed");
    const delivery = await signedDelivery(workflowJobPayload("completed", { runnerName: "VM-25-26", runId: perf.id, completedAt: lab.now.value.toISOString() }));
    // Three answers of 500: the first read and both of the client's retries.
    lab.github.fail({ path: `/repos/microsoft/netperf/actions/runs/${perf.id}` }, { status: 500 }, 3);
    const failed = await deliver(lab, delivery);
    expect(failed).toMatchObject({ status: 503, body: { error: expect.stringMatching(/500/) } });
    expect(lab.github.dispatches).toHaveLength(0);
    const redelivered = await deliver(lab, delivery);
    expect(redelivered.status).toBe(202);
    expect(dispatchedPairs(lab)).toContain("vm-25-26");
  });

  it("notes a job of another allowed repository from the delivery itself, then reconciles", async () => {
    lab = await start({ ALLOWED_REPOSITORIES: "microsoft/netperf, microsoft/msquic" });
    await cleanLab(lab);
    const payload = workflowJobPayload("completed", { repository: "microsoft/msquic", runnerName: "VM-11-12", runId: 4242, completedAt: lab.now.value.toISOString() });
    const response = await deliver(lab, await signedDelivery(payload));
    expect(response).toMatchObject({ status: 202, body: { applied: true, pairs: [{ id: "vm-11-12", decision: "reset-dispatched" }] } });
    expect(dispatchedPairs(lab)).toEqual(["vm-11-12"]);
    expect(await stored(lab, "vm-11-12")).toMatchObject({ lastJobRunId: 4242 });
  });
});

describe("deliveries that concern no pair", () => {
  it("acknowledges GitHub's recorded completed payload of a GitHub-hosted job and changes nothing", async () => {
    lab = await start();
    const payload = workflowJobPayload("completed"); // runner "GitHub Actions 5", as recorded
    const response = await deliver(lab, await signedDelivery(payload));
    expect(response).toMatchObject({ status: 202, body: { ignored: expect.stringMatching(/GitHub Actions 5 is not the VM runner/) } });
    expect(await lab.runtime.store.listPairs()).toEqual([]);
    expect(lab.github.dispatches).toHaveLength(0);
  });

  it("acknowledges queued jobs and pings without reading GitHub", async () => {
    lab = await start();
    expect(await deliver(lab, await signedDelivery(workflowJobPayload("queued", { runnerName: "VM-25-26" })))).toMatchObject({ status: 202, body: { ignored: expect.stringMatching(/queued/) } });
    const ping = await deliver(lab, await signedDelivery({ zen: "Keep it logically awesome.", hook_id: 1 }, { event: "ping" }));
    expect(ping).toMatchObject({ status: 200, body: { ok: true } });
    expect(lab.github.requests).toHaveLength(0);
    expect(await lab.runtime.store.listPairs()).toEqual([]);
  });
});
