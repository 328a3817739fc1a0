/**
 * The lab simulator: perf runs and reset runs in simulated time, played on the GitHub model
 * (github-model.ts), which alone holds what GitHub knows (runners online, busy and labelled;
 * runs and jobs and their statuses). The lab keeps only what GitHub cannot know: how long each
 * job runs, what kind of job it is, what a VM is doing, and the figures. The real app reaches the
 * same model through ModelLabGitHub or the HTTP stand-in. Jobs are assigned from the labels the
 * model holds, so the app's label edits route jobs as they would on GitHub; `workflow_job`
 * deliveries go to `onWorkflowJobDelivery`, signed, late, sometimes lost or out of order.
 *
 * What it models, and what it leaves out, is stated in the README ("The simulated lab").
 */
import { createHmac } from "node:crypto";
import { isReadOnlyLabel, type LabConfig, type Pair } from "../lab/config.js";
import { GitHubModel, hostedRunnerName, labResetJobs, type Job, type ResetHost, type WorkflowJobAction } from "./github-model.js";
import type { GitHubStandin } from "./github-standin.js";
import { EventQueue } from "./events.js";
import { Random } from "./random.js";

export type VmActivity = "clean" | "running" | "dirty" | "resetting";

export interface WebhookOptions {
  /** The webhook secret: each delivery's `X-Hub-Signature-256` is the HMAC of its body with it. */
  secret: string;
  /** A delivery arrives this many simulated seconds after its event (uniform); default [1, 5]. */
  delaySeconds?: readonly [number, number];
  /** Share of deliveries that never arrive; default 0.01. */
  lossRate?: number;
  /** Share of jobs whose `in_progress` delivery arrives only after their `completed` one; default 0.02. */
  reorderRate?: number;
  /** Send `queued` deliveries too, as GitHub does; default true. */
  queued?: boolean;
}

/** A delivery as the app's webhook handler takes it: the exact body and the headers it reads. */
export interface WorkflowJobDelivery {
  event: "workflow_job";
  /** X-GitHub-Delivery */
  deliveryId: string;
  /** X-Hub-Signature-256 */
  signature: string;
  body: string;
}

/** What became of one delivery; times in simulated ms. */
export interface DeliveryRecord {
  deliveryId: string;
  action: WorkflowJobAction;
  jobId: number;
  eventAt: number;
  /** When it was handed to `onWorkflowJobDelivery`; null while on its way, and for a lost one. */
  deliveredAt: number | null;
  lost: boolean;
}

export interface SimLabOptions {
  config: LabConfig;
  /** The OS label of each pair's VM runner, e.g. `os-windows-2022`. */
  osLabel: (pair: Pair) => string;
  /**
   * Each pair's VM runner's labels as GitHub lists them, read-only (its OS, architecture) and
   * custom; default: lab, its OS label and its own runner label, on Windows (Linux for os-linux…).
   * The advice gives each runner the labels the real one had.
   */
  vmLabels?: (pair: Pair) => string[];
  start: Date;
  seed: number;
  /** GitHub's busy flag turns true this long after a job starts (it lags). */
  busyLagSeconds?: number;
  /** How long one host's restore job runs (restore the checkpoint, start the VM, wait for its IP). */
  resetMinutesPerHost?: number;
  /** Delay between a reset run being created and its first jobs being picked up. */
  pickupSeconds?: number;
  /** lab-reset.yml: how long a check job runs; it looks inside the VM as it ends. Default 15. */
  checkSeconds?: number;
  /** lab-reset.yml: delay between one step's end and the next step's jobs being picked up. Default 5. */
  stepPickupSeconds?: number;
  /**
   * lab-reset.yml's last job, on a GitHub-hosted runner, makes the run's `onComplete` call while
   * the run is still in progress (default). False: the call comes once the run has completed.
   */
  reportJob?: boolean;
  /** How long the report job runs before its call. Default 20. */
  reportSeconds?: number;
  /** Send `workflow_job` deliveries to `onWorkflowJobDelivery`; none without this. */
  webhooks?: WebhookOptions;
}

export interface PerfJobSpec {
  /** runs-on labels, e.g. ["self-hosted", "lab", "os-windows-2022"]. */
  labels: string[];
  minutes: number;
}

/** Which pair a runner serves, and as what; whether it is online or busy is GitHub's to say. */
interface SimRunner {
  name: string;
  kind: "vm" | "host";
  pairId: string;
  hostLabel?: string;
}

/** What the lab knows of a job beyond GitHub: its kind, how long it runs, when it may be picked up. */
interface SimJob {
  id: number;
  runId: number;
  kind: "perf" | "check" | "restore";
  durationMs: number;
  queuedAt: number;
  /** Not assigned before this: GitHub's pickup delay. */
  readyAt: number;
  /** The lab has played the job's end (GitHub may have ended it before: a cancel). */
  ended: boolean;
  killed: boolean;
}

export interface SimRun {
  id: number;
  kind: "perf" | "reset";
  onComplete?: (run: SimRun) => void | Promise<void>;
}

/** Where a run of lab-reset.yml is: its checks, its restores, or its report job. */
interface ResetFlow {
  hosts: ResetHost[];
  step: "check" | "restore" | "report";
}

interface PairModel {
  pair: Pair;
  vmRunnerName: string;
  /** The VM runner's custom labels perf jobs route on (lower case); lacking one, it is out of routing. */
  routingLabels: string[];
  hadJob: boolean;
  lastJobEndAt: number | null;
  hostResetStartedAt: Map<string, number>;
  resettingHosts: number;
  /** Both hosts were reset since the VM's last job. */
  clean: boolean;
  dirtyIdleSince: number | null;
  /** Since when the VM could take no perf job (offline, or idle out of routing); null while it can. */
  unavailableSince: number | null;
  /** When the VM went offline for the reset under way. */
  offlineSince: number | null;
  /** End of the last reset, while the VM still lacks a routing label; null otherwise. */
  labelsBackFrom: number | null;
  timeline: { at: number; activity: VmActivity }[];
}

export interface SimMetrics {
  perfJobsStarted: number;
  dirtyStarts: number;
  killed: number;
  dirtyIdleMinutes: number[];
  queueWaitMinutes: number[];
  /** The runs-on labels of each perf job in queueWaitMinutes, in the same order. */
  queueWaitLabels: (readonly string[])[];
  pairResets: number;
  resetRuns: number;
  /** Reset runs whose check found a job running in the VM, so nothing was restored. */
  resetsRefused: number;
  /**
   * VM-minutes a VM runner could take no perf job because of a reset: offline while its hosts
   * restore, or idle while a routing label is missing. Its own job's minutes are not lost.
   */
  vmUnavailableMinutes: number;
  /** The floor under it: each completed pair reset's own VM-minutes offline. */
  resetOfflineMinutes: number;
  /** VM-minutes simulated (VM runners × simulated time); set by finish(). */
  vmMinutes: number;
  /** Per completed pair reset: minutes until the VM runner carried all its routing labels again, as assignment sees them. */
  labelsBackMinutes: number[];
}

export interface PairTimeline {
  pairId: string;
  timeline: { at: number; activity: VmActivity }[];
  jobs: { start: number; end: number; killed: boolean; dirtyStart: boolean }[];
}

/** How a reset run's steps take their time, unless SimLabOptions say otherwise (seconds; the restore in minutes). */
export const RESET_STEP_DEFAULTS = { pickupSeconds: 20, checkSeconds: 15, stepPickupSeconds: 5, resetMinutesPerHost: 6 } as const;

export const vmRunnerNameOf = (pair: Pair) => pair.vmRunnerLabel.toUpperCase();
export const hostRunnerNameOf = (runnerLabel: string) => runnerLabel.replace(/^(parent|child)=/, "").replace(/\\.*$/, "").toUpperCase();
const lower = (s: string) => s.toLowerCase();

/** Label lists as lower-case sets, made once per list: assignment compares them on every pass. */
const lowered = new WeakMap<readonly string[], ReadonlySet<string>>();
function lowerSet(labels: readonly string[]): ReadonlySet<string> {
  let set = lowered.get(labels);
  if (set === undefined) lowered.set(labels, (set = new Set(labels.map(lower))));
  return set;
}

function carriesAll(runnerLabels: ReadonlySet<string>, wanted: ReadonlySet<string>): boolean {
  for (const label of wanted) if (!runnerLabels.has(label)) return false;
  return true;
}

export class SimLab {
  readonly random: Random;
  readonly metrics: SimMetrics = {
    perfJobsStarted: 0,
    dirtyStarts: 0,
    killed: 0,
    dirtyIdleMinutes: [],
    queueWaitMinutes: [],
    queueWaitLabels: [],
    pairResets: 0,
    resetRuns: 0,
    resetsRefused: 0,
    vmUnavailableMinutes: 0,
    resetOfflineMinutes: 0,
    vmMinutes: 0,
    labelsBackMinutes: [],
  };
  /** Every `workflow_job` delivery made (with `webhooks`), lost ones included. */
  readonly deliveries: DeliveryRecord[] = [];
  /** Called whenever a pair's VM changes activity (the local simulated lab prints these). */
  onActivity?: (pairId: string, activity: VmActivity, at: Date) => void;
  /** Receives the `workflow_job` deliveries (with `webhooks`), each in a simulated event of its own. */
  onWorkflowJobDelivery?: (delivery: WorkflowJobDelivery) => Promise<void> | void;
  /**
   * A delivery that did not arrive is a failed delivery in GitHub's log: given this, it is handed
   * here (to be redelivered later, as the app's redelivery timer does); without it, it is lost.
   */
  onFailedDelivery?: (redeliver: () => void | Promise<void>, delivery: WorkflowJobDelivery) => void;
  private readonly queue = new EventQueue();
  private readonly runners = new Map<string, SimRunner>();
  private readonly jobs = new Map<number, SimJob>();
  private readonly runs = new Map<number, SimRun>();
  private readonly resetFlows = new Map<number, ResetFlow>();
  private readonly pairs = new Map<string, PairModel>();
  private readonly waiting: SimJob[] = [];
  private readonly jobMarks = new Map<string, PairTimeline["jobs"]>();
  /** In-progress deliveries held back until after their job's completed one. */
  private readonly heldBack = new Map<number, () => void | Promise<void>>();
  /** Its own stream, so turning deliveries on leaves the workload and assignment as they were. */
  private readonly webhookRandom: Random;
  private nowMs: number;
  private readonly startMs: number;
  private readonly busyLagMs: number;
  private readonly resetMs: number;
  private readonly pickupMs: number;
  private readonly checkMs: number;
  private readonly stepPickupMs: number;
  private readonly reportMs: number;
  private realtime: { realStart: number; simStart: number; speed: number } | null = null;
  private wake: (() => void) | undefined;
  private assigning = false;
  private assignAgain = false;
  private nextHostedRunner = 1;

  /** GitHub, as the lab plays it: the only holder of runner, run and job state. */
  readonly github: GitHubModel;

  constructor(
    github: GitHubModel | GitHubStandin,
    private readonly options: SimLabOptions,
  ) {
    this.github = github instanceof GitHubModel ? github : github.model;
    this.random = new Random(options.seed);
    this.webhookRandom = new Random(options.seed ^ 0x3e6b00c);
    this.startMs = this.nowMs = options.start.getTime();
    this.busyLagMs = (options.busyLagSeconds ?? 45) * 1000;
    this.resetMs = (options.resetMinutesPerHost ?? RESET_STEP_DEFAULTS.resetMinutesPerHost) * 60_000;
    this.pickupMs = (options.pickupSeconds ?? RESET_STEP_DEFAULTS.pickupSeconds) * 1000;
    this.checkMs = (options.checkSeconds ?? RESET_STEP_DEFAULTS.checkSeconds) * 1000;
    this.stepPickupMs = (options.stepPickupSeconds ?? RESET_STEP_DEFAULTS.stepPickupSeconds) * 1000;
    this.reportMs = (options.reportSeconds ?? 20) * 1000;
    for (const pair of options.config.pairs) this.addPair(pair);
    // A label edit changes assignment once it reaches it: look at the queue again then.
    this.github.onLabelsEdited = (runnerName, effectiveAt) => this.at(effectiveAt.getTime(), () => this.labelsReachedAssignment(runnerName));
    // GitHub ends a cancelled run's jobs at once; the lab plays those ends now.
    this.github.onRunCancelled = (runId) => this.cancelled(runId);
  }

  /** Simulated now: the current event's time, or (in real time) the accelerated wall clock. */
  now = (): Date => {
    if (this.realtime) return new Date(this.realtime.simStart + (Date.now() - this.realtime.realStart) * this.realtime.speed);
    return new Date(this.nowMs);
  };

  get elapsedMs(): number {
    return this.time() - this.startMs;
  }

  at(ms: number, run: () => void | Promise<void>): void {
    this.queue.push(Math.max(ms, this.time()), run);
    this.wake?.();
  }

  /** `ms` after now; in real time that is the accelerated clock, not the last event's time. */
  after(ms: number, run: () => void | Promise<void>): void {
    this.at(this.time() + ms, run);
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
      const due = next ? (next.at - this.time()) / speed : 1000;
      if (due > 0) {
        // An event scheduled meanwhile (say by an HTTP call's dispatch) wakes the loop early.
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, Math.min(due, 250));
          this.wake = () => {
            clearTimeout(timer);
            resolve();
          };
        });
        this.wake = undefined;
        continue;
      }
      this.queue.pop();
      this.nowMs = Math.max(this.nowMs, next!.at);
      await next!.run();
    }
  }

  /** A perf run: its jobs queue now and are assigned to runners as GitHub would. */
  addPerfRun(jobs: PerfJobSpec[], onComplete?: (run: SimRun) => void | Promise<void>): SimRun {
    const created = this.github.addRun({
      name: "perf",
      status: "queued",
      createdAt: this.now().toISOString(),
      jobs: jobs.map((j, i) => ({ name: `perf ${i + 1}`, status: "queued", labels: j.labels, runnerName: null })),
    });
    const run = this.trackRun(Number(created.id), "perf", onComplete);
    this.github.jobsOf(run.id).forEach((job, i) => this.queueJob(run, Number(job.id), jobs[i]!.minutes * 60_000, "perf", 0));
    this.assign();
    return run;
  }

  /**
   * A reset run created on GitHub. A dispatched one runs lab-reset.yml: a check per host, then
   * (the VM found idle) a restore per host, then the report job. Any other run (today's
   * workflow) restores the host of each of its jobs at once.
   */
  adoptResetRun(runId: number, onComplete?: (run: SimRun) => void | Promise<void>): SimRun {
    const run = this.trackRun(runId, "reset", onComplete);
    this.metrics.resetRuns++;
    const hosts = this.github.dispatchedHosts(runId);
    if (hosts !== undefined) this.resetFlows.set(runId, { hosts, step: "check" });
    const [kind, duration] = hosts === undefined ? (["restore", this.resetMs] as const) : (["check", this.checkMs] as const);
    for (const job of this.github.listJobs(runId) ?? []) this.queueJob(run, Number(job.id), duration, kind, this.pickupMs);
    return run;
  }

  /** Perf runs with a job running: what today's policy's gate waits for (queued runs do not count). */
  perfRunsInProgress(except?: number): number {
    let count = 0;
    for (const run of this.github.listRuns({ status: "in_progress" })) if (this.runs.get(Number(run.id))?.kind === "perf" && run.id !== except) count++;
    return count;
  }

  runnersOf(pairId: string): string[] {
    return [...this.runners.values()].filter((r) => r.pairId === pairId).map((r) => r.name);
  }

  /** Closes the intervals still open at the end of the simulation and returns the timelines. */
  finish(): PairTimeline[] {
    const now = this.time();
    for (const model of this.pairs.values()) {
      this.endDirtyIdle(model);
      if (model.unavailableSince !== null) {
        this.metrics.vmUnavailableMinutes += (now - model.unavailableSince) / 60_000;
        model.unavailableSince = now;
      }
      if (model.labelsBackFrom !== null) {
        this.metrics.labelsBackMinutes.push((now - model.labelsBackFrom) / 60_000);
        model.labelsBackFrom = null;
      }
    }
    this.metrics.vmMinutes = (this.pairs.size * (now - this.startMs)) / 60_000;
    return [...this.pairs.values()].map((m) => ({ pairId: m.pair.id, timeline: m.timeline, jobs: this.jobMarks.get(m.pair.id) ?? [] }));
  }

  private time(): number {
    return this.now().getTime();
  }

  private addPair(pair: Pair) {
    const vmRunnerName = vmRunnerNameOf(pair);
    const osLabel = this.options.osLabel(pair);
    const labels = this.options.vmLabels?.(pair) ?? ["lab", osLabel, pair.vmRunnerLabel];
    // GitHub sets the read-only ones (self-hosted, the OS, the architecture); the rest are custom.
    const custom = labels.filter((l) => !isReadOnlyLabel(l));
    const os = labels.find((l) => /^(windows|linux|macos)$/i.test(l)) ?? (osLabel.startsWith("os-linux") ? "Linux" : "Windows");
    const arch = labels.find((l) => /^(x64|arm64|arm)$/i.test(l));
    this.addRunner({ name: vmRunnerName, kind: "vm", pairId: pair.id }, custom, os, arch);
    for (const host of pair.hosts) {
      this.addRunner({ name: hostRunnerNameOf(host.runnerLabel), kind: "host", pairId: pair.id, hostLabel: host.runnerLabel }, [host.runnerLabel], "Windows");
    }
    this.pairs.set(pair.id, {
      pair,
      vmRunnerName,
      routingLabels: custom.map(lower),
      hadJob: false,
      lastJobEndAt: null,
      hostResetStartedAt: new Map(),
      resettingHosts: 0,
      clean: true,
      dirtyIdleSince: null,
      unavailableSince: null,
      offlineSince: null,
      labelsBackFrom: null,
      timeline: [{ at: this.startMs, activity: "clean" }],
    });
    this.jobMarks.set(pair.id, []);
  }

  /** GitHub holds the runner (online, busy, labels); the lab which pair it serves. */
  private addRunner(runner: SimRunner, labels: string[], os: string, arch?: string) {
    this.github.addRunner({ name: runner.name, labels, os, ...(arch !== undefined ? { arch } : {}) });
    this.runners.set(runner.name, runner);
  }

  private trackRun(id: number, kind: SimRun["kind"], onComplete?: SimRun["onComplete"]): SimRun {
    const run: SimRun = { id, kind, ...(onComplete ? { onComplete } : {}) };
    this.runs.set(id, run);
    return run;
  }

  private queueJob(run: SimRun, id: number, durationMs: number, kind: SimJob["kind"], pickupMs: number) {
    const queuedAt = this.time();
    const job: SimJob = { id, runId: run.id, kind, durationMs, queuedAt, readyAt: queuedAt + pickupMs, ended: false, killed: false };
    this.jobs.set(id, job);
    this.waiting.push(job);
    this.sendWorkflowJob(id, "queued");
    if (pickupMs > 0) this.at(job.readyAt, () => this.assign());
  }

  /** GitHub's assignment; a job ending mid-assignment (a restore killing it) asks for another pass. */
  private assign() {
    if (this.assigning) {
      this.assignAgain = true;
      return;
    }
    this.assigning = true;
    try {
      do {
        this.assignAgain = false;
        this.assignWaiting();
      } while (this.assignAgain);
    } finally {
      this.assigning = false;
    }
  }

  /** Online, with no job in progress: as GitHub sees the runner. */
  private idle(runnerName: string): boolean {
    return this.github.isOnline(runnerName) === true && this.github.runningJobOn(runnerName) === undefined;
  }

  /**
   * Each queued job, first come first served, goes to an online, idle runner that carries all of
   * its labels as GitHub's assignment sees them (case-insensitively), chosen at random among those.
   */
  private assignWaiting() {
    const now = this.time();
    const idleRunners = () => [...this.runners.values()].filter((r) => this.idle(r.name));
    let idle = idleRunners();
    for (let i = 0; i < this.waiting.length && idle.length > 0; ) {
      const job = this.waiting[i]!;
      const wanted = lowerSet(this.github.job(job.id)!.labels);
      const eligible = job.readyAt > now ? [] : idle.filter((r) => carriesAll(lowerSet(this.github.assignableLabels(r.name) ?? []), wanted));
      if (eligible.length === 0) {
        i++;
        continue;
      }
      this.waiting.splice(i, 1);
      this.start(job, this.random.pick(eligible));
      // A start takes its runner, and a restore its VM: look again at who is idle.
      idle = idleRunners();
    }
  }

  private labelsReachedAssignment(runnerName: string) {
    const runner = this.runners.get(runnerName);
    if (runner?.kind === "vm") this.updateAvailability(this.pairs.get(runner.pairId)!);
    this.assign();
  }

  private setActivity(model: PairModel, activity: VmActivity) {
    const now = this.time();
    const last = model.timeline[model.timeline.length - 1];
    if (last?.activity === activity) return;
    if (last?.at === now) model.timeline.pop();
    model.timeline.push({ at: now, activity });
    this.onActivity?.(model.pair.id, activity, this.now());
  }

  private endDirtyIdle(model: PairModel) {
    if (model.dirtyIdleSince === null) return;
    this.metrics.dirtyIdleMinutes.push((this.time() - model.dirtyIdleSince) / 60_000);
    model.dirtyIdleSince = null;
  }

  /** Whether the VM runner carries every routing label, as assignment sees its labels now. */
  private routed(model: PairModel): boolean {
    const labels = lowerSet(this.github.assignableLabels(model.vmRunnerName) ?? []);
    return model.routingLabels.every((l) => labels.has(l));
  }

  /**
   * Accounts for VM capacity a reset costs (offline, or idle out of routing: a VM running its own
   * job loses nothing by being out of routing) and for labels coming back after a reset.
   */
  private updateAvailability(model: PairModel) {
    const now = this.time();
    const routed = this.routed(model);
    const vm = model.vmRunnerName;
    const available = this.github.isOnline(vm) === true && (routed || this.github.runningJobOn(vm) !== undefined);
    if (!available && model.unavailableSince === null) model.unavailableSince = now;
    if (available && model.unavailableSince !== null) {
      this.metrics.vmUnavailableMinutes += (now - model.unavailableSince) / 60_000;
      model.unavailableSince = null;
    }
    if (routed && model.labelsBackFrom !== null) {
      this.metrics.labelsBackMinutes.push((now - model.labelsBackFrom) / 60_000);
      model.labelsBackFrom = null;
    }
  }

  private start(job: SimJob, runner: SimRunner) {
    this.github.setJob(job.id, { status: "in_progress", runnerName: runner.name });
    this.sendWorkflowJob(job.id, "in_progress");
    if (this.github.run(job.runId)?.status !== "in_progress") this.github.setRun(job.runId, { status: "in_progress" });
    // The busy flag lags the job's start.
    this.after(this.busyLagMs, () => {
      if (this.github.runningJobOn(runner.name) === job.id) this.github.setRunner(runner.name, { busy: true });
    });
    const model = this.pairs.get(runner.pairId)!;
    if (job.kind === "perf") this.startPerf(job, model);
    if (job.kind === "restore") this.startRestore(runner, model);
    if (runner.kind === "vm") this.updateAvailability(model);
    // A check looks inside the VM as it ends: a job running there fails it, and so the run.
    this.after(job.durationMs, () => this.end(job, job.kind === "check" && this.github.runningJobOn(model.vmRunnerName) !== undefined ? "failure" : "success"));
  }

  private startPerf(job: SimJob, model: PairModel) {
    const now = this.time();
    this.metrics.perfJobsStarted++;
    this.metrics.queueWaitMinutes.push((now - job.queuedAt) / 60_000);
    this.metrics.queueWaitLabels.push(this.github.job(job.id)!.labels);
    const dirtyStart = model.hadJob && !model.clean;
    if (dirtyStart) this.metrics.dirtyStarts++;
    this.jobMarks.get(model.pair.id)!.push({ start: now, end: now + job.durationMs, killed: false, dirtyStart });
    this.endDirtyIdle(model);
    model.clean = false;
    this.setActivity(model, "running");
  }

  /** Restoring the checkpoint takes the VM down: a job running on it dies, whatever checked before. */
  private startRestore(host: SimRunner, model: PairModel) {
    model.resettingHosts++;
    model.hostResetStartedAt.set(host.hostLabel!, this.time());
    this.endDirtyIdle(model);
    model.offlineSince ??= this.time();
    const running = this.github.runningJobOn(model.vmRunnerName);
    this.github.setRunner(model.vmRunnerName, { status: "offline", busy: false });
    if (running !== undefined) this.kill(this.jobs.get(running)!);
    this.setActivity(model, "resetting");
    this.updateAvailability(model);
  }

  private kill(job: SimJob) {
    job.killed = true;
    this.metrics.killed++;
    const marks = this.jobMarks.get(this.runners.get(this.github.job(job.id)!.runner_name!)!.pairId)!;
    const mark = marks[marks.length - 1];
    if (mark) {
      mark.killed = true;
      mark.end = this.time();
    }
    this.end(job, "failure");
  }

  /** A job's end, played once: by its runner, a restore killing it, or GitHub cancelling its run. */
  private end(job: SimJob, conclusion: "success" | "failure" | "cancelled") {
    if (job.ended) return;
    job.ended = true;
    const ghJob = this.github.job(job.id)!;
    const runner = this.runners.get(ghJob.runner_name!)!;
    if (ghJob.status !== "completed") this.github.setJob(job.id, { status: "completed", conclusion });
    this.github.setRunner(runner.name, { busy: false });
    this.sendWorkflowJob(job.id, "completed");
    const model = this.pairs.get(runner.pairId)!;
    if (job.kind === "perf") this.endPerf(job, model);
    if (job.kind === "restore") this.endRestore(model);
    if (runner.kind === "vm") this.updateAvailability(model);
    const run = this.runs.get(job.runId)!;
    if (this.github.run(run.id)?.status !== "completed" && !this.unfinishedJobs(run) && !this.nextStep(run)) this.completeRun(run);
    this.assign();
  }

  private unfinishedJobs(run: SimRun): boolean {
    return (this.github.listJobs(run.id) ?? []).some((j) => j.status !== "completed");
  }

  private failed(run: SimRun): boolean {
    return (this.github.listJobs(run.id) ?? []).some((j: Job) => j.conclusion === "failure");
  }

  /** GitHub cancelled the run: its queued jobs never start, its running ones stop now. */
  private cancelled(runId: number) {
    const run = this.runs.get(runId);
    if (run === undefined) return;
    for (let i = this.waiting.length - 1; i >= 0; i--) {
      const job = this.waiting[i]!;
      if (job.runId !== runId) continue;
      this.waiting.splice(i, 1);
      job.ended = true;
    }
    for (const job of [...this.jobs.values()].filter((j) => j.runId === runId && !j.ended)) this.end(job, "cancelled");
    this.resetFlows.delete(runId);
    // Its last job (if: always()) still reports.
    const done = run.onComplete;
    delete run.onComplete;
    if (done) this.after(0, () => done(run));
  }

  private endPerf(job: SimJob, model: PairModel) {
    model.hadJob = true;
    model.lastJobEndAt = this.time();
    if (job.killed) return;
    model.dirtyIdleSince = this.time();
    this.setActivity(model, "dirty");
  }

  /** The VM comes back once both hosts are restored; it is clean if both restores began after its last job. */
  private endRestore(model: PairModel) {
    model.resettingHosts--;
    if (model.resettingHosts > 0) return;
    this.github.setRunner(model.vmRunnerName, { status: "online" });
    const lastJob = model.lastJobEndAt ?? -Infinity;
    model.clean = model.pair.hosts.every((h) => (model.hostResetStartedAt.get(h.runnerLabel) ?? -Infinity) >= lastJob);
    this.metrics.pairResets++;
    this.metrics.resetOfflineMinutes += (this.time() - (model.offlineSince ?? this.time())) / 60_000;
    model.offlineSince = null;
    if (model.clean) {
      this.setActivity(model, "clean");
    } else {
      model.dirtyIdleSince = this.time();
      this.setActivity(model, "dirty");
    }
    model.labelsBackFrom ??= this.time();
    this.updateAvailability(model);
  }

  /** lab-reset.yml's next step once every job of a step has ended; false when the run is done. */
  private nextStep(run: SimRun): boolean {
    const flow = this.resetFlows.get(run.id);
    if (flow === undefined || flow.step === "report") return false;
    if (flow.step === "check") {
      flow.step = "restore";
      // GitHub creates a job once its `needs` are met; a failed check skips the restores.
      const refused = this.failed(run);
      const restores = this.github.addJobs(
        run.id,
        flow.hosts.map((host) => ({ name: labResetJobs.restore(host), labels: ["self-hosted", host.runnerLabel], runnerName: null, ...(refused ? { status: "completed", conclusion: "skipped" } : { status: "queued" }) })),
      );
      if (!refused) {
        for (const job of restores) this.queueJob(run, Number(job.id), this.resetMs, "restore", this.stepPickupMs);
        return true;
      }
      this.metrics.resetsRefused++;
    }
    if (this.options.reportJob === false) return false;
    flow.step = "report";
    this.runReportJob(run);
    return true;
  }

  /** lab-reset.yml's last job, on a GitHub-hosted runner: it makes the run's call while the run is still in progress. */
  private runReportJob(run: SimRun) {
    const [created] = this.github.addJobs(run.id, [{ name: labResetJobs.report, status: "queued", labels: ["ubuntu-latest"], runnerName: null }]);
    const jobId = Number(created!.id);
    const cancelled = () => this.github.job(jobId)!.status === "completed";
    this.sendWorkflowJob(jobId, "queued");
    this.after(this.stepPickupMs, () => {
      if (cancelled()) return;
      this.github.setJob(jobId, { status: "in_progress", runnerName: hostedRunnerName(this.nextHostedRunner++) });
      this.sendWorkflowJob(jobId, "in_progress");
      this.after(this.reportMs, async () => {
        const report = run.onComplete;
        delete run.onComplete;
        await report?.(run);
        if (cancelled()) return;
        this.github.setJob(jobId, { status: "completed", conclusion: "success" });
        this.sendWorkflowJob(jobId, "completed");
        this.completeRun(run);
      });
    });
  }

  private completeRun(run: SimRun) {
    this.github.setRun(run.id, { status: "completed", conclusion: this.failed(run) ? "failure" : "success" });
    // The run's last job (if: always()) reports, after the runners are free again.
    if (run.onComplete) {
      const done = run.onComplete;
      delete run.onComplete;
      this.after(0, () => done(run));
    }
  }

  /**
   * A `workflow_job` delivery of the job as it is now: signed, `delaySeconds` late, lost at
   * `lossRate`, and for `reorderRate` of jobs the `in_progress` one held until after `completed`.
   */
  private sendWorkflowJob(jobId: number, action: WorkflowJobAction) {
    const hooks = this.options.webhooks;
    if (hooks === undefined || (action === "queued" && hooks.queued === false)) return;
    const rng = this.webhookRandom;
    const body = JSON.stringify(this.github.workflowJobEvent(jobId, action));
    const signature = `sha256=${createHmac("sha256", hooks.secret).update(body).digest("hex")}`;
    const delivery: WorkflowJobDelivery = { event: "workflow_job", deliveryId: rng.uuid(), signature, body };
    const [minSeconds, maxSeconds] = hooks.delaySeconds ?? [1, 5];
    const delayMs = 1000 * rng.between(minSeconds, maxSeconds);
    const lost = rng.chance(hooks.lossRate ?? 0.01);
    const holdBack = rng.chance(hooks.reorderRate ?? 0.02) && action === "in_progress";
    const record: DeliveryRecord = { deliveryId: delivery.deliveryId, action, jobId, eventAt: this.time(), deliveredAt: null, lost };
    this.deliveries.push(record);
    const send = () => {
      record.deliveredAt = this.time();
      return this.onWorkflowJobDelivery?.(delivery);
    };
    if (lost) this.onFailedDelivery?.(send, delivery);
    if (!lost && holdBack) this.heldBack.set(jobId, send);
    if (!lost && !holdBack) this.after(delayMs, send);
    // A held in_progress follows its job's completed one, whether or not that one arrives.
    const held = action === "completed" ? this.heldBack.get(jobId) : undefined;
    if (held === undefined) return;
    this.heldBack.delete(jobId);
    this.after(delayMs + 1000 * rng.between(minSeconds, maxSeconds), held);
  }
}
