/**
 * What an operator reads when something fails (issue 4, item 6): one structured summary line per
 * reconcile, and every error naming the pair and the GitHub or Table Storage call that failed.
 */
import { afterEach, describe, expect, it } from "vitest";
import type { Logger } from "../shared/logger.js";
import { ReconcileWorker } from "../shared/reconcile/worker.js";
import type { PairStore } from "../shared/storage/tables.js";
import { scheduledReset } from "../shared/triggers/timer.js";
import { finishReset, perfRun, seedConfig, startTestLab, vmRunnerName, type TestLab } from "./support/lab.js";

let lab: TestLab | undefined;
afterEach(async () => {
  await lab?.close();
  lab = undefined;
});

function capturingLogger() {
  const lines: string[] = [];
  const errors: string[] = [];
  const logger: Logger = {
    info: (m: string) => lines.push(m),
    warn: (m: string) => errors.push(m),
    error: (m: string) => errors.push(m),
  };
  const summaries = () => lines.filter((l) => l.startsWith("reconcile {")).map((l) => JSON.parse(l.slice("reconcile ".length)));
  return { logger, lines, errors, summaries };
}

const seedPairs = seedConfig.pairs.map((p) => p.id);

describe("the reconcile summary line", () => {
  it("is logged once per reconcile with the trigger, pairs per state, dispatches, GitHub requests, rate-limit remaining and duration", async () => {
    const log = capturingLogger();
    lab = await startTestLab({ logger: log.logger });
    lab.github.clearRequests();
    await lab.timer();
    const [timer] = log.summaries();
    expect(log.summaries()).toHaveLength(1);
    expect(timer).toEqual({
      trigger: "timer",
      ok: true,
      pairs: { resetting: 4 },
      dispatches: 4,
      githubRequests: lab.github.requests.length,
      charged: lab.github.requests.filter((r) => r.status !== 304).length,
      notModified: expect.any(Number),
      rateLimitRemaining: expect.any(Number),
      durationMs: expect.any(Number),
      // The look due at the resets' time limit (30 minutes, and a few seconds).
      nextLookAt: new Date(lab.now.value.getTime() + 30 * 60_000 + 5_000).toISOString(),
    });
    expect(timer.rateLimitRemaining).toBeLessThan(5000);

    lab.advance(1);
    const perf = perfRun(lab, [vmRunnerName("vm-42-43")], "completed");
    await lab.jobCompleted(JSON.stringify({ repository: "microsoft/netperf", runId: perf.id }));
    // The call names its run; the reconcile it queued logs its own summary.
    expect(log.lines).toContain(`job-completed: run ${perf.id} recorded (1 job ends); a reconcile is queued`);
    expect(log.summaries()).toHaveLength(2);
    expect(log.summaries()[1]).toMatchObject({ trigger: "job-completed", ok: true, pairs: { resetting: 4 }, dispatches: 0 });
  });

  it("is logged, not ok, when the pairs' records cannot be listed, and the reconcile is retried later with an alert", async () => {
    const log = capturingLogger();
    lab = await startTestLab({ logger: log.logger });
    const store: PairStore = { ...lab.runtime.store, listPairs: () => Promise.reject(new Error("Table Storage list labresetPairs failed: 503 Service Unavailable")) };
    const worker = new ReconcileWorker(() => ({ ...lab!.runtime, store }));
    await scheduledReset(lab.runtime, log.logger);
    const [queued] = lab.queue.takeAll();
    // An outage is not a poison message: the reconcile looks again later, as a timer, from a delayed retry.
    await expect(worker.serve(queued!, log.logger)).resolves.toMatchObject({ served: "retry-later", attempt: 1, queued: true });
    expect(log.summaries()).toEqual([expect.objectContaining({ trigger: "timer", ok: false, dispatches: 0 })]);
    expect(log.errors).toContainEqual(expect.stringMatching(/^lab-reset alert reconcile-failed: reconcile \(timer, 1 message, try 1\) failed: .*list labresetPairs failed.*; looking again in 1 min/));
    expect(lab.queue.takeAll()).toEqual([]);
    lab.advance(1);
    expect(lab.queue.takeAll().map((q) => q.message)).toEqual([expect.objectContaining({ trigger: "timer", retry: expect.objectContaining({ attempt: 1 }) })]);
  });
});

describe("error lines", () => {
  it("are none when nothing failed, 304 answers to conditional requests included", async () => {
    const log = capturingLogger();
    lab = await startTestLab({ logger: log.logger });
    log.errors.length = 0; // start-up's warning that OIDC is off in tests
    await lab.timer();
    lab.advance(5);
    await lab.timer();
    expect(lab.github.requests.some((r) => r.status === 304)).toBe(true);
    expect(log.errors).toEqual([]);
  });

  it("name the pair and the GitHub call when a dispatch fails", async () => {
    const log = capturingLogger();
    lab = await startTestLab({ logger: log.logger });
    lab.github.fail({ method: "POST", path: /\/dispatches$/ }, { status: 500 }, 1);
    await expect(lab.timer()).rejects.toThrow(/not reconciled/);
    expect(log.errors.join("\n")).toMatch(/pair vm-25-26: GitHub POST \/repos\/microsoft\/netperf\/actions\/workflows\/lab-reset\.yml\/dispatches failed with 500/);
  });

  it("name the pairs left alone and the GitHub call when the lab's runners cannot be read", async () => {
    const log = capturingLogger();
    lab = await startTestLab({ logger: log.logger });
    lab.github.fail({ path: "/repos/microsoft/netperf/actions/runners" }, { status: 502 }, 10);
    await expect(lab.timer()).rejects.toThrow(/not reconciled/);
    const failing = log.errors.filter((l) => /GET \/repos\/microsoft\/netperf\/actions\/runners failed with 502/.test(l));
    expect(failing.length).toBeGreaterThan(0);
    for (const pair of seedPairs) expect(failing.join("\n")).toContain(pair);
  });

  it("name the pair and the GitHub call when its reset run cannot be read", async () => {
    const log = capturingLogger();
    lab = await startTestLab({ logger: log.logger });
    await lab.timer();
    const run = lab.github.dispatches.find((d) => d.inputs.pair === "vm-11-12")!.runId!;
    // A reset in flight is read by its jobs first.
    lab.github.fail({ path: `/repos/microsoft/netperf/actions/runs/${run}/jobs` }, { status: 502 }, 10);
    lab.advance(1);
    await expect(lab.timer()).rejects.toThrow(/not reconciled/);
    expect(log.errors.join("\n")).toMatch(new RegExp(`pair vm-11-12: .*GitHub GET /repos/microsoft/netperf/actions/runs/${run}/jobs failed with 502`));
  });

  it("name the pair, its error and the next try when a reset fails, and say so when the pair is given up", async () => {
    const log = capturingLogger();
    lab = await startTestLab({ config: { ...seedConfig, maxResetAttempts: 1 }, logger: log.logger });
    await lab.timer();
    const run = lab.github.dispatches.find((d) => d.inputs.pair === "vm-05-10")!.runId!;
    finishReset(lab, run, "failure");
    for (const d of lab.github.dispatches) if (d.runId !== run) finishReset(lab, d.runId!);
    lab.advance(10);
    await lab.timer();
    expect(log.errors.join("\n")).toMatch(new RegExp(`pair vm-05-10: .*reset run ${run} ended with conclusion "failure".*gave up after 1 failed resets`));
  });
});
