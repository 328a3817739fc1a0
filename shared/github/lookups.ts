/**
 * Reads a trigger may make of GitHub, shared by every request of an instance: a burst of 50
 * job-completed calls for one run reads its jobs once, and the runner list at most once in
 * `RUNNERS_FRESH_MS`. Concurrent callers share the read in flight.
 */
import type { LabConfig, Pair } from "../lab/config.js";
import { GitHubError, type Job, type LabGitHub, type Runner } from "./client.js";

const RUNNERS_FRESH_MS = 30_000;
const UNFINISHED_RUN_FRESH_MS = 15_000;
const MAX_RUNS = 500;

interface Entry<T> {
  value: Promise<T>;
  /** Until when a settled value may be reused; Infinity for a finished run, whose jobs no longer change. */
  until: number;
}

export class TriggerLookups {
  private runners: Entry<Runner[]> | null = null;
  private readonly runs = new Map<string, Entry<Job[] | null>>();

  constructor(
    private readonly github: LabGitHub,
    private readonly config: LabConfig,
    private readonly clock: () => Date,
  ) {}

  /** The run's jobs (of one attempt, else the latest); null when GitHub does not know the run. */
  runJobs(runId: number, attempt?: number): Promise<Job[] | null> {
    const key = `${runId}/${attempt ?? "latest"}`;
    const now = this.clock().getTime();
    const cached = this.runs.get(key);
    if (cached && cached.until > now) return cached.value;
    const value = this.github.listRunJobs(runId, attempt).catch((error: unknown) => {
      if (error instanceof GitHubError && error.status === 404) return null;
      throw error;
    });
    const entry: Entry<Job[] | null> = { value, until: Infinity };
    this.runs.set(key, entry);
    if (this.runs.size > MAX_RUNS) this.runs.delete(this.runs.keys().next().value!);
    value.then(
      (jobs) => (entry.until = jobs !== null && jobs.every((j) => j.status === "completed") ? Infinity : this.clock().getTime() + UNFINISHED_RUN_FRESH_MS),
      () => this.runs.get(key) === entry && this.runs.delete(key),
    );
    return value;
  }

  /** The configured pair whose VM runner is named `runnerName` (case-insensitive), if any. */
  async pairOfRunner(runnerName: string): Promise<Pair | undefined> {
    const runners = await this.listRunners();
    const named = runners.filter((r) => r.name.toLowerCase() === runnerName.toLowerCase());
    return this.config.pairs.find((pair) => named.some((r) => r.labels.some((l) => l.name.toLowerCase() === pair.vmRunnerLabel.toLowerCase())));
  }

  private listRunners(): Promise<Runner[]> {
    const now = this.clock().getTime();
    if (this.runners && this.runners.until > now) return this.runners.value;
    const entry: Entry<Runner[]> = { value: this.github.listRunners(), until: Infinity };
    this.runners = entry;
    entry.value.then(
      () => (entry.until = this.clock().getTime() + RUNNERS_FRESH_MS),
      () => this.runners === entry && (this.runners = null),
    );
    return entry.value;
  }
}
