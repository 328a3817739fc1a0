/**
 * GitHub in process memory: a lab's runners, runs and jobs behind the LabGitHub interface, with no
 * HTTP, so the property tests (test/properties.test.ts) run a thousand interleavings in seconds.
 * Its answers have the shapes OctokitLabGitHub returns after its zod checks (timestamps included),
 * and the same lab controls drive it as drive the GitHub stand-in.
 */
import type { LabConfig, Pair } from "../../shared/lab/config.js";
import type { DispatchResult, Job, LabelEditResult, LabGitHub, Run, Runner } from "../../shared/github/client.js";

/** What the lab does, as the tests script it; implemented by this class and over the GitHub stand-in. */
export interface LabControls {
  /** A perf run whose one job runs on `runnerName` from now on; returns the run's and the job's ids. */
  startPerfJob(runnerName: string): { runId: number; jobId: number };
  /** The run ends now, its jobs with it. */
  completeRun(runId: number, conclusion: "success" | "failure"): void;
  /** GitHub's busy flag of a runner (it lags the jobs: the tests move it on their own). */
  setBusy(runnerName: string, busy: boolean): void;
}

/** A reset run created by a dispatch, as the lab sees it. */
export interface CreatedResetRun {
  pairId: string;
  requestId: string;
  runId: number;
}

interface StoredRun {
  run: Run;
  createdAt: string;
  jobs: Job[];
}

export class MemoryGitHub implements LabGitHub, LabControls {
  /** Called on each dispatch that created a run. */
  onDispatch?: (created: CreatedResetRun) => void;

  private readonly runners = new Map<string, Runner>();
  private readonly runs = new Map<number, StoredRun>();
  private nextRunnerId = 1;
  private nextRunId = 1000;
  private nextJobId = 50_000;
  private requests = 0;

  constructor(
    private readonly config: LabConfig,
    private readonly clock: () => Date,
    /** False: answer dispatches as GitHub Enterprise Server ≤ 3.20 does, without the run id. */
    private readonly returnsRunId = true,
  ) {}

  addRunner(name: string, labels: string[], busy = false): void {
    this.runners.set(name, { id: this.nextRunnerId++, name, status: "online", busy, labels: labels.map((label) => ({ name: label, type: "custom" })) });
  }

  /** The label names a runner carries now (for the tests' checks). */
  labelsOf(runnerName: string): string[] {
    return this.runners.get(runnerName)?.labels.map((l) => l.name) ?? [];
  }

  startPerfJob(runnerName: string): { runId: number; jobId: number } {
    const stored = this.addRun(".github/workflows/perf.yml", "perf", "in_progress");
    const jobId = this.nextJobId++;
    stored.jobs.push({ id: jobId, run_id: stored.run.id, status: "in_progress", conclusion: null, runner_name: runnerName, labels: ["self-hosted", "lab"], completed_at: null });
    return { runId: stored.run.id, jobId };
  }

  completeRun(runId: number, conclusion: "success" | "failure" | "cancelled"): void {
    const stored = this.runs.get(runId);
    if (!stored) throw new Error(`unknown run ${runId}`);
    const now = this.now();
    Object.assign(stored.run, { status: "completed", conclusion, updated_at: now });
    for (const job of stored.jobs) if (job.status !== "completed") Object.assign(job, { status: "completed", conclusion, completed_at: now });
  }

  setBusy(runnerName: string, busy: boolean): void {
    const runner = this.runners.get(runnerName);
    if (!runner) throw new Error(`unknown runner ${runnerName}`);
    runner.busy = busy;
  }

  listRunners(): Promise<Runner[]> {
    return this.answer(() => [...this.runners.values()]);
  }

  listActiveJobs(): Promise<Job[]> {
    return this.answer(() =>
      [...this.runs.values()].filter((s) => s.run.status === "in_progress").flatMap((s) => s.jobs.filter((j) => j.status !== "completed" && j.runner_name !== null)),
    );
  }

  getRun(runId: number): Promise<Run | null> {
    return this.answer(() => this.runs.get(runId)?.run ?? null);
  }

  listRunJobs(runId: number): Promise<Job[]> {
    return this.answer(() => this.runs.get(runId)?.jobs ?? []);
  }

  listFinishedRunJobs(runId: number): Promise<Job[]> {
    return this.listRunJobs(runId);
  }

  listResetRuns(since: Date): Promise<Run[]> {
    const path = `.github/workflows/${this.config.resetWorkflow.workflow}`;
    return this.answer(() => this.runsSince(since).filter((s) => s.run.path === path).map((s) => s.run));
  }

  listCompletedRuns(since: Date): Promise<Run[]> {
    return this.answer(() => this.runsSince(since).filter((s) => s.run.status === "completed").map((s) => s.run));
  }

  dispatchReset(pair: Pair, requestId: string): Promise<DispatchResult> {
    return this.answer(() => {
      const stored = this.addRun(`.github/workflows/${this.config.resetWorkflow.workflow}`, `Lab reset ${pair.id} ${requestId}`, "queued");
      stored.jobs.push(...pair.hosts.map((host) => ({ id: this.nextJobId++, run_id: stored.run.id, status: "queued", conclusion: null, runner_name: null, labels: ["self-hosted", host.runnerLabel], completed_at: null })));
      this.onDispatch?.({ pairId: pair.id, requestId, runId: stored.run.id });
      return { outcome: "dispatched", runId: this.returnsRunId ? stored.run.id : null } as const;
    });
  }

  /** Like GitHub: a finished run cannot be cancelled (409), which the client takes as done. */
  cancelRun(runId: number): Promise<void> {
    return this.answer(() => {
      if (this.runs.get(runId)?.run.status !== "completed") this.completeRun(runId, "cancelled");
    });
  }

  /** As GitHub: a custom label only; 404 (not-found) when the runner does not carry it. */
  removeRunnerLabel(runnerId: number, label: string): Promise<LabelEditResult> {
    return this.answer(() => {
      const runner = [...this.runners.values()].find((r) => r.id === runnerId);
      const kept = runner?.labels.filter((l) => l.type === "read-only" || l.name.toLowerCase() !== label.toLowerCase());
      if (!runner || !kept || kept.length === runner.labels.length) return "not-found" as const;
      runner.labels = kept;
      return "done" as const;
    });
  }

  addRunnerLabel(runnerId: number, label: string): Promise<LabelEditResult> {
    return this.answer(() => {
      const runner = [...this.runners.values()].find((r) => r.id === runnerId);
      if (!runner) return "not-found" as const;
      if (!runner.labels.some((l) => l.name.toLowerCase() === label.toLowerCase())) runner.labels.push({ name: label, type: "custom" });
      return "done" as const;
    });
  }

  stats() {
    return { requests: this.requests, notModified: 0, rateLimitRemaining: 5000 - this.requests };
  }

  private now(): string {
    return this.clock().toISOString();
  }

  private addRun(path: string, title: string, status: "queued" | "in_progress"): StoredRun {
    const id = this.nextRunId++;
    const now = this.now();
    const run: Run = { id, status, conclusion: null, display_title: title, path, html_url: `https://github.com/${this.config.github.owner}/${this.config.github.repo}/actions/runs/${id}`, updated_at: now, run_attempt: 1 };
    const stored = { run, createdAt: now, jobs: [] };
    this.runs.set(id, stored);
    return stored;
  }

  /** GitHub's `created>=` filter, which has whole seconds. */
  private runsSince(since: Date): StoredRun[] {
    const bound = Math.floor(since.getTime() / 1000) * 1000;
    return [...this.runs.values()].filter((s) => Date.parse(s.createdAt) >= bound).sort((a, b) => b.run.id - a.run.id);
  }

  /** One request; copies, so the app never holds the lab's own objects. */
  private answer<T>(read: () => T): Promise<T> {
    this.requests++;
    return Promise.resolve(structuredClone(read()));
  }
}
