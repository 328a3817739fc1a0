/** The simulator's GitHub semantics, which the benchmark's figures rest on. */
import { verify } from "@octokit/webhooks-methods";
import { afterEach, describe, expect, it, vi } from "vitest";
import { SimLab, type SimLabOptions, type SimRun, type WorkflowJobDelivery } from "../shared/sim/lab.js";
import { figures } from "../shared/sim/report.js";
import { simulate, type SimulationResult } from "../shared/sim/simulate.js";
import { useImmediateZeroTimeouts } from "../shared/sim/timers.js";
import { seedProfile } from "../shared/sim/workload.js";
import { GitHubStandin, labResetJobs, type StandinOptions } from "../shared/sim/github-standin.js";
import { seedConfig } from "./support/lab.js";

const start = new Date("2026-11-23T00:00:00.000Z");
const WINDOWS = ["self-hosted", "lab", "os-windows-2022"];
const pinned = (pairId: string) => ["self-hosted", "lab", pairId];
const SECRET = "sim-webhook-secret-0f9e8d7c6b5a";
let standin: GitHubStandin | undefined;
afterEach(async () => {
  await standin?.close();
  standin = undefined;
});

async function newLab(options: Partial<SimLabOptions> = {}, standinOptions: StandinOptions = {}) {
  let clock = () => start;
  standin = await GitHubStandin.start({ ...standinOptions, clock: () => clock() });
  const lab = new SimLab(standin, { config: seedConfig, osLabel: (p) => (p.id === "vm-11-12" ? "os-linux" : "os-windows-2022"), start, seed: 1, ...options });
  clock = lab.now;
  return { lab, standin };
}
const minutes = (n: number) => new Date(start.getTime() + n * 60_000);
const seconds = (n: number) => new Date(start.getTime() + n * 1000);
const jobsOf = (s: GitHubStandin, runId: number) => s.jobsOf(runId);
const runner = (s: GitHubStandin, name: string) => s.getRunner(name)!;
const api = (s: GitHubStandin, path: string, method: string, body?: unknown) =>
  fetch(`${s.url}/repos/${s.owner}/${s.repo}${path}`, {
    method,
    headers: { authorization: `token ${s.token}`, "content-type": "application/json" },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });

/** What the app does to quarantine a VM: edit its runner's labels through GitHub's REST API. */
async function editLabel(s: GitHubStandin, method: "POST" | "DELETE", runnerName: string, label: string) {
  const base = `/actions/runners/${runner(s, runnerName).id}/labels`;
  const response = method === "POST" ? await api(s, base, "POST", { labels: [label] }) : await api(s, `${base}/${encodeURIComponent(label)}`, "DELETE");
  expect(response.status).toBe(200);
}

/** The app's reset of one pair: a dispatch of lab-reset.yml, whose run the lab then runs. */
async function dispatchReset(lab: SimLab, s: GitHubStandin, pairId: string, onComplete?: (run: SimRun) => void): Promise<number> {
  const pair = seedConfig.pairs.find((p) => p.id === pairId)!;
  let runId = 0;
  s.onDispatch = (_dispatch, run) => {
    runId = Number(run.id);
    lab.adoptResetRun(runId, onComplete);
  };
  const inputs = { pair: pairId, hosts: JSON.stringify(pair.hosts), request_id: `req-${pairId}` };
  expect((await api(s, "/actions/workflows/lab-reset.yml/dispatches", "POST", { ref: "main", inputs })).status).toBe(204);
  return runId;
}

describe("simulated lab: assignment", () => {
  it("assigns a job only to an online, idle runner that has all of its labels", async () => {
    const { lab, standin } = await newLab();
    const linux = lab.addPerfRun([{ labels: ["self-hosted", "lab", "os-linux"], minutes: 30 }]);
    const one = lab.addPerfRun([{ labels: pinned("vm-42-43"), minutes: 30 }]);
    await lab.runUntil(minutes(1));
    expect(jobsOf(standin, linux.id)[0]).toMatchObject({ status: "in_progress", runner_name: "VM-11-12" });
    expect(jobsOf(standin, one.id)[0]).toMatchObject({ status: "in_progress", runner_name: "VM-42-43" });
    // No perf job ever lands on a host runner, which lacks the `lab` label.
    const windows = lab.addPerfRun(Array.from({ length: 5 }, () => ({ labels: WINDOWS, minutes: 30 })));
    await lab.runUntil(minutes(2));
    const names = jobsOf(standin, windows.id).map((j) => j.runner_name);
    expect(names.filter((n) => n !== null).sort()).toEqual(["VM-05-10", "VM-25-26"]);
  });

  it("keeps jobs queued until a runner frees up, then starts them in arrival order", async () => {
    const { lab, standin } = await newLab();
    const first = lab.addPerfRun([{ labels: pinned("vm-25-26"), minutes: 30 }]);
    const second = lab.addPerfRun([{ labels: pinned("vm-25-26"), minutes: 30 }]);
    await lab.runUntil(minutes(29));
    expect(jobsOf(standin, second.id)[0]).toMatchObject({ status: "queued", runner_name: null });
    await lab.runUntil(minutes(31));
    expect(jobsOf(standin, first.id)[0]!.status).toBe("completed");
    expect(jobsOf(standin, second.id)[0]).toMatchObject({ status: "in_progress", runner_name: "VM-25-26" });
    expect(lab.metrics.queueWaitMinutes).toEqual([0, 30]);
    // The second job ran on a VM nobody reset after the first.
    expect(lab.metrics.dirtyStarts).toBe(1);
  });

  it("assigns from the labels the stand-in holds: a VM without `lab` gets no `lab` job, which waits until `lab` is back", async () => {
    const { lab, standin } = await newLab();
    await editLabel(standin, "DELETE", "VM-25-26", "lab");
    const held = lab.addPerfRun([{ labels: pinned("vm-25-26"), minutes: 10 }]);
    const nowhere = lab.addPerfRun([{ labels: ["self-hosted", "lab", "os-macos"], minutes: 10 }]);
    const windows = lab.addPerfRun(Array.from({ length: 3 }, () => ({ labels: WINDOWS, minutes: 60 })));
    await lab.runUntil(minutes(30));
    expect(jobsOf(standin, held.id)[0]).toMatchObject({ status: "queued", runner_name: null });
    expect(jobsOf(standin, windows.id).map((j) => j.runner_name).sort()).toEqual(["VM-05-10", "VM-42-43", null]);
    // Labels compare case-insensitively.
    await editLabel(standin, "POST", "VM-25-26", "LAB");
    await lab.runUntil(minutes(31));
    // First come, first served: the held job was queued before the third Windows one.
    expect(jobsOf(standin, held.id)[0]).toMatchObject({ status: "in_progress", runner_name: "VM-25-26" });
    expect(jobsOf(standin, windows.id).filter((j) => j.status === "queued")).toHaveLength(1);
    expect(lab.metrics.queueWaitMinutes.at(-1)).toBe(30);
    expect(jobsOf(standin, nowhere.id)[0]!.status).toBe("queued");
  });

  it("lets a label edit change assignment only after the stand-in's effect delay", async () => {
    const { lab, standin } = await newLab({}, { labelEffectDelaySeconds: 60 });
    await editLabel(standin, "DELETE", "VM-42-43", "lab");
    const early = lab.addPerfRun([{ labels: pinned("vm-42-43"), minutes: 5 }]);
    await lab.runUntil(seconds(1));
    // The removal has not reached assignment yet: GitHub still hands the job over.
    expect(jobsOf(standin, early.id)[0]!.status).toBe("in_progress");
    await lab.runUntil(minutes(10));
    const late = lab.addPerfRun([{ labels: pinned("vm-42-43"), minutes: 5 }]);
    await editLabel(standin, "POST", "VM-42-43", "lab");
    await lab.runUntil(seconds(659));
    expect(jobsOf(standin, late.id)[0]!.status).toBe("queued");
    await lab.runUntil(minutes(11));
    expect(jobsOf(standin, late.id)[0]).toMatchObject({ status: "in_progress", runner_name: "VM-42-43" });
  });

  it("reports the runner busy only after the busy-flag lag", async () => {
    const { lab, standin } = await newLab({ busyLagSeconds: 90 });
    lab.addPerfRun([{ labels: pinned("vm-05-10"), minutes: 30 }]);
    await lab.runUntil(minutes(1));
    expect(runner(standin, "VM-05-10").busy).toBe(false);
    await lab.runUntil(minutes(2));
    expect(runner(standin, "VM-05-10").busy).toBe(true);
  });
});

describe("simulated lab: resets", () => {
  const hostsOf = (pairId: string) => seedConfig.pairs.find((p) => p.id === pairId)!.hosts;

  it("lab-reset.yml: checks, then restores seconds later; a perf job handed to the VM in between is killed by the restore", async () => {
    const { lab, standin } = await newLab();
    const runId = await dispatchReset(lab, standin, "vm-42-43");
    await lab.runUntil(seconds(36));
    // The checks ran from 20 s to 35 s and found the VM idle; the restores are queued, picked up at 40 s.
    const steps = () => jobsOf(standin, runId).map((j) => [j.name.split(" ")[0], j.status, j.conclusion]);
    expect(steps()).toEqual([
      ["Check", "completed", "success"],
      ["Check", "completed", "success"],
      ["Reset", "queued", null],
      ["Reset", "queued", null],
    ]);
    const perf = lab.addPerfRun([{ labels: pinned("vm-42-43"), minutes: 30 }]);
    await lab.runUntil(seconds(39));
    expect(jobsOf(standin, perf.id)[0]).toMatchObject({ status: "in_progress", runner_name: "VM-42-43" });
    await lab.runUntil(seconds(41));
    expect(lab.metrics.killed).toBe(1);
    expect(jobsOf(standin, perf.id)[0]).toMatchObject({ status: "completed", conclusion: "failure" });
    expect(runner(standin, "VM-42-43").status).toBe("offline");

    await lab.runUntil(minutes(8));
    expect(runner(standin, "VM-42-43").status).toBe("online");
    expect(standin.getRun(runId)).toMatchObject({ status: "completed", conclusion: "success" });
    const hosts = hostsOf("vm-42-43");
    expect(jobsOf(standin, runId).map((j) => [j.name, j.runner_name])).toEqual([
      ...hosts.map((h) => [labResetJobs.check(h), h.runnerLabel.replace(/^(parent|child)=/, "").replace(/\\.*$/, "").toUpperCase()]),
      ...hosts.map((h) => [labResetJobs.restore(h), h.runnerLabel.replace(/^(parent|child)=/, "").replace(/\\.*$/, "").toUpperCase()]),
      [labResetJobs.report, "GitHub Actions 1"],
    ]);
    // Both restores began as the killed job ended: the VM is clean.
    const next = lab.addPerfRun([{ labels: pinned("vm-42-43"), minutes: 10 }]);
    await lab.runUntil(minutes(9));
    expect(jobsOf(standin, next.id)[0]!.status).toBe("in_progress");
    expect(lab.metrics).toMatchObject({ dirtyStarts: 0, pairResets: 1, resetRuns: 1 });
  });

  it("lab-reset.yml: a check finding a job in the VM fails the run and skips the restores (resets refused)", async () => {
    const { lab, standin } = await newLab();
    const perf = lab.addPerfRun([{ labels: pinned("vm-42-43"), minutes: 60 }]);
    await lab.runUntil(minutes(5));
    const runId = await dispatchReset(lab, standin, "vm-42-43");
    await lab.runUntil(minutes(7));
    expect(lab.metrics).toMatchObject({ killed: 0, resetsRefused: 1, pairResets: 0 });
    expect(standin.getRun(runId)).toMatchObject({ status: "completed", conclusion: "failure" });
    expect(jobsOf(standin, runId).map((j) => [j.name.split(" ")[0], j.conclusion])).toEqual([
      ["Check", "failure"],
      ["Check", "failure"],
      ["Reset", "skipped"],
      ["Reset", "skipped"],
      ["Tell", "success"],
    ]);
    expect(jobsOf(standin, perf.id)[0]!.status).toBe("in_progress");
    expect(runner(standin, "VM-42-43").status).toBe("online");
  });

  it("lab-reset.yml's report job makes the run's call while the run is in progress, its restores done", async () => {
    const { lab, standin } = await newLab();
    let seen: unknown;
    let runId = 0;
    runId = await dispatchReset(lab, standin, "vm-05-10", () => {
      seen = { run: standin.getRun(runId)?.status, jobs: jobsOf(standin, runId).map((j) => j.status) };
    });
    await lab.runUntil(minutes(8));
    expect(seen).toEqual({ run: "in_progress", jobs: ["completed", "completed", "completed", "completed", "in_progress"] });
    expect(standin.getRun(runId)).toMatchObject({ status: "completed", conclusion: "success" });
  });

  it("today's workflow: a reset reaching a VM while a job runs on it kills the job, and leaves the VM clean", async () => {
    const { lab, standin } = await newLab();
    const perf = lab.addPerfRun([{ labels: pinned("vm-42-43"), minutes: 60 }]);
    await lab.runUntil(minutes(5));
    const reset = standin.addRun({ status: "queued", workflowPath: ".github/workflows/reset.yml", jobs: hostsOf("vm-42-43").map((h) => ({ status: "queued", labels: ["self-hosted", h.runnerLabel], runnerName: null })) });
    lab.adoptResetRun(Number(reset.id));
    await lab.runUntil(minutes(6));
    expect(lab.metrics.killed).toBe(1);
    expect(jobsOf(standin, perf.id)[0]).toMatchObject({ status: "completed", conclusion: "failure" });
    expect(runner(standin, "VM-42-43").status).toBe("offline");
    await lab.runUntil(minutes(13));
    expect(runner(standin, "VM-42-43").status).toBe("online");
    expect(standin.getRun(Number(reset.id))).toMatchObject({ status: "completed", conclusion: "success" });
    expect(jobsOf(standin, Number(reset.id))).toHaveLength(2);
    const next = lab.addPerfRun([{ labels: pinned("vm-42-43"), minutes: 10 }]);
    await lab.runUntil(minutes(14));
    expect(jobsOf(standin, next.id)[0]!.status).toBe("in_progress");
    expect(lab.metrics.dirtyStarts).toBe(0);
  });

  it("counts VM capacity lost (offline or out of routing) and how long the labels take to come back after a reset", async () => {
    const { lab, standin } = await newLab();
    // vm-42-43 is taken out of routing until its reset is done; vm-05-10 is reset without.
    await editLabel(standin, "DELETE", "VM-42-43", "lab");
    await dispatchReset(lab, standin, "vm-42-43");
    await dispatchReset(lab, standin, "vm-05-10");
    await lab.runUntil(minutes(10));
    await editLabel(standin, "POST", "VM-42-43", "lab");
    await lab.runUntil(minutes(60));
    lab.finish();
    // Restores ran from 40 s to 400 s: vm-05-10 lost 6 minutes, vm-42-43 all 10 until `lab` was back.
    expect(lab.metrics.vmMinutes).toBe(240);
    expect(lab.metrics.vmUnavailableMinutes).toBeCloseTo(16);
    // The floor: each pair reset's own 6 minutes offline.
    expect(lab.metrics.resetOfflineMinutes).toBeCloseTo(12);
    expect(lab.metrics.labelsBackMinutes.sort((a, b) => a - b)).toEqual([0, expect.closeTo(10 - 400 / 60, 5)]);
    expect(figures(hourOf(lab))).toMatchObject({ vmCapacityLostShare: 6.7, vmCapacityFloorShare: 5, labelsBackP50: 0, labelsBackP95: 3.3 });
  });

  it("does not count a VM's own job as capacity lost while it is out of routing, only the idle time until `lab` is back", async () => {
    const { lab, standin } = await newLab();
    lab.addPerfRun([{ labels: pinned("vm-25-26"), minutes: 20 }]);
    await lab.runUntil(minutes(1));
    // The app takes `lab` off the VM as its job starts, and puts it back 6 minutes after the job ended.
    await editLabel(standin, "DELETE", "VM-25-26", "lab");
    await lab.runUntil(minutes(26));
    await editLabel(standin, "POST", "VM-25-26", "lab");
    await lab.runUntil(minutes(60));
    lab.finish();
    expect(lab.metrics.perfJobsStarted).toBe(1);
    expect(lab.metrics.vmUnavailableMinutes).toBeCloseTo(6);
    expect(lab.metrics.resetOfflineMinutes).toBe(0);
  });
});

/** An hour of the lab as a simulation result, for its figures. */
function hourOf(lab: SimLab): SimulationResult {
  return { profile: "test", policy: "lab-reset", days: 1 / 24, metrics: lab.metrics, githubRequests: 0, githubChargedRequests: 0, githubRedeliveryRequests: 0, rateLimitPoints: 0, timelines: [], start: 0, end: 0 };
}

describe("simulated lab: webhooks and clock", () => {
  /** One job per pair every 10 minutes, 5 minutes long; deliveries as they are received. */
  async function webhookWeek(webhooks: NonNullable<SimLabOptions["webhooks"]>) {
    const { lab, standin } = await newLab({ webhooks });
    const received: { delivery: WorkflowJobDelivery; at: number }[] = [];
    lab.onWorkflowJobDelivery = (delivery) => {
      received.push({ delivery, at: lab.now().getTime() });
    };
    const pairs = seedConfig.pairs.map((p) => p.id);
    for (let i = 0; i < 40; i++) lab.at(minutes(10 * i).getTime(), () => void lab.addPerfRun([{ labels: pinned(pairs[i % 4]!), minutes: 5 }]));
    await lab.runUntil(minutes(420));
    return { lab, standin, received };
  }

  it("sends signed workflow_job deliveries 1-5 s late, loses some at the configured rate, and some in_progress after their completed", async () => {
    const { lab, received } = await webhookWeek({ secret: SECRET, lossRate: 0.1, reorderRate: 0.25 });
    expect(lab.deliveries).toHaveLength(120);
    for (const { delivery } of received) {
      expect(delivery.event).toBe("workflow_job");
      expect(await verify(SECRET, delivery.body, delivery.signature)).toBe(true);
      expect(delivery.deliveryId).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    }
    expect(await verify("another-secret-entirely", received[0]!.delivery.body, received[0]!.delivery.signature)).toBe(false);
    expect(new Set(lab.deliveries.map((d) => d.deliveryId)).size).toBe(120);

    const lost = lab.deliveries.filter((d) => d.lost);
    expect(lost.length).toBeGreaterThanOrEqual(4);
    expect(lost.length).toBeLessThanOrEqual(24);
    expect(lost.every((d) => d.deliveredAt === null)).toBe(true);
    expect(received).toHaveLength(120 - lost.length);

    const completedAt = new Map(lab.deliveries.filter((d) => d.action === "completed").map((d) => [d.jobId, d.eventAt]));
    for (const d of lab.deliveries.filter((r) => r.deliveredAt !== null)) {
      const heldBack = d.action === "in_progress" && d.deliveredAt! > completedAt.get(d.jobId)!;
      if (heldBack) continue;
      expect(d.deliveredAt! - d.eventAt).toBeGreaterThanOrEqual(1000);
      expect(d.deliveredAt! - d.eventAt).toBeLessThanOrEqual(5000);
    }
    const events = received.map((r) => JSON.parse(r.delivery.body) as { action: string; workflow_job: { id: number; runner_name: string | null } });
    const actionsOf = (jobId: number) => events.filter((e) => e.workflow_job.id === jobId).map((e) => e.action);
    const reordered = [...completedAt.keys()].filter((id) => actionsOf(id).indexOf("completed") < actionsOf(id).indexOf("in_progress") && actionsOf(id).indexOf("completed") >= 0);
    expect(reordered.length).toBeGreaterThan(0);
    expect(events.filter((e) => e.action === "queued").every((e) => e.workflow_job.runner_name === null)).toBe(true);
    expect(new Set(events.filter((e) => e.action === "in_progress").map((e) => e.workflow_job.runner_name))).toEqual(new Set(["VM-25-26", "VM-05-10", "VM-42-43", "VM-11-12"]));
  });

  it("replays the same deliveries for the same seed, and by default loses about 1 %", async () => {
    const first = await webhookWeek({ secret: SECRET });
    await first.standin.close();
    const second = await webhookWeek({ secret: SECRET });
    expect(second.lab.deliveries).toEqual(first.lab.deliveries);
    expect(second.lab.deliveries.filter((d) => d.lost).length).toBeLessThanOrEqual(5);
  });

  it("in real time, `after` and a reset requested between events (an HTTP call) count from now: pickup, then 6 minutes of restore", async () => {
    const { lab, standin } = await newLab();
    let stopped = false;
    const loop = lab.runRealtime(600, () => stopped); // 10 simulated minutes a second
    try {
      await new Promise((resolve) => setTimeout(resolve, 500)); // 5 simulated minutes without an event
      const requestedAt = lab.now().getTime();
      let minuteLater = 0;
      lab.after(60_000, () => {
        minuteLater = lab.now().getTime();
      });
      const runId = await dispatchReset(lab, standin, "vm-25-26");
      await vi.waitFor(() => expect(standin.getRun(runId)?.status).toBe("completed"), { timeout: 10_000, interval: 20 });
      expect(minuteLater - requestedAt).toBeGreaterThanOrEqual(60_000);
      const jobs = jobsOf(standin, runId);
      // From the dispatch's arrival (the HTTP call itself takes simulated seconds at this speed).
      const createdAt = Date.parse(standin.getRun(runId)!.created_at);
      expect(Date.parse(jobs.find((j) => j.name.startsWith("Check "))!.started_at) - createdAt).toBeGreaterThanOrEqual(19_000);
      const restores = jobs.filter((j) => j.name.startsWith("Reset "));
      expect(restores).toHaveLength(2);
      for (const restore of restores) {
        const ms = Date.parse(restore.completed_at!) - Date.parse(restore.started_at);
        expect(ms).toBeGreaterThanOrEqual(6 * 60_000 - 1000);
        expect(ms).toBeLessThan(8 * 60_000);
      }
    } finally {
      stopped = true;
      await loop;
    }
  });

  it("a simulated half day is the same for the same seed, and the same through Octokit and the HTTP stand-in as in process", async () => {
    const profile = seedProfile(seedConfig);
    const a = await simulate({ profile, policy: "lab-reset", seed: 3, days: 0.5 });
    const b = await simulate({ profile, policy: "lab-reset", seed: 3, days: 0.5 });
    expect(a.metrics).toEqual(b.metrics);
    expect(a.githubRequests).toBe(b.githubRequests);
    expect(a.metrics.perfJobsStarted).toBeGreaterThan(0);
    const c = await simulate({ profile, policy: "lab-reset", seed: 4, days: 0.5 });
    expect(c.metrics).not.toEqual(a.metrics);
    // The app's own path to GitHub: every request, fault and answer as in process.
    const restore = useImmediateZeroTimeouts();
    try {
      const http = await simulate({ profile, policy: "lab-reset", seed: 3, days: 0.5, transport: "http" });
      expect(http.metrics).toEqual(a.metrics);
      expect([http.githubRequests, http.githubChargedRequests, http.rateLimitPoints]).toEqual([a.githubRequests, a.githubChargedRequests, a.rateLimitPoints]);
      expect(a.githubChargedRequests).toBeLessThan(a.githubRequests);
    } finally {
      restore();
    }
    // The HTTP half day with webhooks: ~15 s on a loaded 2-core machine; in process, under a second.
  }, 180_000);
});
