/**
 * GitHub's `workflow_job` webhook: GitHub itself says when a job starts and ends on a runner,
 * signed with the webhook secret, so no perf workflow needs editing.
 *
 * - `in_progress` on a pair's VM runner records the pair busy (and that a job ran) at once,
 *   instead of waiting for GitHub's lagging busy flag.
 * - `completed` runs the same reconcile as a job-completed call.
 *
 * Deliveries repeat and arrive out of order: each delivery id is handled once, and a job event
 * older than what the pair's record already reflects changes nothing.
 */
import { verify } from "@octokit/webhooks-methods";
import { RestError, TableClient } from "@azure/data-tables";
import { z } from "zod";
import { zodProblems, type LabConfig, type Pair } from "../lab/config.js";
import { GitHubError, type Runner, GitHubTime } from "../github/client.js";
import type { JsonResponse } from "./job-completed.js";
import type { Logger } from "../logger.js";
import { newPairRecord, type PairEvent, type PairRecord, type Trigger } from "../lab/pair-record.js";
import { lower, MAX_CONFLICT_RETRIES, reconcile, RunNotFoundError, type ReconcileDeps } from "../reconcile/reconcile.js";
import type { Runtime } from "../runtime.js";
import { REPOSITORY_PATTERN } from "../settings.js";
import { StoreConflictError, StoreError, type TableConnection } from "../storage/tables.js";

/** workflow_job payloads are a few KiB; GitHub caps any payload at 25 MB, which we never need. */
export const MAX_WEBHOOK_BODY_BYTES = 256 * 1024;

/** What the HTTP layer hands over: the raw body (the signature covers its exact bytes) and three headers. */
export interface WebhookDelivery {
  /** X-GitHub-Event */
  event: string | undefined;
  /** X-GitHub-Delivery */
  deliveryId: string | undefined;
  /** X-Hub-Signature-256 */
  signature: string | undefined;
  body: string;
}

// eslint-disable-next-line no-control-regex -- a runner name never holds control characters
export const RunnerNameSchema = z.string().min(1).max(255).regex(/^[^\u0000-\u001f\u007f]+$/, "must not contain control characters");

/** The fields of a workflow_job delivery that lab-reset reads; GitHub sends many more. */
export const WorkflowJobEventSchema = z.object({
  action: z.string(),
  workflow_job: z.object({
    id: z.number().int().positive(),
    run_id: z.number().int().positive(),
    // Missing from older GitHub Enterprise Server payloads.
    run_attempt: z.number().int().positive().optional(),
    runner_name: RunnerNameSchema.nullable(),
    started_at: GitHubTime,
    completed_at: GitHubTime.nullable(),
  }),
  repository: z.object({ full_name: z.string().regex(REPOSITORY_PATTERN, 'must be "owner/repo"') }),
});
export type WorkflowJobEvent = z.infer<typeof WorkflowJobEventSchema>;

const SIGNATURE = /^sha256=[0-9a-f]{64}$/;
// GitHub's delivery ids are GUIDs; anything else cannot be a Table row key safely.
const DELIVERY_ID = /^[A-Za-z0-9-]{1,64}$/;
const reply = (status: number, body: Record<string, unknown>): JsonResponse => ({ status, body });
const refuse = (status: number, message: string, extra: Record<string, unknown> = {}): JsonResponse => ({ status, body: { error: message, ...extra } });

export async function githubWebhook(runtime: Runtime, delivery: WebhookDelivery, logger: Logger): Promise<JsonResponse> {
  if (Buffer.byteLength(delivery.body, "utf8") > MAX_WEBHOOK_BODY_BYTES) return refuse(413, `Body is larger than ${MAX_WEBHOOK_BODY_BYTES} bytes.`);
  const secret = runtime.settings.webhookSecret;
  if (secret === null) {
    logger.error("githubWebhook: a delivery was refused because GITHUB_WEBHOOK_SECRET is not set; set it to the GitHub App's webhook secret.");
    return refuse(401, "lab-reset has no webhook secret configured (GITHUB_WEBHOOK_SECRET), so it cannot check deliveries.");
  }
  if (delivery.signature === undefined) return refuse(401, "The delivery has no X-Hub-Signature-256 header: set the webhook secret on the GitHub App.");
  // verify() compares in constant time; the format check only spares it garbage.
  if (!SIGNATURE.test(delivery.signature) || delivery.body === "" || !(await verify(secret, delivery.body, delivery.signature))) {
    return refuse(401, "The X-Hub-Signature-256 signature does not match the body: check that the App's webhook secret equals GITHUB_WEBHOOK_SECRET.");
  }

  if (delivery.deliveryId === undefined || !DELIVERY_ID.test(delivery.deliveryId)) return refuse(400, "The X-GitHub-Delivery header is missing or is not a delivery GUID.");
  if (delivery.event === "ping") return reply(200, { ok: true, event: "ping" });
  if (delivery.event !== "workflow_job") {
    return refuse(400, `lab-reset takes only workflow_job (and ping) events, not ${JSON.stringify(delivery.event ?? null)}: subscribe the App to "Workflow jobs" only.`);
  }
  let json: unknown;
  try {
    json = JSON.parse(delivery.body);
  } catch {
    return refuse(400, "The delivery body is not JSON.");
  }
  const parsed = WorkflowJobEventSchema.safeParse(json);
  if (!parsed.success) return refuse(400, "The delivery is not a workflow_job event lab-reset can read.", { problems: zodProblems(parsed.error) });
  const event = parsed.data;
  const repository = event.repository.full_name;
  if (!runtime.allowedRepositories.some((r) => lower(r) === lower(repository))) {
    return refuse(403, `Jobs of ${repository} do not concern this lab-reset: add the repository to ALLOWED_REPOSITORIES, or install the App only on the lab's repositories.`);
  }
  const job = event.workflow_job;
  const ignored = (why: string) => reply(202, { deliveryId: delivery.deliveryId, action: event.action, jobId: job.id, ignored: why });
  if (event.action !== "in_progress" && event.action !== "completed") return ignored(`action ${event.action} does not change a pair`);
  // Jobs on GitHub-hosted or other runners are none of the lab's business, but legitimate: not an error.
  if (job.runner_name === null) return ignored("the job never reached a runner");

  const deps = { ...runtime, logger };
  let pair: Pair | undefined;
  try {
    pair = pairOfRunner(runtime.config, await runtime.github.listRunners(), job.runner_name);
  } catch (error) {
    return unavailable(error, logger);
  }
  if (pair === undefined) return ignored(`runner ${job.runner_name} is not the VM runner of a configured pair`);

  try {
    if (!(await runtime.deliveries.claim(delivery.deliveryId, { event: event.action, jobId: job.id, runId: job.run_id, pairId: pair.id }))) {
      return reply(200, { deliveryId: delivery.deliveryId, duplicate: true, pair: pair.id });
    }
  } catch (error) {
    return unavailable(error, logger);
  }
  try {
    const body = { deliveryId: delivery.deliveryId, action: event.action, jobId: job.id, runId: job.run_id, pair: pair.id };
    const ownRepository = lower(repository) === lower(`${runtime.config.github.owner}/${runtime.config.github.repo}`);
    if (event.action === "in_progress") {
      const noted = await noteJob(deps, pair, { runId: job.run_id, at: job.started_at, runnerName: job.runner_name, phase: "started" }, "webhook");
      return reply(202, { ...body, ...noted });
    }
    const completedAt = job.completed_at ?? deps.clock().toISOString();
    if (!ownRepository) {
      // lab-reset reads runs of its own repository only: take the job's end from the delivery itself.
      const noted = await noteJob(deps, pair, { runId: job.run_id, at: completedAt, runnerName: job.runner_name, phase: "finished" }, "webhook");
      if (!noted.applied) return reply(202, { ...body, ...noted });
      const result = await reconcile(deps, "webhook");
      if (!result.ok) throw new ReconcileIncompleteError(result.errors);
      return reply(202, { ...body, ...noted, pairs: result.pairs.filter((p) => p.id === pair.id) });
    }
    const stored = await runtime.store.getPair(pair.id);
    if (stored?.record.resetDispatchedAt && completedAt < stored.record.resetDispatchedAt) {
      return reply(202, { ...body, applied: false, state: stored.record.state, why: "the job ended before the pair's last reset was requested" });
    }
    const result = await reconcile(deps, "webhook", { runId: job.run_id, ...(job.run_attempt ? { runAttempt: job.run_attempt } : {}), runnerName: job.runner_name });
    if (!result.ok) throw new ReconcileIncompleteError(result.errors);
    return reply(202, { ...body, applied: true, pairs: result.pairs.filter((p) => p.id === pair.id || result.runPairs.includes(p.id)) });
  } catch (error) {
    // Forget the delivery so that GitHub's redelivery of it is handled.
    await runtime.deliveries.release(delivery.deliveryId).catch((releaseError: unknown) => logger.error(`githubWebhook: could not forget delivery ${delivery.deliveryId}: ${(releaseError as Error).message}`));
    if (error instanceof RunNotFoundError) return refuse(404, `${error.message}; nothing was recorded.`);
    return unavailable(error, logger);
  }
}

/** The reconcile could not read or record every fact it needed (it then leaves the pairs concerned alone). */
class ReconcileIncompleteError extends Error {
  constructor(errors: string[]) {
    super(`the reconcile was incomplete: ${errors.join("; ")}`);
    this.name = "ReconcileIncompleteError";
  }
}

function unavailable(error: unknown, logger: Logger): JsonResponse {
  if (!(error instanceof GitHubError || error instanceof StoreError || error instanceof ReconcileIncompleteError)) throw error;
  logger.error(`githubWebhook: ${error.message}`);
  return { status: 503, body: { error: `${error.message}. Nothing unsafe was done; redeliver the event later.` }, headers: { "retry-after": "60" } };
}

/** The configured pair whose VM runner is the runner named `runnerName` (names and labels compared case-insensitively). */
export function pairOfRunner(config: LabConfig, runners: Runner[], runnerName: string): Pair | undefined {
  const named = runners.filter((r) => lower(r.name) === lower(runnerName));
  return config.pairs.find((pair) => named.some((r) => r.labels.some((l) => lower(l.name) === lower(pair.vmRunnerLabel))));
}

export interface JobNote {
  runId: number;
  /** When the job started (phase "started") or ended (phase "finished"), by GitHub's clock. */
  at: string;
  runnerName: string;
  phase: "started" | "finished";
}

export interface NoteResult {
  applied: boolean;
  state: PairRecord["state"];
  /** Why nothing was written, when not applied. */
  why?: string;
}

/** How long a webhook's job start keeps a pair busy without GitHub confirming it. */
export const BUSY_HOLD_MINUTES = 15;

/**
 * Records on the pair that a job started or finished on its VM, unless the record already
 * reflects something newer: a start of a run whose later event is recorded, or an end before the
 * last reset was requested, changes nothing. A start holds the pair busy (GitHub's own view lags)
 * until that run's end is reported or the hold runs out. A reset in flight keeps its state (it is
 * followed by reconcile); the job is noted, so the pair is dirty again once the reset ends.
 */
export async function noteJob(deps: ReconcileDeps, pair: Pair, job: JobNote, trigger: Trigger): Promise<NoteResult> {
  for (let attempt = 0; ; attempt++) {
    const current = await deps.store.getPair(pair.id);
    const now = deps.clock().toISOString();
    const before = current?.record ?? newPairRecord(pair.id, deps.clock());
    // One VM runs one job at a time: a start before the last job the pair records is stale.
    // (GitHub's timestamps have whole seconds, so another run may start in the second one ended.)
    const stale = before.lastJobAt !== null && (before.lastJobRunId === job.runId ? job.at <= before.lastJobAt : job.at < before.lastJobAt);
    if (job.phase === "started" && stale) {
      return { applied: false, state: before.state, why: "the pair already records a later job" };
    }
    // A start is never dropped for being early: it may be the very job a lagging busy flag hid.
    if (job.phase === "finished" && before.resetDispatchedAt !== null && job.at < before.resetDispatchedAt) {
      return { applied: false, state: before.state, why: "the job ended before the pair's last reset was requested" };
    }
    const next: PairRecord = {
      ...before,
      jobSinceReset: true,
      lastJobRunId: job.runId,
      lastJobAt: before.lastJobAt !== null && before.lastJobAt > job.at ? before.lastJobAt : job.at,
      updatedAt: now,
    };
    // Hold the pair busy past GitHub's lag; the job's end (or the hold running out) releases it.
    if (job.phase === "started") {
      next.busyUntil = new Date(deps.clock().getTime() + BUSY_HOLD_MINUTES * 60_000).toISOString();
      next.busyRunId = job.runId;
    } else if (before.busyRunId === job.runId) {
      next.busyUntil = null;
      next.busyRunId = null;
    }
    if (job.phase === "started" && before.state !== "resetting") {
      next.state = "busy";
      next.reason = `run ${job.runId} started a job on ${job.runnerName} (webhook)`;
    } else if (job.phase === "finished" && before.state === "clean") {
      next.state = "dirty";
      next.reason = `run ${job.runId} used the VM (job on ${job.runnerName} finished)`;
    }
    try {
      if (current === null) await deps.store.createPair(next);
      else await deps.store.replacePair(next, current.etag);
    } catch (error) {
      // Another writer got there first: look again at what it wrote.
      if (error instanceof StoreConflictError && attempt < MAX_CONFLICT_RETRIES) continue;
      throw error instanceof StoreConflictError ? new StoreError(`update pair ${pair.id}`, error) : error;
    }
    if (next.state !== before.state || current === null) {
      const event: PairEvent = { pairId: pair.id, at: now, kind: "state", trigger, from: current === null ? null : before.state, to: next.state, reason: next.reason, resetRequestId: next.resetRequestId, resetRunId: next.resetRunId };
      await deps.store.appendEvents([event]).catch((error: unknown) => deps.logger.error(`pair ${pair.id}: event not recorded (trigger ${trigger}): ${(error as Error).message}`));
    }
    deps.logger.info(`pair ${pair.id}: ${next.reason === before.reason ? `run ${job.runId} noted on ${job.runnerName}` : next.reason} (trigger ${trigger})`);
    return { applied: true, state: next.state };
  }
}

/** Which deliveries were handled; repeats of one are answered without acting again. */
export interface DeliveryLog {
  /** Records the delivery as handled; false when it was recorded before. */
  claim(deliveryId: string, about: { event: string; jobId: number; runId: number; pairId: string }): Promise<boolean>;
  /** Forgets a delivery whose handling failed, so that its redelivery is handled. */
  release(deliveryId: string): Promise<void>;
}

/** One entity per delivery that concerned a pair, in the table `<prefix>Deliveries`. */
export class TableDeliveryLog implements DeliveryLog {
  private constructor(
    private readonly table: TableClient,
    private readonly lab: string,
  ) {}

  static async open(options: { connection: TableConnection; tablePrefix: string; lab: string }): Promise<TableDeliveryLog> {
    const name = `${options.tablePrefix}Deliveries`;
    const table =
      options.connection.kind === "connectionString"
        ? TableClient.fromConnectionString(options.connection.connectionString, name, { allowInsecureConnection: true })
        : new TableClient(options.connection.tableServiceUrl, name, options.connection.credential);
    try {
      await table.createTable();
    } catch (error) {
      throw new StoreError(`create table ${name}`, error);
    }
    return new TableDeliveryLog(table, options.lab);
  }

  async claim(deliveryId: string, about: { event: string; jobId: number; runId: number; pairId: string }): Promise<boolean> {
    try {
      await this.table.createEntity({ partitionKey: this.lab, rowKey: deliveryId, ...about });
      return true;
    } catch (error) {
      if (error instanceof RestError && error.statusCode === 409) return false;
      throw new StoreError(`record delivery ${deliveryId}`, error);
    }
  }

  async release(deliveryId: string): Promise<void> {
    try {
      await this.table.deleteEntity(this.lab, deliveryId);
    } catch (error) {
      if (error instanceof RestError && error.statusCode === 404) return;
      throw new StoreError(`forget delivery ${deliveryId}`, error);
    }
  }
}

/** For runtimes whose store is not Table Storage (tests, the simulator): remembers deliveries in this process only. */
export class MemoryDeliveryLog implements DeliveryLog {
  private readonly seen = new Set<string>();

  claim(deliveryId: string): Promise<boolean> {
    if (this.seen.has(deliveryId)) return Promise.resolve(false);
    this.seen.add(deliveryId);
    return Promise.resolve(true);
  }

  release(deliveryId: string): Promise<void> {
    this.seen.delete(deliveryId);
    return Promise.resolve();
  }
}
