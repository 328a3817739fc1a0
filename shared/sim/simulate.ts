/**
 * One simulated lab week under one reset policy:
 * - `lab-reset`: this app, unchanged (reconcile, store, triggers) on the GitHub model, through
 *   ModelLabGitHub (in process, the requests Octokit would send) or, with `transport: "http"`,
 *   the Octokit client and the HTTP stand-in; driven by the timer at its schedule, a
 *   job-completed call when each perf run ends, and (recommended set-up) webhook deliveries;
 * - `today`: the lab's current workflows (../shared/brief/seed-policy.md), modelled here;
 * - `none`: no resets at all.
 */
import type { LabConfig } from "../lab/config.js";
import { jobCompleted } from "../triggers/job-completed.js";
import { scheduledReset } from "../triggers/timer.js";
import { githubWebhook } from "../triggers/webhook.js";
import { MemoryReconcileQueue } from "../storage/queue.js";
import { MemoryQueueTrigger } from "./queue-trigger.js";
import { silentLogger, type Logger } from "../logger.js";
import { MemoryStore } from "../storage/memory.js";
import { createRuntime, type Runtime } from "../runtime.js";
import { parseSchedule } from "../lab/schedule.js";
import { readSettings } from "../settings.js";
import type { PairStore } from "../storage/tables.js";
import type { HistoryStore } from "../storage/history.js";
import { GitHubModel } from "./github-model.js";
import { GitHubStandin } from "./github-standin.js";
import { ModelLabGitHub } from "./model-github.js";
import { hostRunnerNameOf, SimLab, type PairTimeline, type SimMetrics, type SimRun } from "./lab.js";
import { Random } from "./random.js";
import type { Profile } from "./workload.js";

/**
 * `lab-reset`: the recommended set-up (routing labels taken off a used VM until its reset is done,
 * and the App's `workflow_job` webhook); `lab-reset-calls`: job-completed calls only, no routing
 * labels; `today`: the lab's current workflows; `none`: no resets.
 */
export type PolicyName = "lab-reset" | "lab-reset-calls" | "today" | "none";

export const SIM_WEBHOOK_SECRET = "simulated-lab-webhook-secret";

export interface Faults {
  /** Share of GitHub requests answered 502 (the app's client retries them). */
  serverErrorRate: number;
  /** Share of GitHub requests answered 429 with retry-after. */
  rateLimitRate: number;
  /** Share of job-completed calls that never arrive (the timer is the backstop). */
  lostCallRate: number;
}

export interface SimulationOptions {
  profile: Profile;
  policy: PolicyName;
  seed: number;
  days: number;
  start?: Date;
  faults?: Faults;
  busyLagSeconds?: number;
  resetMinutesPerHost?: number;
  resetSchedule?: string;
  logger?: Logger;
  store?: PairStore;
  /**
   * Where the app writes the lab's history (default: its own, in memory). A function is given the
   * lab's clock first, so a MemoryHistoryStore stamps its rows in simulated time.
   */
  history?: HistoryStore | ((clock: () => Date) => HistoryStore);
  /** How the app reaches GitHub: "model" (default) in process; "http": Octokit and the HTTP stand-in. */
  transport?: "model" | "http";
}

export interface SimulationResult {
  profile: string;
  policy: PolicyName;
  days: number;
  metrics: SimMetrics;
  /** Requests GitHub received from the app: every attempt (retries included), 304s included. */
  githubRequests: number;
  /** Of those, the ones charged to the rate limit: all but the 304s. */
  githubChargedRequests: number;
  /** Of those, the redelivery timer's (its look at the App's delivery log, and each redelivery asked for). */
  githubRedeliveryRequests: number;
  /** Secondary rate-limit points: GET 1, write 5. */
  rateLimitPoints: number;
  timelines: PairTimeline[];
  start: number;
  end: number;
  /** The app's own records and history (the app's policies only): what the report and the advice read. */
  app?: { runtime: Runtime };
}

export const DEFAULT_START = new Date("2026-11-23T00:00:00.000Z");
export const DEFAULT_FAULTS: Faults = { serverErrorRate: 0.01, rateLimitRate: 0.002, lostCallRate: 0.05 };

interface Driver {
  onPerfRunComplete(run: SimRun): void | Promise<void>;
  counts(): { requests: number; charged: number; points: number; redelivery?: number };
  close(): Promise<void>;
}

export async function simulate(options: SimulationOptions): Promise<SimulationResult> {
  const start = options.start ?? DEFAULT_START;
  const end = new Date(start.getTime() + options.days * 86_400_000);
  const { config } = options.profile;
  let clock = () => start;
  const model = new GitHubModel({ owner: config.github.owner, repo: config.github.repo, clock: () => clock() });
  const app = options.policy === "lab-reset" || options.policy === "lab-reset-calls";
  // The app's driver closes the stand-in; the other policies make no GitHub request of their own.
  const github = app && options.transport === "http" ? await GitHubStandin.start({ model }) : model;
  const lab = new SimLab(model, {
    config,
    osLabel: options.profile.osLabel,
    ...(options.profile.vmLabels ? { vmLabels: options.profile.vmLabels } : {}),
    start,
    seed: options.seed,
    ...(options.busyLagSeconds !== undefined ? { busyLagSeconds: options.busyLagSeconds } : {}),
    ...(options.resetMinutesPerHost !== undefined ? { resetMinutesPerHost: options.resetMinutesPerHost } : {}),
    ...(options.policy === "lab-reset" ? { webhooks: { secret: SIM_WEBHOOK_SECRET } } : {}),
  });
  clock = lab.now;
  const history = typeof options.history === "function" ? options.history(lab.now) : options.history;

  const driver: Driver & { runtime?: Runtime } = app
    ? await appDriver(lab, github, options.policy === "lab-reset" ? withRouting(config) : config, { ...options, history, webhooks: options.policy === "lab-reset" })
    : options.policy === "today"
      ? todayDriver(lab, config, options.resetSchedule)
      : { onPerfRunComplete: () => {}, counts: () => ({ requests: 0, charged: 0, points: 0 }), close: () => Promise.resolve() };

  for (const arrival of options.profile.workload(options.seed, options.days)) {
    lab.at(start.getTime() + arrival.atMinutes * 60_000, () => {
      lab.addPerfRun(arrival.jobs, (run) => driver.onPerfRunComplete(run));
    });
  }
  try {
    await lab.runUntil(end);
  } finally {
    await driver.close();
  }
  const counts = driver.counts();
  return {
    profile: options.profile.name,
    policy: options.policy,
    days: options.days,
    metrics: lab.metrics,
    githubRequests: counts.requests,
    githubChargedRequests: counts.charged,
    githubRedeliveryRequests: counts.redelivery ?? 0,
    rateLimitPoints: counts.points,
    timelines: lab.finish(),
    start: start.getTime(),
    end: end.getTime(),
    ...(driver.runtime ? { app: { runtime: driver.runtime } } : {}),
  };
}

/** Runs the timer at its schedule in simulated time. */
function everySchedule(lab: SimLab, expression: string, tick: () => Promise<void> | void) {
  const schedule = parseSchedule(expression);
  const arm = () =>
    lab.at(schedule.next(lab.now()).getTime(), async () => {
      await tick();
      arm();
    });
  arm();
}

/** The recommended set-up routes perf jobs on `lab`, which the app takes off a used VM until its reset. */
function withRouting(config: LabConfig): LabConfig {
  return { ...config, routingLabels: ["lab"] };
}

/** The client's retries and longest rate-limit wait, as deployed; both GitHub paths use them. */
const CLIENT = { retries: 3, maxRateLimitWaitSeconds: 120 };

/**
 * This app, as deployed: the same runtime, handlers and reconcile, on simulated time. Given the
 * lab's model it reaches GitHub through ModelLabGitHub; given an HTTP stand-in over that model,
 * through the Octokit client, as in production.
 */
export async function appDriver(
  lab: SimLab,
  github: GitHubModel | GitHubStandin,
  config: LabConfig,
  options: Pick<SimulationOptions, "faults" | "resetSchedule" | "logger" | "store" | "seed"> & { history?: HistoryStore | undefined; webhooks?: boolean },
): Promise<Driver & { runtime: Runtime; report: (runId: number) => Promise<void> }> {
  const logger = options.logger ?? silentLogger;
  const faults = options.faults ?? DEFAULT_FAULTS;
  const model = github instanceof GitHubStandin ? github.model : github;
  const http = github instanceof GitHubStandin ? { GITHUB_API_URL: github.url, GITHUB_TOKEN: github.token } : {};
  const settings = readSettings({
    ...http,
    OIDC_DISABLED: "true",
    ...(options.webhooks ? { GITHUB_WEBHOOK_SECRET: SIM_WEBHOOK_SECRET } : {}),
    ...(options.resetSchedule ? { RESET_SCHEDULE: options.resetSchedule } : {}),
  });
  const queue = new MemoryReconcileQueue(lab.now);
  const runtime = await createRuntime(settings, config, {
    store: options.store ?? new MemoryStore(),
    ...(options.history ? { history: options.history } : {}),
    queue,
    clock: lab.now,
    logger,
    ...(github instanceof GitHubStandin
      ? // Waits are real milliseconds standing for simulated seconds, so a week runs in seconds.
        { githubClient: { ...CLIENT, retryBaseMs: 1, rateLimitBaseMs: 1, writeSpacingMs: 0, timeoutMs: 10_000 } }
      : { github: new ModelLabGitHub(model, config, CLIENT) }),
  });
  // The queue trigger picks a message up within a second, and retries a failed one a minute later.
  const trigger = new MemoryQueueTrigger(runtime, queue, { logger, retryLater: (retry) => lab.after(60_000, () => (retry(), undefined)) });
  let pickUp = false;
  queue.onSend = (delayMs) => {
    if (delayMs > 0) return lab.after(delayMs + 1_000, () => trigger.drain());
    if (pickUp) return;
    pickUp = true;
    lab.after(1_000, async () => {
      pickUp = false;
      await trigger.drain();
    });
  };
  if (options.webhooks) lab.onWorkflowJobDelivery = async (delivery) => void (await githubWebhook(runtime, delivery, logger));
  const redelivery = options.webhooks ? redeliverFailed(lab, settings.redeliverSchedule) : null;
  const faultRandom = new Random(options.seed ^ 0x5eed);
  model.injectFault = () =>
    faultRandom.chance(faults.serverErrorRate) ? { status: 502 } : faultRandom.chance(faults.rateLimitRate) ? { status: 429, headers: { "retry-after": "1" } } : undefined;

  /** The perf workflow's last job: call job-completed, retrying a 503 a few times a minute apart. */
  const report = async (runId: number, attempt = 1): Promise<void> => {
    const response = await jobCompleted(runtime, JSON.stringify({ repository: `${config.github.owner}/${config.github.repo}`, runId }), logger);
    if (response.status === 503 && attempt < 4) lab.after(60_000, () => report(runId, attempt + 1));
  };
  const callRandom = new Random(options.seed ^ 0xca11);
  // Reset runs report too, so a finished reset is seen without waiting for the timer.
  model.onDispatch = (_dispatch, run) => {
    lab.adoptResetRun(Number(run.id), (r) => report(r.id));
  };
  everySchedule(lab, settings.resetSchedule, async () => {
    try {
      await scheduledReset(runtime, logger);
    } catch (error) {
      logger.warn(`scheduledReset: ${(error as Error).message}`);
    }
  });
  return {
    runtime,
    report,
    // With the webhook, no perf workflow is edited to call job-completed: GitHub's deliveries say it all.
    onPerfRunComplete: (run) => (options.webhooks || callRandom.chance(faults.lostCallRate) ? undefined : report(run.id)),
    // What GitHub received, every attempt (the app's own stats count a retried request once), and the redelivery timer's.
    counts: () => ({
      requests: model.requests.length + (redelivery?.requests.gets ?? 0) + (redelivery?.requests.posts ?? 0),
      charged: model.requests.filter((r) => r.status !== 304).length + (redelivery?.requests.gets ?? 0) + (redelivery?.requests.posts ?? 0),
      points: model.requests.reduce((sum, r) => sum + (r.method === "GET" ? 1 : 5), 0) + (redelivery?.requests.gets ?? 0) + 5 * (redelivery?.requests.posts ?? 0),
      redelivery: (redelivery?.requests.gets ?? 0) + (redelivery?.requests.posts ?? 0),
    }),
    close: () => (github instanceof GitHubStandin ? github.close() : Promise.resolve()),
  };
}

/**
 * The redelivery timer (shared/triggers/redeliver.ts) as the simulated lab sees it: at each tick
 * of REDELIVER_SCHEDULE it reads GitHub's delivery log since its last look (a GET per 100
 * deliveries, at least one) and asks once for each failed delivery (a POST), which arrives
 * seconds later. Modelled here, not run: the App's delivery log is not part of the GitHub model.
 */
function redeliverFailed(lab: SimLab, schedule: string) {
  const requests = { gets: 0, posts: 0 };
  let failed: (() => void | Promise<void>)[] = [];
  let seen = lab.deliveries.length;
  lab.onFailedDelivery = (redeliver) => void failed.push(redeliver);
  everySchedule(lab, schedule, () => {
    const made = lab.deliveries.length - seen;
    seen = lab.deliveries.length;
    requests.gets += Math.max(1, Math.ceil(made / 100));
    for (const redeliver of failed) {
      requests.posts++;
      lab.after(2_000, redeliver);
    }
    failed = [];
  });
  return { requests };
}

/**
 * Today's workflows: a reset of every host every 6 h and after each perf run; one at a time;
 * gated on no perf run in progress (polled each minute for 45 min; a single look for the cron).
 */
function todayDriver(lab: SimLab, config: LabConfig, resetSchedule = "0 0 */6 * * *"): Driver {
  let active = false;
  let requests = 0;
  let points = 0;
  const get = () => {
    requests++;
    points += 1;
  };
  const post = () => {
    requests++;
    points += 5;
  };
  const hosts = config.pairs.flatMap((p) => p.hosts.map((h) => h.runnerLabel));
  const resetEverything = () => {
    const run = lab.github.addRun({
      name: "auto-reset-parent-or-child-lab-machine",
      workflowPath: ".github/workflows/auto-reset-parent-or-child-lab-machine.yml",
      event: "workflow_dispatch",
      status: "queued",
      createdAt: lab.now().toISOString(),
      jobs: hosts.map((label) => ({ name: `reset ${hostRunnerNameOf(label)}`, status: "queued", labels: ["self-hosted", label], runnerName: null })),
    });
    lab.adoptResetRun(Number(run.id), () => {
      active = false;
    });
  };
  const request = (singleLook: boolean) => {
    get(); // is a reset run already in progress?
    if (active) return;
    post(); // dispatch the reset workflow
    active = true;
    const deadline = lab.now().getTime() + 45 * 60_000;
    const gate = () => {
      get(); // list in-progress runs
      if (lab.perfRunsInProgress() === 0) return resetEverything();
      if (singleLook || lab.now().getTime() >= deadline) {
        active = false;
        return;
      }
      lab.after(60_000, gate);
    };
    lab.after(20_000, gate);
  };
  everySchedule(lab, resetSchedule, () => request(true));
  return {
    onPerfRunComplete: () => request(false),
    counts: () => ({ requests, charged: requests, points }),
    close: () => Promise.resolve(),
  };
}
