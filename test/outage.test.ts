/**
 * Outages end in a reconcile, not a 6-hour hole: GitHub answers 500 for longer than the host's
 * own retry window (5 dequeues a minute apart, then poison), and the lab is reconciled within
 * 5 minutes of recovery with no timer firing, by one chain of retries however many deliveries
 * arrive meanwhile.
 */
import { afterEach, describe, expect, it } from "vitest";
import { silentLogger } from "../shared/logger.js";
import { MAX_DEQUEUE_COUNT, RETRY_DELAYS_MINUTES } from "../shared/reconcile/worker.js";
import { githubWebhook } from "../shared/triggers/webhook.js";
import { finishReset, startTestLab, type TestLab } from "./support/lab.js";
import { signedDelivery, WEBHOOK_SECRET, workflowJobPayload } from "./support/webhook-deliveries.js";

let lab: TestLab | undefined;
afterEach(async () => {
  await lab?.close();
  lab = undefined;
});

/** Every pair reset once and clean at 12:10. */
async function cleanLab(l: TestLab) {
  await l.timer();
  for (const d of l.github.dispatches) finishReset(l, d.runId!);
  l.advance(10);
  expect((await l.timer()).pairs.every((p) => p.state === "clean")).toBe(true);
  l.github.dispatches.length = 0;
}

const jobEnded = async (l: TestLab, jobId: number, runner: string) =>
  githubWebhook(l.runtime, await signedDelivery(workflowJobPayload("completed", { runnerName: runner, runId: 900 + jobId, jobId, completedAt: l.now.value.toISOString() })), silentLogger);

describe("outages longer than the host's retry window", () => {
  // 45 minutes, and the 6-hour gap between timers: the host's window was 5 dequeues a minute apart
  // (about 8 minutes with the client's retries). Longer ones only repeat the 4-minute retry (a day: ~60 s here).
  it.each([45, 6 * 60])("of %i minutes: reconciles within 5 minutes of recovery with no timer, keeps one chain of retries, and poisons nothing", async (outageMinutes) => {
    // The client's own retries take milliseconds of the wall clock, none of the test's: without them each failed look costs a third of the requests.
    lab = await startTestLab({ settings: { GITHUB_WEBHOOK_SECRET: WEBHOOK_SECRET }, githubClient: { retries: 0 } });
    await cleanLab(lab);
    expect(outageMinutes).toBeGreaterThan(MAX_DEQUEUE_COUNT * 2);
    const recoveryAt = lab.now.value.getTime() + outageMinutes * 60_000;
    lab.github.injectFault = () => (lab!.now.value.getTime() < recoveryAt ? { status: 500, body: { message: "Server Error" } } : undefined);

    // A job ends on vm-25-26 as the outage begins (its delivery needs no GitHub); more deliveries arrive early in it, none near its end.
    expect(await jobEnded(lab, 1, "VM-25-26")).toMatchObject({ status: 202 });
    let dispatchedAt: number | null = null;
    const lastDelay = RETRY_DELAYS_MINUTES.at(-1)!;
    for (let minute = 0; minute < outageMinutes + 10 && dispatchedAt === null; ) {
      if (minute % 7 === 3 && minute < 25) await jobEnded(lab, 100 + minute, "GitHub Actions 5");
      await lab.settle();
      if (lab.github.dispatches.some((d) => d.inputs.pair === "vm-25-26")) dispatchedAt = lab.now.value.getTime();
      // Minute by minute, but in the long middle of a long outage by the longest retry delay (each retry still runs when due).
      const step = minute >= 30 && minute < outageMinutes - 10 ? lastDelay : 1;
      lab.advance(step);
      minute += step;
    }

    expect(dispatchedAt, "the pair was never reset after the outage").not.toBeNull();
    expect(dispatchedAt! - recoveryAt).toBeLessThanOrEqual(5 * 60_000);
    expect(lab.trigger.poison).toEqual([]);
    // One chain: attempts numbered 1, 2, 3 … without gaps or repeats; the deliveries meanwhile queued no chain of their own.
    const retries = lab.trigger.outcomes.flatMap((o) => (o.served === "retry-later" && o.queued ? [o.attempt] : []));
    expect(retries).toEqual(retries.map((_, i) => i + 1));
    expect(retries.length).toBeLessThanOrEqual(RETRY_DELAYS_MINUTES.length + Math.ceil(outageMinutes / lastDelay));
  }, 60_000);

  it("a Table Storage outage (the queue still up) ends in a reconcile too, and poisons nothing", async () => {
    lab = await startTestLab({ settings: { GITHUB_WEBHOOK_SECRET: WEBHOOK_SECRET } });
    await cleanLab(lab);
    expect(await jobEnded(lab, 1, "VM-25-26")).toMatchObject({ status: 202 });
    const recoveryAt = lab.now.value.getTime() + 30 * 60_000;
    const down = () => lab!.now.value.getTime() < recoveryAt;
    // Every table call fails while down: pair records, facts and the coverage the worker reads first.
    const failing = <T extends object>(target: T): T =>
      new Proxy(target, {
        get: (t, property, receiver) => {
          const value: unknown = Reflect.get(t, property, receiver);
          if (typeof value !== "function") return value;
          return (...args: unknown[]) => (down() ? Promise.reject(new Error("Table Storage: 503 Server Busy")) : (value as (...a: unknown[]) => unknown).apply(t, args));
        },
      });
    const { store, facts, coverage } = lab.runtime;
    Object.assign(lab.runtime, { store: failing(store), facts: failing(facts), coverage: failing(coverage) });
    let dispatchedAt: number | null = null;
    for (let minute = 0; minute < 45 && dispatchedAt === null; minute++) {
      await lab.settle();
      if (lab.github.dispatches.some((d) => d.inputs.pair === "vm-25-26")) dispatchedAt = lab.now.value.getTime();
      lab.advance(1);
    }
    expect(dispatchedAt, "the pair was never reset after the outage").not.toBeNull();
    expect(dispatchedAt! - recoveryAt).toBeLessThanOrEqual(5 * 60_000);
    expect(lab.trigger.poison).toEqual([]);
  });

  it("a timer that failed in the outage is retried as a timer (its backstop and freshness rules run on recovery)", async () => {
    lab = await startTestLab();
    await cleanLab(lab);
    const recoveryAt = lab.now.value.getTime() + 20 * 60_000;
    lab.github.injectFault = () => (lab!.now.value.getTime() < recoveryAt ? { status: 503 } : undefined);
    await expect(lab.timer()).rejects.toThrow(/not reconciled/);
    const served: string[] = [];
    for (let minute = 0; minute < 30; minute++) {
      lab.advance(1);
      const result = await lab.settle();
      if (result) served.push(result.trigger);
    }
    expect(served[0]).toBe("timer");
  });
});
