/**
 * The lab of the property tests (test/properties.test.ts): a small scenario language (what the
 * lab's VMs do, which triggers fire, which GitHub and Table Storage answers fail, where a process
 * dies), a driver that runs the app's real handlers, reconcile and decisions through it, and the
 * reliability invariants I1–I5 (README "Invariants") checked while it runs and after every step.
 *
 * Both ways to reach GitHub share one GitHub model (shared/sim/github-model.ts) and its lab controls:
 * - "memory": ModelLabGitHub, in process; every GitHub and store call waits for fast-check's
 *   scheduler, so concurrent triggers and lab events interleave at random, and GitHub's faults
 *   are the LabGitHub answers the Octokit client gives after its retries;
 * - "http": the real Octokit client against the HTTP stand-in, GitHub's faults sent as HTTP
 *   answers; triggers run one after another, so a seed replays the same requests.
 */
import fc from "fast-check";
import type { LabConfig, Pair } from "../../shared/lab/config.js";
import { GitHubError, type DispatchResult, type Job, type LabGitHub, type Runner } from "../../shared/github/client.js";
import { jobCompleted as jobCompletedHandler } from "../../shared/triggers/job-completed.js";
import { scheduledReset } from "../../shared/triggers/timer.js";
import { githubWebhook } from "../../shared/triggers/webhook.js";
import { ReconcileWorker } from "../../shared/reconcile/worker.js";
import { MemoryCoverageStore } from "../../shared/storage/coverage.js";
import { MemoryFactStore, type FactStore, type JobFact, type StoredFact } from "../../shared/storage/facts.js";
import { MemoryReconcileQueue, type QueuedMessage, type ReconcileMessage, type ReconcileQueue, type SendOptions } from "../../shared/storage/queue.js";
import type { Logger } from "../../shared/logger.js";
import { MemoryStore } from "../../shared/storage/memory.js";
import type { PairEvent, PairRecord } from "../../shared/lab/pair-record.js";
import type { ReconcileResult } from "../../shared/reconcile/reconcile.js";
import { createRuntime, type Runtime } from "../../shared/runtime.js";
import { readSettings } from "../../shared/settings.js";
import { useImmediateZeroTimeouts } from "../../shared/sim/timers.js";
import { StoreError, type PairStore, type StoredPair } from "../../shared/storage/tables.js";
import { GitHubModel } from "../../shared/sim/github-model.js";
import { GitHubStandin } from "../../shared/sim/github-standin.js";
import { ModelLabGitHub } from "../../shared/sim/model-github.js";
import { hostRunnerName, seedConfig, vmRunnerName } from "./lab.js";
import { signedDelivery, WEBHOOK_SECRET, workflowJobPayload } from "./webhook-deliveries.js";

// ---- The scenario language ----

export interface LabEvent {
  /**
   * A perf job starts or ends on the pair's VM, or runs start to end between two looks of the app
   * (short-job); GitHub's busy flag catches up; the pair's oldest reset run in flight ends or hangs.
   */
  kind: "job-start" | "job-end" | "short-job" | "busy-flag" | "reset-success" | "reset-failure" | "reset-hang";
  pair: number;
  /** "http" only: happens just before the step's n-th GitHub call (memory: the scheduler picks the moment). */
  atCall: number | null;
}

/**
 * job-completed reports one of the runs that ended (`run`: newest first, modulo their number); a
 * webhook delivers a job's start or end (`job`: newest first among the jobs that started, or
 * ended), repeats included. Each only records facts and queues; the queue is served after each.
 */
export type TriggerSpec =
  | { kind: "timer" }
  | { kind: "job-completed"; run: number; copies: number }
  | { kind: "webhook"; job: number; action: "in_progress" | "completed"; copies: number };

/** How GitHub fails a request: after the client's retries, a read throws and a dispatch is rejected or unknown. */
export type GitHubFaultKind = "5xx" | "5xx-after-effect" | "429" | "rate-limit-403" | "timeout" | "malformed" | "422";
export type StoreFaultKind = "503" | "503-after-write" | "412";
/** The step's calls number `at` to `at + times - 1` (counted across all its triggers) get the fault. */
export interface Fault<K> {
  at: number;
  kind: K;
  times: number;
}

export interface Step {
  advanceMinutes: number;
  lab: LabEvent[];
  /** Started together; a job-completed call's copies are concurrent duplicates. */
  triggers: TriggerSpec[];
  githubFaults: Fault<GitHubFaultKind>[];
  storeFaults: Fault<StoreFaultKind>[];
  /** The step's first dispatch kills its process just before, or just after, GitHub gets it. */
  crash: "before-dispatch" | "after-dispatch" | null;
}

export interface Scenario {
  maxResetAttempts: number;
  retryBackoffMinutes: number;
  /** False: dispatches are answered without the run id (GitHub Enterprise Server ≤ 3.20). */
  returnsRunId: boolean;
  steps: Step[];
}

const pairIndex = fc.nat({ max: seedConfig.pairs.length - 1 });
const weighted = <T>(...options: [number, fc.Arbitrary<T>][]) => fc.oneof(...options.map(([weight, arbitrary]) => ({ weight, arbitrary })));

const labEvent: fc.Arbitrary<LabEvent> = fc.record({
  kind: weighted<LabEvent["kind"]>(
    [4, fc.constant("job-start")],
    [4, fc.constant("job-end")],
    [2, fc.constant("short-job")],
    [2, fc.constant("busy-flag")],
    [4, fc.constant("reset-success")],
    [1, fc.constant("reset-failure")],
    [1, fc.constant("reset-hang")],
  ),
  pair: pairIndex,
  atCall: fc.option(fc.nat({ max: 12 }), { nil: null }),
});

const timer: TriggerSpec = { kind: "timer" };
const jobCompleted: fc.Arbitrary<TriggerSpec> = fc.record({ kind: fc.constant("job-completed" as const), run: fc.nat({ max: 5 }), copies: fc.integer({ min: 1, max: 4 }) });
const webhook: fc.Arbitrary<TriggerSpec> = fc.record({
  kind: fc.constant("webhook" as const),
  job: fc.nat({ max: 5 }),
  action: fc.constantFrom("in_progress" as const, "completed" as const),
  copies: fc.integer({ min: 1, max: 3 }),
});
const jobEnd = fc.oneof(jobCompleted, webhook.map((w) => ({ ...w, action: "completed" as const })));
const triggers = weighted<TriggerSpec[]>(
  [2, fc.constant([])],
  [3, fc.constant([timer])],
  [3, jobCompleted.map((j) => [j])],
  [3, webhook.map((w) => [w])],
  [2, fc.oneof(jobCompleted, webhook).map((j) => [timer, j])],
  [1, fc.array(fc.oneof(jobCompleted, webhook), { minLength: 2, maxLength: 4 })],
);

const faults = <K>(kinds: fc.Arbitrary<K>, maxAt: number): fc.Arbitrary<Fault<K>[]> =>
  weighted([2, fc.constant([])], [1, fc.array(fc.record({ at: fc.nat({ max: maxAt }), kind: kinds, times: fc.integer({ min: 1, max: 3 }) }), { minLength: 1, maxLength: 2 })]);

const advanceMinutes = weighted([3, fc.integer({ min: 0, max: 10 })], [1, fc.integer({ min: 11, max: 60 })]);

const busyStep: fc.Arbitrary<Step> = fc.record({
  advanceMinutes,
  lab: fc.array(labEvent, { maxLength: 3 }),
  triggers,
  githubFaults: faults(fc.constantFrom<GitHubFaultKind>("5xx", "5xx-after-effect", "429", "rate-limit-403", "timeout", "malformed", "422"), 14),
  storeFaults: faults(fc.constantFrom<StoreFaultKind>("503", "503-after-write", "412"), 8),
  crash: weighted<Step["crash"]>([10, fc.constant(null)], [1, fc.constantFrom("before-dispatch" as const, "after-dispatch" as const)]),
});

/** Many jobs end at once (a matrix finishing): every used idle pair must be dispatched by the reconciles they cause. */
const burstStep: fc.Arbitrary<Step> = fc.record({
  advanceMinutes,
  lab: fc.constant([]),
  triggers: fc.array(jobEnd, { minLength: 3, maxLength: 12 }),
  githubFaults: fc.constant([]),
  storeFaults: fc.constant([]),
  crash: fc.constant(null),
});

/** A timer tick with nothing else going on: the moment I3 is judged. */
const quietTick: fc.Arbitrary<Step> = advanceMinutes.map((minutes) => ({ advanceMinutes: minutes, lab: [], triggers: [timer], githubFaults: [], storeFaults: [], crash: null }));

export const scenarioArbitrary: fc.Arbitrary<Scenario> = fc.record({
  maxResetAttempts: fc.integer({ min: 2, max: 5 }),
  retryBackoffMinutes: fc.constantFrom(0, 5, 15),
  returnsRunId: fc.boolean(),
  steps: fc.array(weighted([4, busyStep], [1, quietTick], [1, burstStep]), { minLength: 1, maxLength: 25, size: "max" }),
});

// ---- The lab's truth, and what the app did ----

/** What the lab does, as the scenarios script it: played on the GitHub model. */
export interface LabControls {
  /** A perf run whose one job runs on `runnerName` from now on; returns the run's and the job's ids. */
  startPerfJob(runnerName: string): { runId: number; jobId: number };
  /** The run ends now, its jobs with it. */
  completeRun(runId: number, conclusion: "success" | "failure"): void;
  /** GitHub's busy flag of a runner (it lags the jobs: the tests move it on their own). */
  setBusy(runnerName: string, busy: boolean): void;
}

function labControls(model: GitHubModel): LabControls {
  return {
    startPerfJob: (runnerName) => {
      const runId = Number(model.addRun({ name: "perf", status: "in_progress", jobs: [{ runnerName, labels: ["self-hosted", "lab"] }] }).id);
      return { runId, jobId: Number(model.listJobs(runId)![0]!.id) };
    },
    completeRun: (runId, conclusion) => model.setRun(runId, { status: "completed", conclusion }),
    setBusy: (runnerName, busy) => model.setRunner(runnerName, { busy }),
  };
}

/** A reset run created by a dispatch, as the lab sees it. */
interface CreatedResetRun {
  pairId: string;
  requestId: string;
  runId: number;
}

/** The process handling a trigger died (a crash between claim and dispatch, or just after the dispatch). */
class ProcessCrash extends Error {}

class FaultPlan<K> {
  private count = 0;
  fired = 0;
  constructor(private readonly faults: Fault<K>[]) {}
  /** The fault for the next call, if it is in a fault's window. */
  next(): K | undefined {
    const n = this.count++;
    const fault = this.faults.find((f) => n >= f.at && n < f.at + f.times);
    if (fault) this.fired++;
    return fault?.kind;
  }
}

interface PerfJob {
  pairId: string;
  runId: number;
  jobId: number;
  startedAt: number;
  /** A webhook's start of this job was recorded (2xx), and when its end was (webhook or job-completed). */
  startRecorded: boolean;
  endRecorded: boolean;
  /** Order of the start among all calls and events, to compare with the app's looks. */
  startSeq: number;
  endedAt: number | null;
}

interface ResetRun extends CreatedResetRun {
  createdAt: number;
  state: "in-flight" | "hung" | "success" | "failure" | "cancelled";
}

/** One trigger's view of GitHub: its latest runner and job listings, and when it made them. */
interface Call {
  id: number;
  runners?: { seq: number; value: Runner[] };
  jobs?: { seq: number; value: Job[] };
}

const lower = (s: string) => s.toLowerCase();
const ms = (iso: string | null) => (iso === null ? -Infinity : Date.parse(iso));

/**
 * Whether a pair's record still owes the VM a reset for a job that ended at `endedAt` (I4): a
 * clean pair if a reset was requested after the job ended, or it counts a job since its reset
 * (decide resets it); a pair being reset if that reset was requested after the job, or the record
 * knows of a job after the request (it goes dirty when the reset ends). Every other state resets
 * the pair before it is clean again.
 */
export function remembersJob(r: PairRecord | undefined, endedAt: number): boolean {
  if (!r) return false;
  const requested = ms(r.resetDispatchedAt);
  if (r.state === "clean") return requested >= endedAt || r.jobSinceReset;
  if (r.state === "resetting") return requested >= endedAt || ms(r.lastJobAt) > requested;
  return true;
}

export type Mode = { kind: "memory"; scheduler: fc.Scheduler } | { kind: "http" };

const config = (scenario: Scenario): LabConfig => ({
  ...seedConfig,
  // Periodic resets would hide a forgotten job (I3); two weeks is longer than any scenario.
  freshForMinutes: 14 * 24 * 60,
  resetTimeoutMinutes: 30,
  maxResetAttempts: scenario.maxResetAttempts,
  retryBackoffMinutes: scenario.retryBackoffMinutes,
});

const ALLOWED_FOR_OWED = new Set(["reset-dispatched", "already-resetting", "reset-failed", "retry-later", "gave-up"]);

export class PropertyLab {
  private now = new Date("2026-11-27T12:00:00.000Z");
  private seq = 0;
  private nextCallId = 0;
  private readonly violations: string[] = [];
  private readonly log: string[] = [];
  private readonly jobs: PerfJob[] = [];
  private readonly resets: ResetRun[] = [];
  private readonly busyFlags = new Map<string, boolean>();
  /** Request ids sent to GitHub, and those the app stopped following. */
  private readonly dispatched = new Set<string>();
  private readonly ended = new Set<string>();
  /** Claims written to the store: request id → the call that wrote it, and when. */
  private readonly claims = new Map<string, { callId: number; seq: number }>();
  /** What the store holds, as the writes through it left it. */
  private readonly records = new Map<string, PairRecord>();
  /** I4: jobs of runs whose job-completed call was answered 2xx. */
  private readonly accepted: { pairId: string; runId: number; endedAt: number }[] = [];
  private githubFaults = new FaultPlan<GitHubFaultKind>([]);
  private storeFaults = new FaultPlan<StoreFaultKind>([]);
  private crash: Step["crash"] = null;
  private crashed = false;
  /** "http": lab events waiting for the step's n-th GitHub call. */
  private pending: LabEvent[] = [];
  private githubCalls = 0;
  private runtime!: Runtime;
  /** What triggers queued, served by two app instances' queue functions. */
  private readonly queue = new MemoryReconcileQueue(() => this.now);
  private workers: ReconcileWorker[] = [];
  /** "memory": queue pick-ups scheduled by sends, awaited by the step. */
  private readonly pickups: Promise<void>[] = [];
  private pickupCount = 0;
  /** Facts the app recorded, as they landed. */
  readonly facts: JobFact[] = [];
  /** Reconciles this step ran, and whether a trigger ran with no fault injected but failed. */
  private stepResults: ReconcileResult[] = [];
  private controls!: LabControls;
  /** The store every trigger shares (each sees it through a RecordingStore). */
  store!: PairStore;
  private close: () => Promise<void> = () => Promise.resolve();
  readonly config: LabConfig;
  readonly logger: Logger = {
    info: (m: string) => this.note(m),
    warn: (m: string) => this.note(m),
    error: (m: string) => this.note(m),
  };

  private constructor(
    private readonly scenario: Scenario,
    private readonly mode: Mode,
  ) {
    this.config = config(scenario);
  }

  /** Runs the scenario, then lets the lab settle; throws at the first broken invariant. */
  static async run(scenario: Scenario, mode: Mode): Promise<void> {
    const lab = new PropertyLab(scenario, mode);
    await lab.open();
    try {
      for (const [i, step] of scenario.steps.entries()) {
        await lab.step(step);
        lab.check(`step ${i + 1}`);
      }
      await lab.settle();
      lab.check("settling");
    } finally {
      await lab.close();
    }
  }

  private clock = () => this.now;

  private tick(seconds: number) {
    this.now = new Date(this.now.getTime() + seconds * 1000);
  }

  private note(line: string) {
    this.log.push(line);
    if (this.log.length > 40) this.log.shift();
  }

  private violation(message: string) {
    this.violations.push(message);
  }

  private check(where: string) {
    for (const job of this.accepted) {
      if (!this.owesReset(job)) {
        this.violation(`I4: ${job.pairId}'s job of run ${job.runId} was accepted, but the store forgot it: ${JSON.stringify(this.records.get(job.pairId))}`);
      }
    }
    for (const r of this.records.values()) {
      // The reason tells the latest news; the failure itself stays in lastError and retryAfter.
      if (r.state === "failed" && (r.lastError === null || r.retryAfter === null)) {
        this.violation(`I5: ${r.pairId} is failed without its error and next try: ${JSON.stringify(r)}`);
      }
      if (r.state === "failed" && r.attempts >= this.config.maxResetAttempts && !/gave up after/.test(r.reason)) {
        this.violation(`I5: ${r.pairId} failed ${r.attempts} times (the cap) but its record does not say it gave up: ${r.reason}`);
      }
    }
    if (this.violations.length > 0) {
      throw new Error(`${where}: ${this.violations.join("\n")}\nlast log lines:\n  ${this.log.join("\n  ")}`);
    }
  }

  // ---- setting up the two ways to reach GitHub ----

  private async open() {
    const store = new MemoryStore();
    const app = { facts: new RecordingFacts(this, new MemoryFactStore()), coverage: new MemoryCoverageStore(), queue: new RecordingQueue(this, this.queue) };
    const settings = { OIDC_DISABLED: "true", GITHUB_WEBHOOK_SECRET: WEBHOOK_SECRET };
    const labels = (pair: Pair) => ["lab", "os-windows-2022", pair.vmRunnerLabel];
    const ghes = !this.scenario.returnsRunId;
    const standin = this.mode.kind === "http" ? await GitHubStandin.start({ clock: this.clock, ghes }) : undefined;
    const model = standin?.model ?? new GitHubModel({ clock: this.clock, ghes });
    for (const pair of this.config.pairs) {
      model.addRunner({ name: vmRunnerName(pair.id), labels: labels(pair) });
      for (const host of pair.hosts) model.addRunner({ name: hostRunnerName(host.runnerLabel), labels: [host.runnerLabel] });
    }
    model.onDispatch = (d, run) => this.resetCreated({ pairId: String(d.inputs.pair), requestId: String(d.inputs.request_id), runId: Number(run.id) });
    this.controls = labControls(model);
    if (standin === undefined) {
      // Faults come as the client's answers after its retries (recordingGitHub), so none reach the model.
      const github = new ModelLabGitHub(model, this.config);
      this.runtime = await createRuntime(readSettings(settings), this.config, { github, store, ...app, clock: this.clock, logger: this.logger });
    } else {
      this.runtime = await createRuntime(readSettings({ GITHUB_API_URL: standin.url, GITHUB_TOKEN: standin.token, ...settings }), this.config, {
        store,
        ...app,
        clock: this.clock,
        logger: this.logger,
        // One retry, no waiting: the faults below decide what the client sees, not the wall clock.
        githubClient: { retries: 1, retryBaseMs: 0, timeoutMs: 10_000, maxRateLimitWaitSeconds: 2, writeSpacingMs: 0, rateLimitBaseMs: 1 },
      });
      const restoreTimers = useImmediateZeroTimeouts();
      const realFetch = globalThis.fetch;
      globalThis.fetch = (input, init) => this.fetchWithFaults(realFetch, input, init);
      this.close = async () => {
        globalThis.fetch = realFetch;
        restoreTimers();
        await standin.close();
      };
    }
    this.store = store;
    this.workers = [this.newWorker(), this.newWorker()];
    if (this.mode.kind === "memory") {
      const { scheduler } = this.mode;
      this.queue.onSend = () => {
        const instance = this.pickupCount++;
        this.pickups.push(scheduler.schedule(Promise.resolve(), `queue pick-up ${instance}`).then(() => this.serveQueue(instance)));
      };
    }
  }

  /** An app instance's queue function: each reconcile it runs sees GitHub and the store as one call. */
  private newWorker(): ReconcileWorker {
    return new ReconcileWorker(() => {
      const call: Call = { id: ++this.nextCallId };
      return { ...this.runtime, github: this.recordingGitHub(call), store: new RecordingStore(this, call.id) };
    });
  }

  private resetCreated(run: CreatedResetRun) {
    this.resets.push({ ...run, createdAt: this.now.getTime(), state: "in-flight" });
  }

  /** GitHub's faults as HTTP answers, the way GitHub and proxies send them. */
  private async fetchWithFaults(realFetch: typeof fetch, input: string | URL | Request, init?: RequestInit): Promise<Response> {
    const fault = this.githubFaults.next();
    const json = (status: number, body: unknown, headers: Record<string, string> = {}) =>
      new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json; charset=utf-8", ...headers } });
    switch (fault) {
      case undefined:
        return realFetch(input, init);
      case "5xx":
        return json(502, { message: "Server Error" });
      case "5xx-after-effect": {
        // GitHub did the work (a dispatch created its run), but the answer was lost on the way.
        await (await realFetch(input, init)).arrayBuffer();
        return json(502, { message: "Server Error" });
      }
      case "429":
        return json(429, { message: "You have exceeded a secondary rate limit. Please wait a few minutes before you try again." }, { "retry-after": "1" });
      case "rate-limit-403":
        return json(403, { message: "API rate limit exceeded for installation ID 1." }, { "x-ratelimit-remaining": "0", "x-ratelimit-reset": String(Math.floor(Date.now() / 1000) + 3600) });
      case "timeout":
        throw new DOMException("The operation was aborted due to timeout", "TimeoutError");
      case "malformed":
        return new Response('{"total_count": 2, "runners": [{"id": 1, "na', { status: 200, headers: { "content-type": "application/json; charset=utf-8" } });
      case "422":
        return json(422, { message: "Invalid request.\n\nFor 'properties/inputs', nil is not an object." });
    }
  }

  // ---- one step ----

  private async step(step: Step) {
    this.tick(step.advanceMinutes * 60);
    this.githubFaults = new FaultPlan(step.githubFaults);
    this.storeFaults = new FaultPlan(step.storeFaults);
    this.crash = step.crash;
    this.crashed = false;
    this.githubCalls = 0;
    this.stepResults = [];
    const calls = step.triggers.flatMap((t) => (t.kind === "timer" ? [t] : Array<TriggerSpec>(t.copies).fill(t)));
    const calm = step.lab.length === 0 && step.githubFaults.length === 0 && step.storeFaults.length === 0 && step.crash === null;
    const quiet = calm && calls.length === 1 && calls[0]!.kind === "timer";
    const burst = calm && calls.length >= 3 && calls.every((t) => t.kind === "job-completed" || (t.kind === "webhook" && t.action === "completed"));
    const owed = quiet || burst ? this.owedIdlePairs() : new Map<string, number>();

    if (this.mode.kind === "memory") {
      const { scheduler } = this.mode;
      const lab = step.lab.map((e) => scheduler.schedule(Promise.resolve(), `lab: ${e.kind} ${this.pairId(e.pair)}`).then(() => this.labEvent(e)));
      // Each trigger's message is picked up by one of two instances as soon as it is queued.
      // Each message is picked up by one of two instances at a moment the scheduler picks, possibly
      // before the send that inserted it has been answered.
      await scheduler.waitFor(Promise.all([...lab, ...calls.map((t) => this.trigger(t))]));
      while (this.pickups.length > 0) await scheduler.waitFor(Promise.all(this.pickups.splice(0)));
      // What a failed reconcile left on the queue is picked up again (the host's retry).
      await scheduler.waitFor(this.serveQueue(0));
    } else {
      for (const e of step.lab) if (e.atCall === null) this.labEvent(e);
      this.pending = step.lab.filter((e) => e.atCall !== null);
      for (const [i, t] of calls.entries()) {
        await this.trigger(t);
        await this.serveQueue(i);
      }
      for (const e of this.pending) this.labEvent(e);
      this.pending = [];
    }
    if (quiet) this.checkBackstop(owed, this.stepResults.find((r) => r.trigger === "timer"));
    if (burst) this.checkBurst(owed);
  }

  /** The queue trigger: an instance takes what is queued and serves it; a failed message waits for the next pick-up. */
  private async serveQueue(instance: number): Promise<void> {
    const taken = this.queue.takeAll();
    const k = instance % this.workers.length;
    const faulted = () => this.githubFaults.fired + this.storeFaults.fired > 0 || this.crashed;
    const failed: QueuedMessage[] = [];
    await Promise.all(
      taken.map(async (queued) => {
        try {
          const outcome = await this.workers[k]!.serve(queued, this.logger);
          if (outcome.served === "reconciled" && !this.stepResults.includes(outcome.result)) this.stepResults.push(outcome.result);
        } catch (error) {
          // The instance died, or the reconcile could not finish: the host retries the message later.
          if (error instanceof ProcessCrash) this.workers[k] = this.newWorker();
          else if (!faulted()) this.violation(`a ${queued.message.trigger} reconcile failed with no fault injected: ${(error as Error).message}`);
          failed.push(queued);
        }
      }),
    );
    for (const queued of failed) this.queue.putBack(queued);
  }

  private pairId(index: number): string {
    return this.config.pairs[index]!.id;
  }

  private labEvent(e: LabEvent) {
    this.tick(1);
    const pair = this.config.pairs[e.pair]!;
    const runner = vmRunnerName(pair.id);
    const running = this.runningJob(pair.id);
    switch (e.kind) {
      case "job-start":
        if (!running) this.startJob(pair.id);
        return;
      case "job-end":
        if (running) this.endJob(running);
        return;
      case "short-job":
        if (!running) {
          const job = this.startJob(pair.id);
          this.tick(1);
          this.endJob(job);
        }
        return;
      case "busy-flag":
        this.setBusy(runner, running !== undefined);
        return;
      default: {
        const reset = this.resets.find((r) => r.pairId === pair.id && r.state === "in-flight");
        if (!reset) return;
        if (e.kind === "reset-hang") {
          reset.state = "hung";
          return;
        }
        // The reset workflow refuses a VM that runs a job (infra/github/lab-reset.yml).
        reset.state = e.kind === "reset-success" && !running ? "success" : "failure";
        this.controls.completeRun(reset.runId, reset.state);
      }
    }
  }

  private startJob(pairId: string): PerfJob {
    const { runId, jobId } = this.controls.startPerfJob(vmRunnerName(pairId));
    const job: PerfJob = { pairId, runId, jobId, startedAt: this.now.getTime(), startRecorded: false, endRecorded: false, startSeq: ++this.seq, endedAt: null };
    this.jobs.push(job);
    return job;
  }

  private endJob(job: PerfJob) {
    this.controls.completeRun(job.runId, "success");
    job.endedAt = this.now.getTime();
  }

  private setBusy(runner: string, busy: boolean) {
    this.busyFlags.set(runner, busy);
    this.controls.setBusy(runner, busy);
  }

  private runningJob(pairId: string): PerfJob | undefined {
    return this.jobs.find((j) => j.pairId === pairId && j.endedAt === null);
  }

  // ---- triggers, as the Functions host runs them ----

  private async trigger(spec: TriggerSpec): Promise<void> {
    this.tick(1);
    const call: Call = { id: ++this.nextCallId };
    const runtime: Runtime = { ...this.runtime, github: this.recordingGitHub(call), store: new RecordingStore(this, call.id) };
    const faulted = () => this.githubFaults.fired + this.storeFaults.fired > 0 || this.crashed;
    const repository = `${this.config.github.owner}/${this.config.github.repo}`;
    if (spec.kind === "timer") {
      try {
        await scheduledReset(runtime, this.logger);
      } catch (error) {
        if (!faulted()) this.violation(`the timer failed with no fault injected: ${(error as Error).message}`);
      }
      return;
    }
    let response;
    let jobs: PerfJob[];
    if (spec.kind === "job-completed") {
      const ended = this.jobs.filter((j) => j.endedAt !== null).reverse();
      if (ended.length === 0) return; // a run calls job-completed only after it ended
      const run = ended[spec.run % ended.length]!;
      jobs = this.jobs.filter((j) => j.runId === run.runId);
      response = await jobCompletedHandler(runtime, JSON.stringify({ repository, runId: run.runId }), this.logger);
    } else {
      // A job's start may be delivered late, after its end (deliveries arrive out of order).
      const candidates = this.jobs.filter((j) => spec.action === "in_progress" || j.endedAt !== null).reverse();
      if (candidates.length === 0) return;
      const job = candidates[spec.job % candidates.length]!;
      jobs = [job];
      const payload = workflowJobPayload(spec.action, {
        runnerName: vmRunnerName(job.pairId),
        runId: job.runId,
        jobId: job.jobId,
        startedAt: new Date(job.startedAt).toISOString(),
        completedAt: spec.action === "completed" ? new Date(job.endedAt!).toISOString() : null,
        repository,
      });
      response = await githubWebhook(runtime, await signedDelivery(payload), this.logger);
    }
    if (response.status === 200 || response.status === 202) {
      if (spec.kind === "webhook" && spec.action === "in_progress") {
        jobs[0]!.startRecorded = true;
        return;
      }
      // I4: the job's end is recorded (a fact the reconcile folds in, or the record itself) right after the 2xx.
      for (const job of jobs) {
        job.endRecorded = true;
        const accepted = { pairId: job.pairId, runId: job.runId, endedAt: job.endedAt! };
        this.accepted.push(accepted);
        if (!this.owesReset(accepted)) this.violation(`I4: a job end of run ${job.runId} was answered ${response.status}, but neither a fact nor ${job.pairId}'s record holds it`);
      }
    } else if (!(response.status === 503 && faulted())) {
      this.violation(`${spec.kind} for run ${jobs[0]?.runId} answered ${response.status} with no fault injected: ${JSON.stringify(response.body)}`);
    }
  }

  /** I4: the store still owes the VM a reset for an accepted job end: a recorded fact of it, or the record. */
  private owesReset(job: { pairId: string; runId: number; endedAt: number }): boolean {
    const runner = lower(vmRunnerName(job.pairId));
    const fact = this.facts.some((f) => f.phase === "ended" && f.runId === job.runId && lower(f.runnerName) === runner);
    return fact || remembersJob(this.records.get(job.pairId), job.endedAt);
  }

  /** Waits for the scheduler ("memory") or for the lab events due at this call ("http"). */
  pause(label: string): Promise<void> {
    if (this.mode.kind === "memory") return this.mode.scheduler.schedule(Promise.resolve(), label).then(() => undefined);
    const due = this.pending.filter((e) => e.atCall !== null && e.atCall <= this.githubCalls);
    this.pending = this.pending.filter((e) => !due.includes(e));
    for (const e of due) this.labEvent(e);
    return Promise.resolve();
  }

  /** Every LabGitHub method, including any added later, goes through the same pauses, faults and checks. */
  private recordingGitHub(call: Call): LabGitHub {
    const inner = this.runtime.github;
    return new Proxy(inner, {
      get: (target, property, receiver) => {
        const value: unknown = Reflect.get(target, property, receiver);
        if (typeof value !== "function") return value;
        const method = value as (...args: unknown[]) => unknown;
        if (property === "stats") return method.bind(target);
        return async (...args: unknown[]) => {
          await this.pause(`call ${call.id}: GitHub ${String(property)}`);
          this.githubCalls++;
          const seq = ++this.seq;
          if (property === "dispatchReset") return this.dispatch(call, args[0] as Pair, args[1] as string, () => method.apply(target, args) as Promise<DispatchResult>);
          const fault = this.mode.kind === "memory" ? this.githubFaults.next() : undefined;
          if (fault) throw readFailure(String(property), fault);
          const result: unknown = await method.apply(target, args);
          if (property === "cancelRun") this.cancelled(args[0] as number);
          if (property === "listRunners") call.runners = { seq, value: result as Runner[] };
          if (property === "listActiveJobs") call.jobs = { seq, value: result as Job[] };
          return result;
        };
      },
    });
  }

  private async dispatch(call: Call, pair: Pair, requestId: string, send: () => Promise<DispatchResult>): Promise<DispatchResult> {
    if (this.crash === "before-dispatch") return this.die(`before dispatching ${requestId} for ${pair.id}`);
    this.checkDispatch(call, pair, requestId);
    this.dispatched.add(requestId);
    const fault = this.mode.kind === "memory" ? this.githubFaults.next() : undefined;
    let result: DispatchResult;
    switch (fault) {
      case undefined:
        result = await send();
        break;
      case "5xx-after-effect":
        await send();
        result = { outcome: "unknown", error: "GitHub POST …/dispatches failed with 502: Server Error" };
        break;
      case "malformed":
        await send();
        result = { outcome: "dispatched", runId: null };
        break;
      case "422":
      case "rate-limit-403":
        result = { outcome: "rejected", error: `GitHub POST …/dispatches failed with ${fault === "422" ? 422 : 403}: ${fault}` };
        break;
      default:
        result = { outcome: "unknown", error: `GitHub POST …/dispatches failed: ${fault}` };
    }
    if (this.crash === "after-dispatch") return this.die(`after dispatching ${requestId} for ${pair.id}`);
    return result;
  }

  /** The app cancelled a run; one already finished keeps its conclusion. */
  private cancelled(runId: number) {
    const reset = this.resets.find((r) => r.runId === runId);
    if (reset && (reset.state === "in-flight" || reset.state === "hung")) reset.state = "cancelled";
  }

  private die(where: string): never {
    this.crash = null;
    this.crashed = true;
    throw new ProcessCrash(`process crashed ${where}`);
  }

  /** I1 and I2, at the moment a dispatch is sent. */
  private checkDispatch(call: Call, pair: Pair, requestId: string) {
    const claim = this.claims.get(requestId);
    const stored = this.records.get(pair.id);
    if (!claim || claim.callId !== call.id) this.violation(`I1: call ${call.id} dispatched ${requestId} for ${pair.id} without having claimed it`);
    if (stored?.state !== "resetting" || stored.resetRequestId !== requestId) {
      this.violation(`I1: ${requestId} for ${pair.id} dispatched while the store holds no such claim: ${JSON.stringify(stored)}`);
    }
    const { runners, jobs } = call;
    if (!claim || !runners || !jobs || runners.seq < claim.seq || jobs.seq < claim.seq) {
      this.violation(`I1: ${pair.id} dispatched without a look at its runners and jobs after its claim`);
    } else {
      const vm = runners.value.filter((r) => r.labels.some((l) => lower(l.name) === lower(pair.vmRunnerLabel)));
      const vmNames = new Set(vm.map((r) => lower(r.name)));
      if (vm.some((r) => r.busy)) this.violation(`I1: ${pair.id} dispatched although the look after its claim showed its VM runner busy`);
      const job = jobs.value.find((j) => vmNames.has(lower(j.runner_name ?? "")));
      if (job) this.violation(`I1: ${pair.id} dispatched although the look after its claim showed run ${job.run_id} on its VM`);
      const running = this.runningJob(pair.id);
      if (running && running.startSeq < jobs.seq) this.violation(`I1: ${pair.id} dispatched while run ${running.runId}, started before the look after the claim, runs on its VM`);
    }
    for (const r of this.resets) {
      if (r.pairId === pair.id && (r.state === "in-flight" || r.state === "hung") && !this.ended.has(r.requestId)) {
        this.violation(`I2: ${pair.id} dispatched ${requestId} while its reset run ${r.runId} (request ${r.requestId}) is still followed`);
      }
    }
    if (this.dispatched.has(requestId)) this.violation(`I2: request ${requestId} for ${pair.id} dispatched twice`);
  }

  // ---- the store's writes, as they land ----

  storeFault(): StoreFaultKind | undefined {
    return this.storeFaults.next();
  }

  stamp(): string {
    return this.now.toISOString();
  }

  /** A write landed: follow claims, ends and failures (I1, I2, I5). */
  written(next: PairRecord, callId: number) {
    const prev = this.records.get(next.pairId);
    const seq = ++this.seq;
    this.records.set(next.pairId, structuredClone(next));
    const { maxResetAttempts: max, retryBackoffMinutes, resetTimeoutMinutes } = this.config;
    if (next.state === "resetting" && next.resetRequestId !== null && next.resetRequestId !== prev?.resetRequestId) {
      this.claims.set(next.resetRequestId, { callId, seq });
      if (next.attempts > max) this.violation(`I5: ${next.pairId} claimed reset attempt ${next.attempts}, over the cap of ${max}`);
      if (prev?.state === "failed" && ms(next.resetDispatchedAt) < ms(prev.retryAfter)) {
        this.violation(`I5: ${next.pairId} retried at ${next.resetDispatchedAt}, before its backoff ended at ${prev.retryAfter}`);
      }
    }
    if (prev?.state === "resetting" && prev.resetRequestId !== null && (next.state !== "resetting" || next.resetRequestId !== prev.resetRequestId)) {
      this.ended.add(prev.resetRequestId);
      const run = this.resets.find((r) => r.requestId === prev.resetRequestId);
      const waited = ms(next.updatedAt) - ms(prev.resetDispatchedAt);
      if (run && (run.state === "in-flight" || run.state === "hung") && waited <= resetTimeoutMinutes * 60_000) {
        this.violation(`I2: ${next.pairId} stopped following reset run ${run.runId} after ${waited / 60_000} minutes while it was in flight`);
      }
    }
    if (next.state === "failed" && next.retryAfter !== prev?.retryAfter) {
      const backoff = Math.min(retryBackoffMinutes * 2 ** Math.max(0, next.attempts - 1), 24 * 60) * 60_000;
      if (ms(next.retryAfter) - ms(next.updatedAt) !== backoff) this.violation(`I5: ${next.pairId} failed at ${next.updatedAt} with retryAfter ${next.retryAfter}; expected ${backoff / 60_000} minutes of backoff`);
      if (!next.lastError || !next.reason.includes(next.lastError)) this.violation(`I5: ${next.pairId}'s failure does not record its error: ${JSON.stringify(next)}`);
    }
    if (next.state === "failed" && /^gave up after/.test(next.reason) && next.attempts < max) this.violation(`I5: ${next.pairId} gave up after ${next.attempts} of ${max} attempts`);
  }

  // ---- I3: the timer resets every pair that ran a job, once faults have cleared ----

  /** Idle pairs that ran a job no successful reset requested after its end covers, with that end. */
  private owedIdlePairs(): Map<string, number> {
    const owed = new Map<string, number>();
    for (const pair of this.config.pairs) {
      const ends = this.jobs.filter((j) => j.pairId === pair.id && j.endedAt !== null).map((j) => j.endedAt!);
      if (ends.length === 0 || this.runningJob(pair.id) || this.busyFlags.get(vmRunnerName(pair.id)) || this.heldByStart(pair.id)) continue;
      const last = Math.max(...ends);
      const covered = this.resets.some((r) => r.pairId === pair.id && r.state === "success" && r.createdAt >= last);
      if (!covered) owed.set(pair.id, last);
    }
    return owed;
  }

  /** The app holds a pair busy while its latest recorded job start has no recorded end, for 15 minutes (as job-facts.ts). */
  private heldByStart(pairId: string): boolean {
    const runner = lower(vmRunnerName(pairId));
    const onPair = this.facts.filter((f) => lower(f.runnerName) === runner);
    const start = onPair.filter((f) => f.phase === "started").sort((a, b) => (a.at < b.at ? 1 : -1))[0];
    if (!start) return false;
    const over = onPair.some((f) => f.phase === "ended" && (f.jobId === start.jobId || f.at > start.at));
    return !over && this.now.getTime() < Date.parse(start.at) + 15 * 60_000;
  }

  /** After a burst of job ends, every idle pair whose last job's end it delivered has a reset requested (or failed). */
  private checkBurst(owed: Map<string, number>) {
    for (const [pairId, endedAt] of owed) {
      const last = this.jobs.filter((j) => j.pairId === pairId && j.endedAt === endedAt)[0];
      if (!last?.endRecorded || this.heldByStart(pairId)) continue;
      const r = this.records.get(pairId);
      const requested = r !== undefined && ms(r.resetDispatchedAt) >= endedAt;
      if (!(r?.state === "resetting" || r?.state === "failed" || (r?.state === "clean" && requested))) {
        this.violation(`burst: ${pairId}'s job ended at ${new Date(endedAt).toISOString()}, its end was delivered and the pair is idle, but no reset was requested: ${JSON.stringify(r)}`);
      }
    }
  }

  private checkBackstop(owed: Map<string, number>, result: ReconcileResult | undefined) {
    if (!result) return; // already reported: a quiet timer tick failed
    for (const [pairId, endedAt] of owed) {
      const decision = result.pairs.find((p) => p.id === pairId)?.decision;
      const record = this.records.get(pairId);
      if (!ALLOWED_FOR_OWED.has(decision ?? "") || !remembersJob(record, endedAt)) {
        this.violation(`I3: ${pairId} ran a job that ended at ${new Date(endedAt).toISOString()} and is idle, but the timer decided ${decision}: ${JSON.stringify(record)}`);
      }
    }
  }

  /** Faults clear, jobs end (their job-completed calls lost), resets finish: every pair must end clean, or failed having given up. */
  private async settle() {
    for (const pair of this.config.pairs) {
      const runner = vmRunnerName(pair.id);
      const running = this.runningJob(pair.id);
      if (running) {
        this.tick(1);
        this.endJob(running);
      }
      this.setBusy(runner, false);
    }
    // The next timer tick at once, then ticks 6 hours apart (the default schedule): past any reset
    // timeout and any backoff these scenarios reach, and well within the backstop's look back.
    for (let round = 0; round < 6; round++) {
      for (const reset of this.resets.filter((r) => r.state === "in-flight")) {
        reset.state = "success";
        this.controls.completeRun(reset.runId, "success");
      }
      await this.step({ advanceMinutes: round === 0 ? 1 : 6 * 60, lab: [], triggers: [timer], githubFaults: [], storeFaults: [], crash: null });
      this.check(`settling, round ${round + 1}`);
      if (this.config.pairs.every((p) => this.settled(this.records.get(p.id)))) break;
    }
    const owed = this.owedIdlePairs();
    for (const pair of this.config.pairs) {
      const r = this.records.get(pair.id);
      if (!this.settled(r) || (r?.state === "clean" && owed.has(pair.id))) {
        this.violation(`I3/I5: ${pair.id} did not settle clean (or failed, having given up) once faults cleared: ${JSON.stringify(r)}`);
      }
    }
  }

  /** Clean, or failed having given up (the cap of attempts reached, said so in the record). */
  private settled(r: PairRecord | undefined): boolean {
    return r?.state === "clean" || (r?.state === "failed" && r.attempts >= this.config.maxResetAttempts && /gave up after/.test(r.reason));
  }
}

function readFailure(method: string, fault: GitHubFaultKind): GitHubError {
  const status = { "5xx": 502, "5xx-after-effect": 502, "429": 429, "rate-limit-403": 403, timeout: null, malformed: null, "422": 422 }[fault];
  return new GitHubError(method, status, fault === "malformed" ? "unexpected answer: runners: expected array" : fault);
}

/** The store as one trigger sees it: every call waits its turn, and may get a 412 or a 503. */
class RecordingStore implements PairStore {
  constructor(
    private readonly lab: PropertyLab,
    private readonly callId: number,
  ) {}

  private async begin(call: string): Promise<StoreFaultKind | undefined> {
    await this.lab.pause(`call ${this.callId}: Table ${call}`);
    return this.lab.storeFault();
  }

  private unavailable(call: string): StoreError {
    return new StoreError(call, new Error("503 Service Unavailable"));
  }

  async listPairs(): Promise<StoredPair[]> {
    if ((await this.begin("list pairs")) === "503") throw this.unavailable("list pairs");
    return this.lab.store.listPairs();
  }

  async getPair(pairId: string): Promise<StoredPair | null> {
    if ((await this.begin(`read pair ${pairId}`)) === "503") throw this.unavailable(`read pair ${pairId}`);
    return this.lab.store.getPair(pairId);
  }

  createPair(record: PairRecord): Promise<string> {
    return this.write(`create pair ${record.pairId}`, record, () => this.lab.store.createPair(record));
  }

  replacePair(record: PairRecord, etag: string): Promise<string> {
    return this.write(`update pair ${record.pairId}`, record, () => this.lab.store.replacePair(record, etag));
  }

  private async write(call: string, record: PairRecord, send: () => Promise<string>): Promise<string> {
    const fault = await this.begin(call);
    if (fault === "503") throw this.unavailable(call);
    if (fault === "412") {
      // Another writer gets there first: the same record, written again, changes its ETag.
      const current = await this.lab.store.getPair(record.pairId);
      const other = { ...(current?.record ?? record), updatedAt: this.lab.stamp() };
      await (current ? this.lab.store.replacePair(other, current.etag) : this.lab.store.createPair(other));
      this.lab.written(other, 0);
    }
    const etag = await send();
    this.lab.written(record, this.callId);
    // The write landed, but its answer did not.
    if (fault === "503-after-write") throw this.unavailable(call);
    return etag;
  }

  async appendEvents(events: PairEvent[]): Promise<void> {
    const fault = await this.begin("append events");
    if (fault === "503") throw this.unavailable("append events");
    await this.lab.store.appendEvents(events);
    if (fault === "503-after-write") throw this.unavailable("append events");
  }

  listEvents(pairId: string, limit?: number): Promise<PairEvent[]> {
    return this.lab.store.listEvents(pairId, limit);
  }

  listEventsSince(pairId: string, since: Date): Promise<PairEvent[]> {
    return this.lab.store.listEventsSince(pairId, since);
  }
}

/** The facts store as the app sees it: every call waits its turn, and may get a 503 (before or after it lands). */
class RecordingFacts implements FactStore {
  constructor(
    private readonly lab: PropertyLab,
    private readonly inner: FactStore,
  ) {}

  async record(facts: JobFact[]): Promise<boolean[]> {
    await this.lab.pause("Table record facts");
    const fault = this.lab.storeFault();
    if (fault === "503") throw new StoreError("record job facts", new Error("503 Service Unavailable"));
    const fresh = await this.inner.record(facts);
    facts.forEach((f, i) => fresh[i] && this.lab.facts.push(structuredClone(f)));
    if (fault === "503-after-write") throw new StoreError("record job facts", new Error("503 Service Unavailable"));
    return fresh;
  }

  async listSince(since: Date): Promise<StoredFact[]> {
    await this.lab.pause("Table list facts");
    if (this.lab.storeFault() === "503") throw new StoreError("list job facts", new Error("503 Service Unavailable"));
    return this.inner.listSince(since);
  }

  prune(before: Date): Promise<number> {
    return this.inner.prune(before);
  }
}

/** The queue as the triggers see it: a send may fail with a 503. */
class RecordingQueue implements ReconcileQueue {
  constructor(
    private readonly lab: PropertyLab,
    private readonly inner: ReconcileQueue,
  ) {}

  now(): Promise<Date> {
    return this.inner.now();
  }

  async send(message: ReconcileMessage, options?: SendOptions): Promise<void> {
    await this.lab.pause("Queue send");
    const fault = this.lab.storeFault();
    if (fault === "503") throw new StoreError("queue a reconcile", new Error("503 Service Unavailable"));
    await this.inner.send(message, options);
    // Inserted: a queue function may take it before this answer arrives.
    await this.lab.pause("Queue send answer");
    if (fault === "503-after-write") throw new StoreError("queue a reconcile", new Error("503 Service Unavailable"));
  }
}
