/**
 * The lab simulator: runners, perf runs and reset runs in simulated time, mirrored into the
 * GitHub stand-in so that the real app (Octokit client, reconcile, store) sees GitHub's shapes.
 *
 * What it models, and what it leaves out, is stated in the README ("The simulated lab").
 */
import type { LabConfig, Pair } from "../lab/config.js";
import type { GitHubStandin } from "./github-standin.js";
import { EventQueue } from "./events.js";
import { Random } from "./random.js";

export type VmActivity = "clean" | "running" | "dirty" | "resetting";

export interface SimLabOptions {
  config: LabConfig;
  /** The OS label of each pair's VM runner, e.g. `os-windows-2022`. */
  osLabel: (pair: Pair) => string;
  start: Date;
  seed: number;
  /** GitHub's busy flag turns true this long after a job starts (it lags). */
  busyLagSeconds?: number;
  /** How long one host's reset job runs (restore the checkpoint, start the VM, wait for its IP). */
  resetMinutesPerHost?: number;
  /** Delay between a reset run being created and its host jobs being picked up. */
  pickupSeconds?: number;
  /**
   * The reset job refuses (fails at once) when a job runs in the VM, as this project's reset
   * workflow does (infra/github/lab-reset.yml); today's workflow has no such guard.
   */
  resetRefusesBusyVm?: boolean;
}

export interface PerfJobSpec {
  /** runs-on labels, e.g. ["self-hosted", "lab", "os-windows-2022"]. */
  labels: string[];
  minutes: number;
}

interface SimRunner {
  name: string;
  labels: Set<string>;
  kind: "vm" | "host";
  pairId: string;
  hostLabel?: string;
  online: boolean;
  jobId: number | null;
}

interface SimJob {
  id: number;
  runId: number;
  labels: string[];
  kind: "perf" | "reset";
  durationMs: number;
  queuedAt: number;
  startedAt: number | null;
  endedAt: number | null;
  runnerName: string | null;
  killed: boolean;
}

export interface SimRun {
  id: number;
  kind: "perf" | "reset";
  jobIds: number[];
  remaining: number;
  started: boolean;
  failed: boolean;
  onComplete?: (run: SimRun) => void | Promise<void>;
}

interface PairModel {
  pair: Pair;
  vmRunnerName: string;
  hadJob: boolean;
  lastJobEndAt: number | null;
  hostResetStartedAt: Map<string, number>;
  resettingHosts: number;
  /** Both hosts were reset since the VM's last job. */
  clean: boolean;
  dirtyIdleSince: number | null;
  timeline: { at: number; activity: VmActivity }[];
}

export interface SimMetrics {
  perfJobsStarted: number;
  dirtyStarts: number;
  killed: number;
  dirtyIdleMinutes: number[];
  queueWaitMinutes: number[];
  pairResets: number;
  resetRuns: number;
  /** Host reset jobs that found a job running in the VM and refused. */
  resetsRefused: number;
}

export interface PairTimeline {
  pairId: string;
  timeline: { at: number; activity: VmActivity }[];
  jobs: { start: number; end: number; killed: boolean; dirtyStart: boolean }[];
}

export const vmRunnerNameOf = (pair: Pair) => pair.vmRunnerLabel.toUpperCase();
export const hostRunnerNameOf = (runnerLabel: string) => runnerLabel.replace(/^(parent|child)=/, "").replace(/\\.*$/, "").toUpperCase();

export class SimLab {
  readonly random: Random;
  readonly metrics: SimMetrics = { perfJobsStarted: 0, dirtyStarts: 0, killed: 0, dirtyIdleMinutes: [], queueWaitMinutes: [], pairResets: 0, resetRuns: 0, resetsRefused: 0 };
  private readonly queue = new EventQueue();
  private readonly runners = new Map<string, SimRunner>();
  private readonly jobs = new Map<number, SimJob>();
  private readonly runs = new Map<number, SimRun>();
  private readonly pairs = new Map<string, PairModel>();
  private readonly waiting: SimJob[] = [];
  private readonly jobMarks = new Map<string, PairTimeline["jobs"]>();
  private nowMs: number;
  private readonly startMs: number;
  private readonly busyLagMs: number;
  private readonly resetMs: number;
  private readonly pickupMs: number;
  private realtime: { realStart: number; simStart: number; speed: number } | null = null;
  /** Called whenever a pair's VM changes activity (the local simulated lab prints these). */
  onActivity?: (pairId: string, activity: VmActivity, at: Date) => void;

  constructor(
    readonly standin: GitHubStandin,
    private readonly options: SimLabOptions,
  ) {
    this.random = new Random(options.seed);
    this.startMs = this.nowMs = options.start.getTime();
    this.busyLagMs = (options.busyLagSeconds ?? 45) * 1000;
    this.resetMs = (options.resetMinutesPerHost ?? 6) * 60_000;
    this.pickupMs = (options.pickupSeconds ?? 20) * 1000;
    for (const pair of options.config.pairs) {
      const vmRunnerName = vmRunnerNameOf(pair);
      this.addRunner({ name: vmRunnerName, labels: ["lab", options.osLabel(pair), pair.vmRunnerLabel], kind: "vm", pairId: pair.id });
      for (const host of pair.hosts) {
        this.addRunner({ name: hostRunnerNameOf(host.runnerLabel), labels: [host.runnerLabel], kind: "host", pairId: pair.id, hostLabel: host.runnerLabel });
      }
      this.pairs.set(pair.id, {
        pair,
        vmRunnerName,
        hadJob: false,
        lastJobEndAt: null,
        hostResetStartedAt: new Map(),
        resettingHosts: 0,
        clean: true,
        dirtyIdleSince: null,
        timeline: [{ at: this.startMs, activity: "clean" }],
      });
      this.jobMarks.set(pair.id, []);
    }
  }

  /** Simulated now: the current event's time, or (in real time) the accelerated wall clock. */
  now = (): Date => {
    if (this.realtime) return new Date(this.realtime.simStart + (Date.now() - this.realtime.realStart) * this.realtime.speed);
    return new Date(this.nowMs);
  };

  get elapsedMs(): number {
    return this.nowMs - this.startMs;
  }

  at(ms: number, run: () => void | Promise<void>): void {
    this.queue.push(Math.max(ms, this.nowMs), run);
  }

  after(ms: number, run: () => void | Promise<void>): void {
    this.at(this.nowMs + ms, run);
  }

  /** Runs every event up to `end` (simulated), as fast as the app answers. */
  async runUntil(end: Date): Promise<void> {
    const endMs = end.getTime();
    for (let next = this.queue.peek(); next && next.at <= endMs; next = this.queue.peek()) {
      this.queue.pop();
      this.nowMs = next.at;
      await next.run();
    }
    this.nowMs = endMs;
  }

  /** Runs events as simulated time passes `speed` times faster than the wall clock, until `stop` resolves. */
  async runRealtime(speed: number, stopped: () => boolean): Promise<void> {
    this.realtime = { realStart: Date.now(), simStart: this.nowMs, speed };
    while (!stopped()) {
      const next = this.queue.peek();
      const due = next ? (next.at - this.now().getTime()) / speed : 1000;
      if (due > 0) {
        await new Promise((r) => setTimeout(r, Math.min(due, 250)));
        continue;
      }
      this.queue.pop();
      this.nowMs = next!.at;
      await next!.run();
    }
  }

  /** A perf run: its jobs queue now and are assigned to runners as GitHub would. */
  addPerfRun(jobs: PerfJobSpec[], onComplete?: (run: SimRun) => void | Promise<void>): SimRun {
    const created = this.standin.addRun({
      name: "perf",
      status: "queued",
      createdAt: this.now().toISOString(),
      jobs: jobs.map((j, i) => ({ name: `perf ${i + 1}`, status: "queued", labels: j.labels, runnerName: null })),
    });
    const run = this.trackRun(Number(created.id), "perf", onComplete);
    this.standin.jobsOf(run.id).forEach((job, i) => this.queueJob(run, Number(job.id), jobs[i]!.labels, jobs[i]!.minutes * 60_000, "perf"));
    this.assign();
    return run;
  }

  /** A reset run created in the stand-in (a dispatch, or today's policy): its host jobs are picked up shortly. */
  adoptResetRun(runId: number, onComplete?: (run: SimRun) => void | Promise<void>): SimRun {
    const run = this.trackRun(runId, "reset", onComplete);
    this.metrics.resetRuns++;
    const jobs = this.standin.jobsOf(runId);
    this.after(this.pickupMs, () => {
      for (const job of jobs) this.queueJob(run, Number(job.id), job.labels, this.resetMs, "reset");
      this.assign();
    });
    return run;
  }

  /** Perf runs with a job running: what today's policy's gate waits for (queued runs do not count). */
  perfRunsInProgress(except?: number): number {
    let count = 0;
    for (const run of this.runs.values()) if (run.kind === "perf" && run.started && run.remaining > 0 && run.id !== except) count++;
    return count;
  }

  runnersOf(pairId: string): string[] {
    return [...this.runners.values()].filter((r) => r.pairId === pairId).map((r) => r.name);
  }

  /** Closes open dirty-idle intervals at the end of the simulation and returns the timelines. */
  finish(): PairTimeline[] {
    for (const model of this.pairs.values()) {
      if (model.dirtyIdleSince !== null) {
        this.metrics.dirtyIdleMinutes.push((this.nowMs - model.dirtyIdleSince) / 60_000);
        model.dirtyIdleSince = null;
      }
    }
    return [...this.pairs.values()].map((m) => ({ pairId: m.pair.id, timeline: m.timeline, jobs: this.jobMarks.get(m.pair.id) ?? [] }));
  }

  private addRunner(spec: Omit<SimRunner, "online" | "jobId" | "labels"> & { labels: string[] }) {
    this.standin.addRunner({ name: spec.name, labels: spec.labels });
    this.runners.set(spec.name, { ...spec, labels: new Set(["self-hosted", ...spec.labels].map((l) => l.toLowerCase())), online: true, jobId: null });
  }

  private trackRun(id: number, kind: SimRun["kind"], onComplete?: SimRun["onComplete"]): SimRun {
    const run: SimRun = { id, kind, jobIds: [], remaining: 0, started: false, failed: false, ...(onComplete ? { onComplete } : {}) };
    this.runs.set(id, run);
    return run;
  }

  private queueJob(run: SimRun, id: number, labels: string[], durationMs: number, kind: SimJob["kind"]) {
    const job: SimJob = { id, runId: run.id, labels: labels.map((l) => l.toLowerCase()), kind, durationMs, queuedAt: this.nowMs, startedAt: null, endedAt: null, runnerName: null, killed: false };
    this.jobs.set(id, job);
    run.jobIds.push(id);
    run.remaining++;
    this.waiting.push(job);
  }

  /** GitHub's assignment: a queued job goes to an online, idle runner that has all of its labels. */
  private assign() {
    for (let i = 0; i < this.waiting.length; ) {
      const job = this.waiting[i]!;
      const eligible = [...this.runners.values()].filter((r) => r.online && r.jobId === null && job.labels.every((l) => r.labels.has(l)));
      if (eligible.length === 0) {
        i++;
        continue;
      }
      this.waiting.splice(i, 1);
      this.start(job, this.random.pick(eligible));
    }
  }

  private setActivity(model: PairModel, activity: VmActivity) {
    const last = model.timeline[model.timeline.length - 1];
    if (last?.activity === activity) return;
    if (last?.at === this.nowMs) model.timeline.pop();
    model.timeline.push({ at: this.nowMs, activity });
    this.onActivity?.(model.pair.id, activity, this.now());
  }

  private endDirtyIdle(model: PairModel) {
    if (model.dirtyIdleSince === null) return;
    this.metrics.dirtyIdleMinutes.push((this.nowMs - model.dirtyIdleSince) / 60_000);
    model.dirtyIdleSince = null;
  }

  private start(job: SimJob, runner: SimRunner) {
    const run = this.runs.get(job.runId)!;
    job.startedAt = this.nowMs;
    job.runnerName = runner.name;
    runner.jobId = job.id;
    this.standin.setJob(job.id, { status: "in_progress", runnerName: runner.name });
    if (!run.started) {
      run.started = true;
      this.standin.setRun(run.id, { status: "in_progress" });
    }
    // The busy flag lags the job's start.
    this.after(this.busyLagMs, () => {
      if (runner.jobId === job.id) this.standin.setRunner(runner.name, { busy: true });
    });
    const model = this.pairs.get(runner.pairId)!;
    if (job.kind === "perf") {
      this.metrics.perfJobsStarted++;
      this.metrics.queueWaitMinutes.push((this.nowMs - job.queuedAt) / 60_000);
      const dirtyStart = model.hadJob && !model.clean;
      if (dirtyStart) this.metrics.dirtyStarts++;
      this.jobMarks.get(model.pair.id)!.push({ start: this.nowMs, end: this.nowMs + job.durationMs, killed: false, dirtyStart });
      this.endDirtyIdle(model);
      model.clean = false;
      this.setActivity(model, "running");
    } else {
      const vmJob = this.runners.get(model.vmRunnerName)!.jobId;
      if (vmJob !== null && this.options.resetRefusesBusyVm) {
        this.metrics.resetsRefused++;
        this.after(10_000, () => this.end(job, "failure"));
        return;
      }
      model.resettingHosts++;
      model.hostResetStartedAt.set(runner.hostLabel!, this.nowMs);
      this.endDirtyIdle(model);
      const vm = this.runners.get(model.vmRunnerName)!;
      // Restoring the checkpoint takes the VM down: a job running on it dies.
      if (vm.jobId !== null) this.kill(this.jobs.get(vm.jobId)!);
      vm.online = false;
      this.standin.setRunner(vm.name, { status: "offline", busy: false });
      this.setActivity(model, "resetting");
    }
    this.after(job.durationMs, () => this.end(job, "success"));
  }

  private kill(job: SimJob) {
    job.killed = true;
    this.metrics.killed++;
    const marks = this.jobMarks.get(this.runners.get(job.runnerName!)!.pairId)!;
    const mark = marks[marks.length - 1];
    if (mark) {
      mark.killed = true;
      mark.end = this.nowMs;
    }
    this.end(job, "failure");
  }

  private end(job: SimJob, conclusion: "success" | "failure") {
    if (job.endedAt !== null) return;
    job.endedAt = this.nowMs;
    const runner = this.runners.get(job.runnerName!)!;
    runner.jobId = null;
    this.standin.setRunner(runner.name, { busy: false });
    this.standin.setJob(job.id, { status: "completed", conclusion });
    const model = this.pairs.get(runner.pairId)!;
    if (job.kind === "perf") {
      model.hadJob = true;
      model.lastJobEndAt = this.nowMs;
      if (!job.killed) {
        model.dirtyIdleSince = this.nowMs;
        this.setActivity(model, "dirty");
      }
    } else if (conclusion === "success") {
      model.resettingHosts--;
      if (model.resettingHosts === 0) {
        const vm = this.runners.get(model.vmRunnerName)!;
        vm.online = true;
        this.standin.setRunner(vm.name, { status: "online" });
        const lastJob = model.lastJobEndAt ?? -Infinity;
        model.clean = model.pair.hosts.every((h) => (model.hostResetStartedAt.get(h.runnerLabel) ?? -Infinity) >= lastJob);
        this.metrics.pairResets++;
        if (model.clean) {
          this.setActivity(model, "clean");
        } else {
          model.dirtyIdleSince = this.nowMs;
          this.setActivity(model, "dirty");
        }
      }
    }
    const run = this.runs.get(job.runId)!;
    if (conclusion !== "success") run.failed = true;
    run.remaining--;
    if (run.remaining === 0) {
      this.standin.setRun(run.id, { status: "completed", conclusion: run.failed ? "failure" : "success" });
      // The run's last job (if: always()) reports, after the runners are free again.
      if (run.onComplete) {
        const done = run.onComplete;
        this.after(0, () => done(run));
      }
    }
    this.assign();
  }
}
