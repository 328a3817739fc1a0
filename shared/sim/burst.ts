/**
 * `npm run bench:burst`: a matrix ends on the seed lab's four VMs and everything reports at once.
 * Two app instances (separate Node.js processes, shared/sim/app-instance.ts) share one Azurite
 * (tables and the reconcile queue; Azurite runs apart from them, so it outlives them) and one
 * GitHub stand-in (in this process). Phase 1: 200 signed `workflow_job` deliveries (`in_progress`
 * and `completed` of the four runs' jobs, repeats included) and 50 `job-completed` calls, all sent
 * at the same moment, split evenly over the two instances. Phase 2: one delivery answered 2xx,
 * its instance SIGKILLed at once, a new instance started on the same Azurite: the pair is reset
 * exactly once.
 *
 * Prints the figures, writes docs/bench/burst.json, and exits 1 when a target is missed
 * (issue 9: every answer 2xx, p99 ≤ 300 ms, all four resets dispatched within 10 s of the burst,
 * exactly one per pair, ≤ 40 GitHub requests; phase 2: exactly one reset of the pair).
 *
 *   npm run build && node dist/shared/sim/burst.js
 *   BURST_DELIVERIES=400 BURST_CALLS=100 BURST_JOBS_PER_RUN=40 node dist/shared/sim/burst.js
 *   BURST_LAB_CONFIG=other.config.json BURST_FLOOR=0 node dist/shared/sim/burst.js
 */
import { createHmac, randomBytes } from "node:crypto";
import { mkdirSync, realpathSync, writeFileSync } from "node:fs";
import { Agent, request } from "node:http";
import { cpus, loadavg } from "node:os";
import { resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { QueueClient } from "@azure/storage-queue";
import { loadLabConfigFile, type LabConfig, type Pair } from "../lab/config.js";
import { startAzurite, type RunningAzurite } from "../local/azurite.js";
import { spawnAppInstance, type AppInstance } from "./app-instance.js";
import { GitHubStandin } from "./github-standin.js";
import { hostRunnerNameOf, vmRunnerNameOf } from "./lab.js";
import { Random } from "./random.js";

const OUT = "docs/bench/burst.json";
const TARGETS = { p99Ms: 300, dispatchWithinMs: 10_000, githubRequests: 40 };

export interface BurstOptions {
  deliveries: number;
  jobCompletedCalls: number;
  jobsPerRun: number;
  seed: number;
  /** First send the same calls to two bare servers (HMAC check and one Azurite write each). */
  floor: boolean;
  /** The deliveries sent of each job; default both. */
  actions?: ("in_progress" | "completed")[];
}

// ---- small helpers ----------------------------------------------------------------------------

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const percentile = (sorted: number[], p: number) => sorted[Math.max(0, Math.ceil((p / 100) * sorted.length) - 1)] ?? 0;
const round = (ms: number) => Math.round(ms);

async function waitUntil<T>(what: string, timeoutMs: number, probe: () => Promise<T | undefined> | T | undefined, everyMs = 25): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs / 1000} s waiting for ${what}`);
    await sleep(everyMs);
  }
}

/** GitHub's X-Hub-Signature-256: the HMAC-SHA256 of the exact body with the webhook secret. */
export const signBody = (secret: string, body: string) => `sha256=${createHmac("sha256", secret).update(body).digest("hex")}`;

export interface Call {
  kind: "webhook" | "job-completed";
  path: string;
  body: string;
  headers: Record<string, string>;
}

export interface Answer {
  kind: Call["kind"];
  instance: string;
  status: number;
  ms: number;
  error?: string;
}

// One connection per call, as GitHub's deliveries arrive from many senders.
const agent = new Agent({ keepAlive: false, maxSockets: Infinity });

/** One POST; resolves with its status and latency (status 0 when it got no answer). */
export function post(base: string, call: Call, instance: string): Promise<Answer> {
  const started = performance.now();
  return new Promise((resolveAnswer) => {
    const url = new URL(call.path, base);
    const req = request(
      { agent, host: url.hostname, port: url.port, path: url.pathname, method: "POST", headers: { ...call.headers, "content-length": String(Buffer.byteLength(call.body)) }, timeout: 30_000 },
      (res) => {
        res.on("data", () => undefined);
        res.on("end", () => resolveAnswer({ kind: call.kind, instance, status: res.statusCode ?? 0, ms: performance.now() - started }));
      },
    );
    req.on("timeout", () => req.destroy(new Error("no answer within 30 s")));
    req.on("error", (error) => resolveAnswer({ kind: call.kind, instance, status: 0, ms: performance.now() - started, error: error.message }));
    req.end(call.body);
  });
}

export function webhookCall(secret: string, deliveryId: string, event: unknown): Call {
  const body = JSON.stringify(event);
  return {
    kind: "webhook",
    path: "/api/github-webhook",
    body,
    headers: { "content-type": "application/json", "user-agent": "GitHub-Hookshot/f1b5c8e", "x-github-event": "workflow_job", "x-github-delivery": deliveryId, "x-hub-signature-256": signBody(secret, body) },
  };
}

export function jobCompletedCall(config: LabConfig, runId: number): Call {
  return { kind: "job-completed", path: "/api/job-completed", body: JSON.stringify({ repository: `${config.github.owner}/${config.github.repo}`, runId }), headers: { "content-type": "application/json" } };
}

/** Where an instance answers: a child process (AppInstance) or a local host in this process. */
export interface Endpoint {
  name: string;
  url: string;
}

interface PairView {
  id: string;
  state: string;
  resetDispatchedAt: string | null;
}

export async function readPairs(instance: Endpoint): Promise<PairView[]> {
  const response = await fetch(`${instance.url}/api/pairs`);
  if (!response.ok) throw new Error(`GET /api/pairs answered ${response.status}`);
  return ((await response.json()) as { pairs: PairView[] }).pairs;
}

// ---- the lab ----------------------------------------------------------------------------------

export interface BurstLab {
  config: LabConfig;
  azurite: RunningAzurite;
  github: GitHubStandin;
  /** The app settings every instance gets: one storage account, one queue, one stand-in. */
  env: Record<string, string>;
  queueName: string;
  secret: string;
  /** When each dispatch reached the stand-in (performance.now()), in the order of `github.dispatches`. */
  dispatchedAt: number[];
  queue(): QueueClient;
  poison(): QueueClient;
  close(): Promise<void>;
}

export async function startBurstLab(options: { azurite?: RunningAzurite; connectionString?: string; env?: Record<string, string>; configPath?: string } = {}): Promise<BurstLab> {
  const configPath = resolve(options.configPath ?? "lab.config.json");
  const config = loadLabConfigFile(configPath);
  const azurite = options.azurite ?? (options.connectionString ? undefined : await startAzurite());
  const connectionString = options.connectionString ?? azurite!.connectionString;
  const github = await GitHubStandin.start({ owner: config.github.owner, repo: config.github.repo });
  for (const pair of config.pairs) {
    github.addRunner({ name: vmRunnerNameOf(pair), labels: ["lab", "os-windows-2022", pair.vmRunnerLabel] });
    for (const host of pair.hosts) github.addRunner({ name: hostRunnerNameOf(host.runnerLabel), labels: [host.runnerLabel] });
  }
  const dispatchedAt: number[] = [];
  github.onDispatch = () => dispatchedAt.push(performance.now());
  const id = randomBytes(4).toString("hex");
  const queueName = `burst-${id}`;
  const secret = randomBytes(32).toString("hex");
  const env = {
    GITHUB_API_URL: github.url,
    GITHUB_TOKEN: github.token,
    AzureWebJobsStorage: connectionString,
    OIDC_DISABLED: "true",
    GITHUB_WEBHOOK_SECRET: secret,
    LAB_TABLE_PREFIX: `burst${id}`,
    RECONCILE_QUEUE: queueName,
    LAB_CONFIG_PATH: configPath,
    ...options.env,
  };
  return {
    config,
    azurite: azurite!,
    github,
    env,
    queueName,
    secret,
    dispatchedAt,
    queue: () => new QueueClient(connectionString, queueName),
    poison: () => new QueueClient(connectionString, `${queueName}-poison`),
    close: async () => {
      await github.close();
      await azurite?.stop();
    },
  };
}

/** Dispatches with a run (accepted) per pair among `github.dispatches.slice(from)`. */
export function dispatchesPerPair(lab: BurstLab, from: number): Record<string, number> {
  const counts = Object.fromEntries(lab.config.pairs.map((p) => [p.id, 0]));
  for (const d of lab.github.dispatches.slice(from)) if (d.runId !== null) counts[String(d.inputs.pair)] = (counts[String(d.inputs.pair)] ?? 0) + 1;
  return counts;
}

/** Every reset dispatched so far completed, its report (job-completed for the reset run) sent, and every pair clean. */
export async function finishResetsAndWaitClean(lab: BurstLab, via: Endpoint, timeoutMs = 30_000): Promise<void> {
  for (const d of lab.github.dispatches) {
    if (d.runId === null || lab.github.getRun(d.runId)?.status === "completed") continue;
    lab.github.setRun(d.runId, { status: "completed", conclusion: "success" });
    // lab-reset.yml's last job tells lab-reset the reset ended.
    const answer = await post(via.url, jobCompletedCall(lab.config, d.runId), via.name);
    if (answer.status !== 202) throw new Error(`the reset run's report answered ${answer.status}`);
  }
  await waitUntil("every pair clean", timeoutMs, async () => ((await readPairs(via)).every((p) => p.state === "clean") ? true : undefined), 100);
}

/**
 * The seed lab reset and clean: a timer reconcile (its admin route queues it) dispatches a reset
 * of every pair never seen, the stand-in completes the reset runs, and their reports make the
 * pairs clean.
 */
export async function prepareCleanLab(lab: BurstLab, via: Endpoint): Promise<void> {
  const response = await fetch(`${via.url}/admin/functions/scheduledReset`, { method: "POST" });
  if (response.status !== 202) throw new Error(`POST /admin/functions/scheduledReset answered ${response.status}`);
  await waitUntil("the first resets", 30_000, () => (Object.values(dispatchesPerPair(lab, 0)).every((n) => n >= 1) ? true : undefined), 50);
  await finishResetsAndWaitClean(lab, via);
}

/**
 * GitHub's times are whole seconds and a job counts for a pair only if it ended after the last
 * reset's dispatch: the runs start the second after it, and end at least a second later.
 */
export async function perfRunStart(lab: BurstLab, via: Endpoint): Promise<string> {
  const lastDispatch = Math.max(...(await readPairs(via)).map((p) => (p.resetDispatchedAt ? Date.parse(p.resetDispatchedAt) : 0)));
  const start = Math.floor(lastDispatch / 1000) * 1000 + 1000;
  while (Date.now() < start + 1100) await sleep(50);
  return new Date(start).toISOString().replace(/\.\d{3}Z$/, "Z");
}

/** A finished perf run with `jobs` jobs, one after another, on the pair's VM runner. */
export function finishedPerfRun(lab: BurstLab, pair: Pair, jobs: number, createdAt: string): { runId: number; jobIds: number[] } {
  const runner = vmRunnerNameOf(pair);
  const run = lab.github.addRun({
    name: "perf",
    status: "completed",
    conclusion: "success",
    createdAt,
    jobs: Array.from({ length: jobs }, (_, k) => ({ name: `perf (${k + 1}/${jobs}) on ${runner}`, runnerName: runner, labels: ["self-hosted", "lab", pair.vmRunnerLabel] })),
  });
  return { runId: Number(run.id), jobIds: lab.github.jobsOf(Number(run.id)).map((j) => Number(j.id)) };
}

/** No message is waiting to be served and GitHub has had no request for `stillMs`. */
export async function waitQuiet(lab: BurstLab, timeoutMs: number, stillMs = 2_000): Promise<void> {
  const queue = lab.queue();
  if (process.env.BURST_DEBUG) setTimeout(() => console.error(JSON.stringify(lab.github.requests.slice(-30).map((r) => `${r.method} ${r.path ?? ""}`))), timeoutMs - 1000).unref();
  let last = lab.github.requests.length;
  let stillSince = performance.now();
  await waitUntil("a quiet queue", timeoutMs, async () => {
    if (lab.github.requests.length !== last) {
      last = lab.github.requests.length;
      stillSince = performance.now();
    }
    // Visible messages only: a follow-up look (routing labels configured) stays hidden for a minute by design.
    const { peekedMessageItems } = await queue.peekMessages({ numberOfMessages: 1 });
    return peekedMessageItems.length === 0 && performance.now() - stillSince >= stillMs ? true : undefined;
  }, 100);
}

async function poisonCount(lab: BurstLab): Promise<number> {
  const poison = lab.poison();
  return (await poison.exists()) ? ((await poison.getProperties()).approximateMessagesCount ?? 0) : 0;
}

/** What GitHub was asked, by kind of request. */
function requestKinds(lab: BurstLab, from: number): Record<string, number> {
  const kinds: Record<string, number> = {};
  for (const r of lab.github.requests.slice(from)) {
    const kind = `${r.method} ${r.path.replace(/\/repos\/[^/]+\/[^/]+/, "").replace(/\/\d+/g, "/{id}")}${r.status === 304 ? " (304)" : ""}`;
    kinds[kind] = (kinds[kind] ?? 0) + 1;
  }
  return kinds;
}

// ---- phase 1: the burst -----------------------------------------------------------------------

/** The burst's calls: every job's `in_progress` and `completed` delivery, repeats up to `deliveries`, and the job-completed calls. */
export function burstCalls(lab: BurstLab, runs: { runId: number; jobIds: number[] }[], options: BurstOptions): Call[] {
  const random = new Random(options.seed);
  const unique: Call[] = [];
  for (const run of runs) {
    for (const jobId of run.jobIds) {
      for (const action of options.actions ?? ["in_progress", "completed"]) unique.push(webhookCall(lab.secret, random.uuid(), lab.github.workflowJobEvent(jobId, action)));
    }
  }
  const deliveries = unique.slice(0, options.deliveries);
  // GitHub redelivers (same delivery id and body) and sometimes sends an event twice (a new id).
  while (deliveries.length < options.deliveries) {
    const again = random.pick(unique);
    deliveries.push(random.chance(0.5) ? again : { ...again, headers: { ...again.headers, "x-github-delivery": random.uuid() } });
  }
  const calls = [...deliveries, ...Array.from({ length: options.jobCompletedCalls }, (_, i) => jobCompletedCall(lab.config, runs[i % runs.length]!.runId))];
  // Arrival order is GitHub's, not ours.
  for (let i = calls.length - 1; i > 0; i--) {
    const j = random.int(0, i);
    [calls[i], calls[j]] = [calls[j]!, calls[i]!];
  }
  return calls;
}

/** Sends every call at once, alternating between the instances; resolves when all are answered. */
export function sendAtOnce(calls: Call[], instances: Endpoint[]): Promise<Answer[]> {
  return Promise.all(calls.map((call, i) => post(instances[i % instances.length]!.url, call, instances[i % instances.length]!.name)));
}

function latencyFigures(answers: Answer[]) {
  const sorted = answers.map((a) => a.ms).sort((a, b) => a - b);
  return { p50: round(percentile(sorted, 50)), p90: round(percentile(sorted, 90)), p99: round(percentile(sorted, 99)), max: round(sorted.at(-1) ?? 0) };
}

/**
 * The same calls, at once, against two bare servers that only check the HMAC and make one Azurite
 * write each: what this machine allows at this moment (its load included).
 */
async function floorBurst(lab: BurstLab, calls: Call[]) {
  const floors = await Promise.all(["floor-a", "floor-b"].map((name) => spawnAppInstance(name, { ...lab.env, APP_INSTANCE_MODE: "floor" })));
  try {
    const answers = await sendAtOnce(calls, floors);
    return { latencyMs: latencyFigures(answers), non2xx: answers.filter((x) => x.status < 200 || x.status >= 300).length };
  } finally {
    await Promise.all(floors.map((f) => f.stop()));
    await sleep(1_000);
  }
}

async function phaseBurst(lab: BurstLab, instances: AppInstance[], options: BurstOptions) {
  const [a] = instances as [AppInstance, AppInstance];
  await prepareCleanLab(lab, a);
  const createdAt = await perfRunStart(lab, a);
  const runs = lab.config.pairs.map((pair) => finishedPerfRun(lab, pair, options.jobsPerRun, createdAt));
  const calls = burstCalls(lab, runs, options);
  const floor = options.floor ? await floorBurst(lab, calls) : null;

  const dispatchesBefore = lab.github.dispatches.length;
  const requestsBefore = lab.github.requests.length;
  const reconcilesBefore = instances.map((i) => i.reconciles.length);
  const stderrBefore = instances.map((i) => i.stderr().length);
  // Timings count from here (SIGUSR2 starts them afresh).
  await Promise.all(instances.map((i) => i.stats()));
  const load = loadavg()[0]!;
  const startedWall = Date.now();
  const started = performance.now();
  const answered = sendAtOnce(calls, instances);
  const dispatched = waitUntil("a reset of every pair", 60_000, () => (Object.values(dispatchesPerPair(lab, dispatchesBefore)).every((n) => n >= 1) ? performance.now() : undefined), 10).catch(() => null);
  const answers = await answered;
  const answersMs = performance.now() - started;
  const allDispatchedAt = await dispatched;
  await waitQuiet(lab, 120_000);
  const quietMs = performance.now() - started;
  const stats = await Promise.all(instances.map((i) => i.stats()));

  const statuses: Record<string, number> = {};
  for (const answer of answers) statuses[answer.status] = (statuses[answer.status] ?? 0) + 1;
  const perPair = dispatchesPerPair(lab, dispatchesBefore);
  const reconciles = Object.fromEntries(instances.map((instance, i) => [instance.name, instance.reconciles.slice(reconcilesBefore[i]).map((r) => ({ startMs: Date.parse(r.at) - r.durationMs - startedWall, trigger: r.trigger, ok: r.ok, dispatches: r.dispatches, githubRequests: r.githubRequests, durationMs: r.durationMs }))]));
  return {
    calls: { deliveries: options.deliveries, uniqueDeliveries: Math.min(options.deliveries, runs.length * options.jobsPerRun * (options.actions?.length ?? 2)), jobCompleted: options.jobCompletedCalls, perInstance: Object.fromEntries(instances.map((i) => [i.name, answers.filter((x) => x.instance === i.name).length])) },
    perfRuns: runs.length,
    jobsPerRun: options.jobsPerRun,
    bodyBytes: { webhookMedian: [...calls.filter((c) => c.kind === "webhook").map((c) => Buffer.byteLength(c.body))].sort((x, y) => x - y)[Math.floor(options.deliveries / 2)] ?? 0 },
    floor,
    statuses,
    errors: answers.filter((x) => x.status < 200 || x.status >= 300).map((x) => `${x.kind} on ${x.instance}: ${x.status}${x.error ? ` ${x.error}` : ""}`).slice(0, 10),
    latencyMs: latencyFigures(answers),
    latencyMsByKind: { webhook: latencyFigures(answers.filter((x) => x.kind === "webhook")), jobCompleted: latencyFigures(answers.filter((x) => x.kind === "job-completed")) },
    answersWithinMs: round(answersMs),
    dispatches: { perPair, allWithinMs: allDispatchedAt === null ? null : round(allDispatchedAt - started), eachMs: lab.dispatchedAt.slice(dispatchesBefore).map((t) => round(t - started)) },
    githubRequests: lab.github.requests.length - requestsBefore,
    githubRequestKinds: requestKinds(lab, requestsBefore),
    reconciles,
    // Why a claimed pair was not dispatched at once (each costs another reconcile and a delay).
    claimsReleased: instances.flatMap((instance, i) => instance.stderr().slice(stderrBefore[i]).split("\n").filter((l) => l.includes("claim released")).map((l) => `${instance.name}: ${l}`)),
    timings: Object.fromEntries(instances.map((instance, i) => [instance.name, stats[i]!.timings])),
    quietAfterMs: round(quietMs),
    poisonMessages: await poisonCount(lab),
    loadAverageAtStart: Math.round(load * 100) / 100,
  };
}

// ---- phase 2: killed after a 2xx --------------------------------------------------------------

/**
 * A `workflow_job completed` for a new perf run on one pair, answered 2xx by an instance that is
 * SIGKILLed the moment the answer arrives (the other instance is stopped first, so no poll of
 * theirs serves the message); then a new instance on the same Azurite. The 2xx means the fact was
 * recorded and a reconcile queued, so the pair is reset exactly once.
 */
export async function killAfterAnswer(lab: BurstLab, victim: AppInstance, pair: Pair, startNext: () => Promise<AppInstance>, timeoutMs = 120_000) {
  // The lab at rest first. Queue insertion times are whole seconds: a message inserted in the same
  // second as the last served one is taken as covered by it (see the report), which is not what
  // this phase measures.
  await waitQuiet(lab, timeoutMs);
  const createdAt = await perfRunStart(lab, victim);
  const queue = lab.queue();
  const run = finishedPerfRun(lab, pair, 1, createdAt);
  const call = webhookCall(lab.secret, new Random(Date.now()).uuid(), lab.github.workflowJobEvent(run.jobIds[0]!, "completed"));
  const dispatchesBefore = lab.github.dispatches.length;
  const answer = await post(victim.url, call, victim.name);
  await victim.kill();
  const killedAt = performance.now();
  const waitingAfterKill = (await queue.peekMessages({ numberOfMessages: 32 })).peekedMessageItems.length;
  const reconcilesOfVictim = victim.reconciles.length;
  const next = await startNext();
  const nextListeningMs = performance.now() - killedAt;
  const dispatchedAt = await waitUntil(`a reset of ${pair.id}`, timeoutMs, () => (lab.github.dispatches.length > dispatchesBefore ? performance.now() : undefined), 20).catch(() => null);
  await waitQuiet(lab, timeoutMs);
  return {
    next,
    figures: {
      pair: pair.id,
      answer: answer.status,
      answerMs: round(answer.ms),
      killedBy: "SIGKILL",
      /** Visible on the queue right after the kill (0 would mean the victim had taken it). */
      messagesWaitingAfterKill: waitingAfterKill,
      victimReconcilesAfterAnswer: victim.reconciles.length - reconcilesOfVictim,
      nextInstanceListeningAfterKillMs: round(nextListeningMs),
      dispatchAfterKillMs: dispatchedAt === null ? null : round(dispatchedAt - killedAt),
      dispatchesPerPair: dispatchesPerPair(lab, dispatchesBefore),
      poisonMessages: await poisonCount(lab),
    },
  };
}

// ---- the benchmark ----------------------------------------------------------------------------

async function main(): Promise<number> {
  const options: BurstOptions = {
    deliveries: Number(process.env.BURST_DELIVERIES ?? 200),
    jobCompletedCalls: Number(process.env.BURST_CALLS ?? 50),
    jobsPerRun: Number(process.env.BURST_JOBS_PER_RUN ?? 20),
    seed: Number(process.env.BURST_SEED ?? 1),
    floor: process.env.BURST_FLOOR !== "0",
  };
  const configPath = process.env.BURST_LAB_CONFIG ?? "lab.config.json";
  const lab = await startBurstLab({ configPath });
  const instances: AppInstance[] = [];
  const cleanup = async () => {
    await Promise.all(instances.map((i) => i.stop().catch(() => undefined)));
    await lab.close();
  };
  const interrupted = () => void cleanup().finally(() => process.exit(130));
  process.once("SIGINT", interrupted);
  process.once("SIGTERM", interrupted);
  const wallStarted = performance.now();
  try {
    const timed = { ...lab.env, APP_INSTANCE_TIMINGS: "1" };
    instances.push(...(await Promise.all([spawnAppInstance("a", timed), spawnAppInstance("b", timed)])));
    const [a, b] = instances as [AppInstance, AppInstance];
    const burst = await phaseBurst(lab, instances, options);

    // Phase 2 starts from a clean lab, with only the instance that will be killed running; its
    // queue poll, once at its start, would next run in a minute, so it cannot serve the call's message.
    await finishResetsAndWaitClean(lab, b);
    await Promise.all([a.stop(), b.stop()]);
    const victim = await spawnAppInstance("victim", { ...lab.env, APP_INSTANCE_QUEUE_SETTINGS: JSON.stringify({ maxPollingInterval: "00:01:00" }) });
    instances.push(victim);
    const { next, figures: kill } = await killAfterAnswer(lab, victim, lab.config.pairs[0]!, () => spawnAppInstance("next", lab.env));
    instances.push(next);
    await Promise.all(instances.map((i) => i.stop()));
    const reconcilesTotal = Object.fromEntries(instances.map((i) => [i.name, i.lastStats?.reconciles ?? null]));

    const perPairOk = Object.values(burst.dispatches.perPair).every((n) => n === 1);
    const problems = [
      ...(burst.errors.length === 0 && (burst.statuses["0"] ?? 0) === 0 ? [] : [`not every answer was 2xx: ${JSON.stringify(burst.statuses)}`]),
      ...(burst.latencyMs.p99 <= TARGETS.p99Ms ? [] : [`latency p99 ${burst.latencyMs.p99} ms is over ${TARGETS.p99Ms} ms`]),
      ...(burst.dispatches.allWithinMs !== null && burst.dispatches.allWithinMs <= TARGETS.dispatchWithinMs ? [] : [`the four resets were not all dispatched within ${TARGETS.dispatchWithinMs / 1000} s (${burst.dispatches.allWithinMs ?? "never"} ms)`]),
      ...(perPairOk ? [] : [`expected exactly one dispatch per pair, got ${JSON.stringify(burst.dispatches.perPair)}`]),
      ...(burst.githubRequests <= TARGETS.githubRequests ? [] : [`${burst.githubRequests} GitHub requests, over ${TARGETS.githubRequests}`]),
      ...(burst.poisonMessages === 0 ? [] : [`${burst.poisonMessages} poison messages`]),
      ...(kill.answer >= 200 && kill.answer < 300 ? [] : [`the call before the kill answered ${kill.answer}`]),
      ...(Object.entries(kill.dispatchesPerPair).every(([id, n]) => n === (id === kill.pair ? 1 : 0)) ? [] : [`after the kill expected exactly one reset of ${kill.pair}, got ${JSON.stringify(kill.dispatchesPerPair)}`]),
    ];
    const figures = {
      date: new Date().toISOString().slice(0, 10),
      machine: `${cpus().length} cores, Node.js ${process.version}`,
      command: "npm run bench:burst",
      labConfig: { path: configPath, routingLabels: lab.config.routingLabels },
      targets: TARGETS,
      burst,
      killAfter2xx: kill,
      reconcilesPerInstanceTotal: reconcilesTotal,
      wallMs: round(performance.now() - wallStarted),
      loadAverageAtEnd: Math.round(loadavg()[0]! * 100) / 100,
      problems,
    };
    mkdirSync("docs/bench", { recursive: true });
    writeFileSync(OUT, `${JSON.stringify(figures, null, 2)}\n`);

    const reconcileText = Object.entries(burst.reconciles).map(([name, list]) => `${name} ${list.length}`).join(", ");
    console.log(`burst: ${options.deliveries} workflow_job deliveries + ${options.jobCompletedCalls} job-completed calls at once over 2 instances (${figures.machine}, load ${burst.loadAverageAtStart}; ${configPath}, routing labels ${JSON.stringify(lab.config.routingLabels)})`);
    console.log(`  answers ${JSON.stringify(burst.statuses)} within ${burst.answersWithinMs} ms; latency p50 ${burst.latencyMs.p50} ms, p99 ${burst.latencyMs.p99} ms, max ${burst.latencyMs.max} ms (webhook p99 ${burst.latencyMsByKind.webhook.p99}, job-completed p99 ${burst.latencyMsByKind.jobCompleted.p99})`);
    if (burst.floor) console.log(`  floor (the same calls to two bare servers: HMAC check and one Azurite write each): p50 ${burst.floor.latencyMs.p50} ms, p99 ${burst.floor.latencyMs.p99} ms, max ${burst.floor.latencyMs.max} ms`);
    console.log(`  resets ${JSON.stringify(burst.dispatches.perPair)}, all within ${burst.dispatches.allWithinMs ?? "—"} ms (each at ${burst.dispatches.eachMs.join(", ")} ms); GitHub requests ${burst.githubRequests}; reconciles ${reconcileText}; quiet after ${burst.quietAfterMs} ms`);
    for (const [name, t] of Object.entries(burst.timings)) {
      console.log(`  instance ${name}: ${Object.entries(t).map(([what, v]) => `${what} ${v.count}× p50 ${v.p50} p99 ${v.p99} ms`).join("; ")}`);
    }
    console.log(`kill after 2xx: answer ${kill.answer} in ${kill.answerMs} ms, SIGKILL (${kill.messagesWaitingAfterKill} message waiting), new instance listening after ${kill.nextInstanceListeningAfterKillMs} ms, reset of ${kill.pair} dispatched ${kill.dispatchAfterKillMs ?? "—"} ms after the kill; resets ${JSON.stringify(kill.dispatchesPerPair)}`);
    console.log(`wrote ${OUT}`);
    for (const problem of problems) console.error(`FAILED: ${problem}`);
    for (const instance of instances) {
      const alerts = instance.stderr().split("\n").filter((l) => l.includes("lab-reset alert"));
      if (alerts.length > 0) console.error(`instance ${instance.name}: ${alerts.length} alerts, first: ${alerts[0]}`);
    }
    return problems.length === 0 ? 0 : 1;
  } finally {
    await cleanup();
  }
}

const isEntry = process.argv[1] !== undefined && import.meta.url === pathToFileURL(realpathSync(process.argv[1])).href;
if (isEntry) {
  main().then(
    (code) => process.exit(code),
    (error: unknown) => {
      console.error(error);
      process.exit(1);
    },
  );
}
