/** The simulator's GitHub semantics, which the benchmark's figures rest on. */
import { afterEach, describe, expect, it } from "vitest";
import { SimLab } from "../shared/sim/lab.js";
import { simulate } from "../shared/sim/simulate.js";
import { useImmediateZeroTimeouts } from "../shared/sim/timers.js";
import { seedProfile } from "../shared/sim/workload.js";
import { GitHubStandin } from "../shared/sim/github-standin.js";
import { seedConfig } from "./support/lab.js";

const start = new Date("2026-11-23T00:00:00.000Z");
const WINDOWS = ["self-hosted", "lab", "os-windows-2022"];
let standin: GitHubStandin | undefined;
afterEach(async () => {
  await standin?.close();
  standin = undefined;
});

async function newLab(options: { busyLagSeconds?: number; resetRefusesBusyVm?: boolean } = {}) {
  let clock = () => start;
  standin = await GitHubStandin.start({ clock: () => clock() });
  const lab = new SimLab(standin, { config: seedConfig, osLabel: (p) => (p.id === "vm-11-12" ? "os-linux" : "os-windows-2022"), start, seed: 1, ...options });
  clock = lab.now;
  return { lab, standin };
}
const minutes = (n: number) => new Date(start.getTime() + n * 60_000);
const jobsOf = (s: GitHubStandin, runId: number) => s.jobsOf(runId);
const runner = (s: GitHubStandin, name: string) => s.getRunner(name)!;

describe("simulated lab", () => {
  it("assigns a job only to an online, idle runner that has all of its labels", async () => {
    const { lab, standin } = await newLab();
    const linux = lab.addPerfRun([{ labels: ["self-hosted", "lab", "os-linux"], minutes: 30 }]);
    const pinned = lab.addPerfRun([{ labels: ["self-hosted", "vm-42-43"], minutes: 30 }]);
    await lab.runUntil(minutes(1));
    expect(jobsOf(standin, linux.id)[0]).toMatchObject({ status: "in_progress", runner_name: "VM-11-12" });
    expect(jobsOf(standin, pinned.id)[0]).toMatchObject({ status: "in_progress", runner_name: "VM-42-43" });
    // No perf job ever lands on a host runner, which lacks the `lab` label.
    const windows = lab.addPerfRun(Array.from({ length: 5 }, () => ({ labels: WINDOWS, minutes: 30 })));
    await lab.runUntil(minutes(2));
    const names = jobsOf(standin, windows.id).map((j) => j.runner_name);
    expect(names.filter((n) => n !== null).sort()).toEqual(["VM-05-10", "VM-25-26"]);
  });

  it("keeps jobs queued until a runner frees up, then starts them in arrival order", async () => {
    const { lab, standin } = await newLab();
    const first = lab.addPerfRun([{ labels: ["self-hosted", "vm-25-26"], minutes: 30 }]);
    const second = lab.addPerfRun([{ labels: ["self-hosted", "vm-25-26"], minutes: 30 }]);
    await lab.runUntil(minutes(29));
    expect(jobsOf(standin, second.id)[0]).toMatchObject({ status: "queued", runner_name: null });
    await lab.runUntil(minutes(31));
    expect(jobsOf(standin, first.id)[0]!.status).toBe("completed");
    expect(jobsOf(standin, second.id)[0]).toMatchObject({ status: "in_progress", runner_name: "VM-25-26" });
    expect(lab.metrics.queueWaitMinutes).toEqual([0, 30]);
    // The second job ran on a VM nobody reset after the first.
    expect(lab.metrics.dirtyStarts).toBe(1);
  });

  it("reports the runner busy only after the busy-flag lag", async () => {
    const { lab, standin } = await newLab({ busyLagSeconds: 90 });
    lab.addPerfRun([{ labels: ["self-hosted", "vm-05-10"], minutes: 30 }]);
    await lab.runUntil(minutes(1));
    expect(runner(standin, "VM-05-10").busy).toBe(false);
    await lab.runUntil(minutes(2));
    expect(runner(standin, "VM-05-10").busy).toBe(true);
  });

  it("a reset reaching a VM while a job runs on it kills the job, and leaves the VM clean", async () => {
    const { lab, standin } = await newLab();
    const perf = lab.addPerfRun([{ labels: ["self-hosted", "vm-42-43"], minutes: 60 }]);
    await lab.runUntil(minutes(5));
    const reset = standin.addRun({ status: "queued", workflowPath: ".github/workflows/reset.yml", jobs: seedConfig.pairs[2]!.hosts.map((h) => ({ status: "queued", labels: ["self-hosted", h.runnerLabel], runnerName: null })) });
    lab.adoptResetRun(Number(reset.id));
    await lab.runUntil(minutes(6));
    expect(lab.metrics.killed).toBe(1);
    expect(jobsOf(standin, perf.id)[0]).toMatchObject({ status: "completed", conclusion: "failure" });
    expect(runner(standin, "VM-42-43").status).toBe("offline");
    await lab.runUntil(minutes(13));
    expect(runner(standin, "VM-42-43").status).toBe("online");
    expect(standin.getRun(Number(reset.id))).toMatchObject({ status: "completed", conclusion: "success" });
    const next = lab.addPerfRun([{ labels: ["self-hosted", "vm-42-43"], minutes: 10 }]);
    await lab.runUntil(minutes(14));
    expect(jobsOf(standin, next.id)[0]!.status).toBe("in_progress");
    expect(lab.metrics.dirtyStarts).toBe(0);
  });

  it("with the project's reset workflow, a reset finding a job in the VM refuses instead of killing it", async () => {
    const { lab, standin } = await newLab({ resetRefusesBusyVm: true });
    lab.addPerfRun([{ labels: ["self-hosted", "vm-42-43"], minutes: 60 }]);
    await lab.runUntil(minutes(5));
    const reset = standin.addRun({ status: "queued", workflowPath: ".github/workflows/reset.yml", jobs: seedConfig.pairs[2]!.hosts.map((h) => ({ status: "queued", labels: ["self-hosted", h.runnerLabel], runnerName: null })) });
    lab.adoptResetRun(Number(reset.id));
    await lab.runUntil(minutes(7));
    expect(lab.metrics).toMatchObject({ killed: 0, resetsRefused: 2 });
    expect(standin.getRun(Number(reset.id))).toMatchObject({ status: "completed", conclusion: "failure" });
  });

  it("a simulated half day is the same for the same seed", async () => {
    const restore = useImmediateZeroTimeouts();
    try {
      const profile = seedProfile(seedConfig);
      const a = await simulate({ profile, policy: "lab-reset", seed: 3, days: 0.5 });
      const b = await simulate({ profile, policy: "lab-reset", seed: 3, days: 0.5 });
      expect(a.metrics).toEqual(b.metrics);
      expect(a.githubRequests).toBe(b.githubRequests);
      expect(a.metrics.perfJobsStarted).toBeGreaterThan(0);
      const c = await simulate({ profile, policy: "lab-reset", seed: 4, days: 0.5 });
      expect(c.metrics).not.toEqual(a.metrics);
    } finally {
      restore();
    }
  });
});
