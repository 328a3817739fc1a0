/**
 * The capacity report of a lab driven through the GitHub stand-in, the app's own triggers and
 * Azurite's tables: jobs queued, started and finished at known times, resets reported when the
 * test says. The test computes the figures itself from those times and the report must agree.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { report as reportRoute } from "../shared/admin/report.js";
import { silentLogger } from "../shared/logger.js";
import { ReportSchema, type Report } from "../shared/report/report.js";
import { githubWebhook } from "../shared/triggers/webhook.js";
import { reportReset, startTestLab, seedConfig, shippedConfig, vmRunnerName, type TestLab } from "./support/lab.js";
import { readReport } from "../shared/report/read.js";
import { percentile } from "../shared/report/percentile.js";
import { simulate } from "../shared/sim/simulate.js";
import { seedProfile } from "../shared/sim/workload.js";
import { signedDelivery, WEBHOOK_SECRET } from "./support/webhook-deliveries.js";

const WINDOWS = ["self-hosted", "lab", "os-windows-2022"];
const LINUX = ["self-hosted", "lab", "os-linux"];

describe("GET /api/report of a lab run through the stand-in", () => {
  let lab: TestLab;
  let report: Report;
  const at = (hhmm: string) => {
    const target = new Date(`2026-11-27T${hhmm}:00.000Z`).getTime();
    lab.advance((target - lab.now.value.getTime()) / 60_000);
  };
  const deliver = async (jobId: number, action: "queued" | "in_progress" | "completed", settle = true) => {
    const delivery = await signedDelivery(lab.github.model.workflowJobEvent(jobId, action));
    const answer = await githubWebhook(lab.runtime, delivery, silentLogger);
    expect(answer.status).toBeLessThan(300);
    if (settle) await lab.settle();
  };
  const queue = async (labels: string[]) => {
    const run = lab.github.addRun({ name: "perf", status: "queued", jobs: [{ name: "perf", status: "queued", runnerName: null, labels }] });
    const jobId = Number(lab.github.jobsOf(Number(run.id))[0]!.id);
    await deliver(jobId, "queued");
    return { runId: Number(run.id), jobId };
  };
  const start = (job: { runId: number; jobId: number }, pairId: string, settle = true) => {
    lab.github.setRun(job.runId, { status: "in_progress" });
    lab.github.setJob(job.jobId, { status: "in_progress", runnerName: vmRunnerName(pairId) });
    return deliver(job.jobId, "in_progress", settle);
  };
  const finish = async (job: { runId: number; jobId: number }, settle = true) => {
    lab.github.setJob(job.jobId, { status: "completed", conclusion: "success" });
    lab.github.setRun(job.runId, { status: "completed", conclusion: "success" });
    await deliver(job.jobId, "completed", settle);
  };
  const resetRunOf = async (pairId: string) => (await lab.runtime.store.getPair(pairId))!.record.resetRunId!;

  beforeAll(async () => {
    lab = await startTestLab({ config: seedConfig, settings: { GITHUB_WEBHOOK_SECRET: WEBHOOK_SECRET } });
    // 12:00 every (new, so dirty) pair is reset; the resets end at 12:10.
    await lab.timer();
    const first = await Promise.all(seedConfig.pairs.map((p) => resetRunOf(p.id)));
    at("12:10");
    for (const runId of first) await reportReset(lab, runId);

    at("12:20");
    const a = await queue(WINDOWS);
    const b = await queue(LINUX);
    at("12:30");
    await start(a, "vm-25-26");
    at("12:35");
    const d = await queue(WINDOWS);
    at("12:40");
    await start(d, "vm-42-43");
    at("12:41");
    const e = await queue(WINDOWS);
    // D ends and E starts on the same VM before any reconcile: E starts on a used VM.
    at("12:45");
    await finish(d, false);
    at("12:46");
    await start(e, "vm-42-43");
    at("12:50");
    await start(b, "vm-05-10");
    at("13:00");
    await finish(a);
    at("13:10");
    await reportReset(lab, await resetRunOf("vm-25-26"));
    at("13:15");
    await finish(e);
    at("13:20");
    await finish(b);
    at("13:25");
    await reportReset(lab, await resetRunOf("vm-42-43"));
    at("13:30");
    await reportReset(lab, await resetRunOf("vm-05-10"));
    at("14:00");
    const answer = await reportRoute(lab.runtime, "1", silentLogger);
    expect(answer.status).toBe(200);
    report = ReportSchema.parse(answer.body);
  });
  afterAll(() => lab?.close());

  it("counts the perf jobs and the one that started on a used VM", () => {
    expect(report.jobs).toEqual({ count: 4, dirtyStarts: 1, killedByReset: 0 });
    expect(report.from).toBe("2026-11-26T14:00:00.000Z");
    expect(report.to).toBe("2026-11-27T14:00:00.000Z");
  });

  it("gives each job's queue wait from GitHub's queue and start times, overall and per label set", () => {
    // A 10 min, B 30 min, D 5 min, E 5 min; nearest rank.
    expect(report.queueWaitSeconds).toMatchObject({ p50: 300, p95: 1800 });
    expect(report.queueWaitSeconds.byLabels).toEqual([
      { labels: "lab, os-windows-2022, self-hosted", jobs: 3, p50: 300, p95: 600 },
      { labels: "lab, os-linux, self-hosted", jobs: 1, p50: 1800, p95: 1800 },
    ]);
    expect(report.queueWaitSeconds.byHour).toEqual([{ hour: "2026-11-27T12:00:00.000Z", jobs: 4, p95: 1800 }]);
  });

  it("counts the resets and their time from dispatch to the recorded end", () => {
    expect(report.resets).toEqual({ ok: 7, failed: 0, secondsP50: 600, secondsP95: 600 });
  });

  it("splits each pair's recorded time into busy, resetting and clean idle, adding up to 1", () => {
    const recorded = 2 * 3600; // from the first record at 12:00 to 14:00
    const expected: Record<string, { busy: number; resetting: number; cleanIdle: number; jobs: number; resets: number }> = {
      "vm-25-26": { busy: 1800, resetting: 1200, cleanIdle: 4200, jobs: 1, resets: 2 },
      "vm-05-10": { busy: 1800, resetting: 1200, cleanIdle: 4200, jobs: 1, resets: 2 },
      // D 12:40-12:45, the minute the record still said busy, then E 12:46-13:15.
      "vm-42-43": { busy: 2100, resetting: 1200, cleanIdle: 3900, jobs: 2, resets: 2 },
      "vm-11-12": { busy: 0, resetting: 600, cleanIdle: 6600, jobs: 0, resets: 1 },
    };
    for (const pair of report.pairs) {
      const want = expected[pair.id]!;
      expect(pair.recordedSeconds, pair.id).toBe(recorded);
      expect(pair.busyShare, `${pair.id} busy`).toBeCloseTo(want.busy / recorded, 6);
      expect(pair.resettingShare, `${pair.id} resetting`).toBeCloseTo(want.resetting / recorded, 6);
      expect(pair.cleanIdleShare, `${pair.id} clean idle`).toBeCloseTo(want.cleanIdle / recorded, 6);
      expect(pair.outOfRoutingIdleShare + pair.offlineShare, pair.id).toBeCloseTo(0, 6);
      expect(pair.busyShare + pair.resettingShare + pair.outOfRoutingIdleShare + pair.cleanIdleShare + pair.offlineShare).toBeCloseTo(1, 9);
      expect(pair.jobs, pair.id).toBe(want.jobs);
      expect(pair.resets, pair.id).toEqual({ ok: want.resets, failed: 0 });
    }
  });

  it("refuses a window longer than historyDays, in one line", async () => {
    const answer = await reportRoute(lab.runtime, "31", silentLogger);
    expect(answer.status).toBe(400);
    expect((answer.body as { error: string }).error).toMatch(/^days must be a whole number from 1 to 30 \(historyDays/);
  });
});

describe("history is a helper", () => {
  it("a delivery whose history write fails is still recorded and answered, and the failure is logged", async () => {
    const warnings: string[] = [];
    const logger = { ...silentLogger, warn: (m: string) => void warnings.push(m) };
    const lab = await startTestLab({ config: seedConfig, settings: { GITHUB_WEBHOOK_SECRET: WEBHOOK_SECRET } });
    try {
      lab.runtime.history = { ...lab.runtime.history, recordJobs: () => Promise.reject(new Error("503 Service Unavailable")) };
      const run = lab.github.addRun({ name: "perf", jobs: [{ name: "perf", status: "in_progress", runnerName: vmRunnerName("vm-25-26"), labels: WINDOWS }] });
      const jobId = Number(lab.github.jobsOf(Number(run.id))[0]!.id);
      const answer = await githubWebhook(lab.runtime, await signedDelivery(lab.github.model.workflowJobEvent(jobId, "in_progress")), logger);
      expect(answer.status).toBe(202);
      expect(await lab.runtime.facts.listSince(new Date(0))).toHaveLength(1);
      expect(warnings).toEqual([expect.stringMatching(/^githubWebhook: job \d+ not written to the history \(the report will miss it\): 503/)]);
    } finally {
      await lab.close();
    }
  });

  it("a job queued for GitHub's own runners is not written", async () => {
    const lab = await startTestLab({ config: seedConfig, settings: { GITHUB_WEBHOOK_SECRET: WEBHOOK_SECRET } });
    try {
      const run = lab.github.addRun({ name: "build", status: "queued", jobs: [{ name: "build", status: "queued", runnerName: null, labels: ["ubuntu-latest"] }] });
      const jobId = Number(lab.github.jobsOf(Number(run.id))[0]!.id);
      await githubWebhook(lab.runtime, await signedDelivery(lab.github.model.workflowJobEvent(jobId, "queued")), silentLogger);
      expect((await lab.runtime.history.read(new Date(0))).jobs).toEqual([]);
    } finally {
      await lab.close();
    }
  });
});

describe("the report of a simulated week agrees with the simulator's own count", () => {
  // The simulator knows what really happened on each VM; the report knows only what the app recorded.
  it.each(["lab-reset", "lab-reset-calls"] as const)("%s: jobs, dirty starts, kills and queue wait", async (policy) => {
    const days = 7;
    const result = await simulate({ profile: seedProfile(shippedConfig), policy, seed: 1, days });
    const { runtime } = result.app!;
    const report = await readReport({ ...runtime, clock: () => new Date(result.end) }, days);
    const m = result.metrics;
    expect(report.jobs).toEqual({ count: m.perfJobsStarted, dirtyStarts: m.dirtyStarts, killedByReset: m.killed });
    // GitHub's times are whole seconds; the simulator's are milliseconds.
    expect(Math.abs(report.queueWaitSeconds.p50 - percentile(m.queueWaitMinutes, 50) * 60)).toBeLessThanOrEqual(1);
    expect(Math.abs(report.queueWaitSeconds.p95 - percentile(m.queueWaitMinutes, 95) * 60)).toBeLessThanOrEqual(1);
    if (policy === "lab-reset-calls") expect(m.dirtyStarts).toBeGreaterThan(0);
    // The benchmark's worker threads post the result without the app: the rest must cross a thread.
    expect(() => structuredClone({ ...result, app: undefined })).not.toThrow();
    expect(() => structuredClone(result)).toThrow();
  }, 60_000);
});
