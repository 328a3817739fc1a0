/**
 * A seed lab for integration tests: the GitHub stand-in with the four seed pairs' runners, the
 * real Octokit client pointed at it, and a store on Azurite.
 */
import { inject } from "vitest";
import { labKey, loadLabConfigFile, type LabConfig } from "../../shared/lab/config.js";
import { silentLogger, type Logger } from "../../shared/logger.js";
import type { ReconcileResult } from "../../shared/reconcile/reconcile.js";
import { createRuntime, type Runtime, type RuntimeOverrides } from "../../shared/runtime.js";
import { readSettings } from "../../shared/settings.js";
import { GitHubStandin } from "../../shared/sim/github-standin.js";
import { MemoryQueueTrigger } from "../../shared/sim/queue-trigger.js";
import { TableCoverageStore } from "../../shared/storage/coverage.js";
import { TableHistoryStore } from "../../shared/storage/history.js";
import { TableFactStore } from "../../shared/storage/facts.js";
import { MemoryReconcileQueue } from "../../shared/storage/queue.js";
import type { PairStore } from "../../shared/storage/tables.js";
import type { JsonResponse } from "../../shared/triggers/http.js";
import { jobCompleted, type CallerCredentials } from "../../shared/triggers/job-completed.js";
import { scheduledReset } from "../../shared/triggers/timer.js";
import { openTestStore, uniqueTablePrefix } from "./store.js";

/** The shipped lab, minus its routing labels: quarantine has suites of its own (routing, holds). */
export const shippedConfig: LabConfig = loadLabConfigFile("lab.config.json");
export const seedConfig: LabConfig = { ...shippedConfig, routingLabels: [] };

/** Runner names as the lab's runner page shows them. */
export const vmRunnerName = (pairId: string) => pairId.toUpperCase();
export const hostRunnerName = (label: string) => label.replace(/^(parent|child)=/, "").replace(/\\.*$/, "").toUpperCase();

export interface TestLab {
  github: GitHubStandin;
  runtime: Runtime;
  config: LabConfig;
  /** The queue the triggers hand over to, and the queue trigger that serves it (drain it to reconcile). */
  queue: MemoryReconcileQueue;
  trigger: MemoryQueueTrigger;
  /** The timer: queue its message and serve the queue; the reconcile that served it. */
  timer(): Promise<ReconcileResult>;
  /** A job-completed call, then the queue served; the call's answer and the reconcile that followed it. */
  jobCompleted(body: string, credentials?: CallerCredentials): Promise<{ response: JsonResponse; result: ReconcileResult | null }>;
  /** Serves what the queue holds; the last reconcile it ran, if any. */
  settle(): Promise<ReconcileResult | null>;
  /** The test's clock; move it with `advance`. */
  now: { value: Date };
  advance(minutes: number): void;
  close(): Promise<void>;
}

export interface TestLabOptions {
  config?: LabConfig;
  ghes?: boolean;
  logger?: Logger;
  /** App settings beyond the stand-in's URL and token. Without OIDC_AUDIENCE, OIDC is off (OIDC_DISABLED=true). */
  settings?: Record<string, string>;
  /** Another store than tables of their own on the shared Azurite (e.g. on an Azurite the test stops). */
  store?: PairStore;
  /** Octokit tuning beyond the tests' defaults, e.g. a shorter time limit. */
  githubClient?: RuntimeOverrides["githubClient"];
}

export async function startTestLab(options: TestLabOptions = {}): Promise<TestLab> {
  const config = options.config ?? seedConfig;
  const now = { value: new Date("2026-11-27T12:00:00.000Z") };
  // GitHub's timestamps follow the test's clock, as they follow the real one in production.
  const github = await GitHubStandin.start({ owner: config.github.owner, repo: config.github.repo, ghes: options.ghes ?? false, clock: () => now.value });
  for (const pair of config.pairs) {
    github.addRunner({ name: vmRunnerName(pair.id), labels: ["lab", "os-windows-2022", pair.vmRunnerLabel] });
    for (const host of pair.hosts) github.addRunner({ name: hostRunnerName(host.runnerLabel), labels: [host.runnerLabel] });
  }
  // Unrelated runner in the same repository (the lab's page shows one labelled RCU).
  github.addRunner({ name: "WIN-B9SEU47NHOT", labels: ["RCU"], busy: true });

  const extra = options.settings ?? {};
  const settings = readSettings({ GITHUB_API_URL: github.url, GITHUB_TOKEN: github.token, ...(extra.OIDC_AUDIENCE ? {} : { OIDC_DISABLED: "true" }), ...extra });
  const tablePrefix = uniqueTablePrefix();
  const connection = { kind: "connectionString" as const, connectionString: inject("azuriteConnectionString") };
  const clock = () => now.value;
  const queue = new MemoryReconcileQueue(clock);
  const runtime = await createRuntime(settings, config, {
    store: options.store ?? (await openTestStore(tablePrefix)),
    facts: await TableFactStore.open({ connection, tablePrefix, lab: labKey(config) }),
    coverage: await TableCoverageStore.open({ connection, tablePrefix, lab: labKey(config) }),
    history: await TableHistoryStore.open({ connection, tablePrefix, lab: labKey(config), clock: () => now.value }),
    queue,
    clock,
    logger: options.logger ?? silentLogger,
    githubClient: { retries: 2, retryBaseMs: 5, timeoutMs: 2_000, maxRateLimitWaitSeconds: 2, writeSpacingMs: 0, ...options.githubClient },
  });
  const trigger = new MemoryQueueTrigger(runtime, queue, { logger: options.logger ?? silentLogger });
  const settle = async () => {
    const before = trigger.outcomes.length;
    await trigger.settle();
    const served = trigger.outcomes.slice(before).flatMap((o) => (o.served === "reconciled" ? [o.result] : []));
    return served.at(-1) ?? null;
  };
  return {
    github,
    runtime,
    config,
    queue,
    trigger,
    settle,
    timer: async () => {
      await scheduledReset(runtime, silentLogger);
      const result = await settle();
      if (result === null) throw new Error("the timer's message was not reconciled");
      return result;
    },
    jobCompleted: async (body, credentials) => {
      const response = await jobCompleted(runtime, body, options.logger ?? silentLogger, credentials);
      return { response, result: await settle() };
    },
    now,
    advance: (minutes) => {
      now.value = new Date(now.value.getTime() + minutes * 60_000);
    },
    close: () => github.close(),
  };
}

/** Completes the reset run dispatched for a pair, as the lab's reset workflow would: each host job ran on its host. */
export function finishReset(lab: TestLab, runId: number, conclusion: "success" | "failure" = "success") {
  for (const job of lab.github.jobsOf(runId)) {
    const host = job.labels.find((l) => /^(parent|child)=/.test(l));
    lab.github.setJob(Number(job.id), { status: "completed", conclusion, runnerName: host ? hostRunnerName(host) : job.runner_name });
  }
  lab.github.setRun(runId, { status: "completed", conclusion });
}

/** `finishReset`, then the run's report (lab-reset.yml's last job calls job-completed): the reconcile that follows it. */
export async function reportReset(lab: TestLab, runId: number, conclusion: "success" | "failure" = "success"): Promise<ReconcileResult | null> {
  finishReset(lab, runId, conclusion);
  return (await lab.jobCompleted(JSON.stringify({ repository: `${lab.config.github.owner}/${lab.config.github.repo}`, runId }))).result;
}

/** A perf run with one job on each named VM runner. */
export function perfRun(lab: TestLab, runnerNames: string[], status: "in_progress" | "completed" = "in_progress"): { id: number } {
  const run = lab.github.addRun({
    name: "perf",
    status,
    ...(status === "completed" ? { conclusion: "success" } : {}),
    jobs: runnerNames.map((runnerName) => ({ name: `perf on ${runnerName}`, runnerName, labels: ["self-hosted", "lab", "os-windows-2022"] })),
  });
  return { id: Number(run.id) };
}

/**
 * Runs `before` just before the stand-in answers the n-th request matching from now on: the app
 * has sent it and waits. Returns how many matching requests arrived so far.
 */
export function beforeRequest(lab: TestLab, match: { method?: string; path: RegExp }, n: number, before: () => unknown): () => number {
  let seen = 0;
  lab.github.onRequest = async (method, path) => {
    if ((match.method === undefined || match.method === method) && match.path.test(path) && ++seen === n) await before();
  };
  return () => seen;
}
