/**
 * GitHub's `workflow_job` webhook: GitHub itself says when a job starts and ends on a runner,
 * signed with the webhook secret, so no perf workflow needs editing. A delivery is checked,
 * recorded as one insert-only fact (a job started or ended on the runner it names), and a
 * reconcile is queued; the answer comes in milliseconds, with no call to GitHub. Which pair the
 * runner belongs to is the reconcile's to say, from its own look at the runner list.
 *
 * Only deliveries that can change a decision queue a reconcile (shared/lab/job-news.ts): jobs on
 * GitHub-hosted runners are dropped, and a host job's start is recorded without a look.
 *
 * Deliveries repeat and arrive out of order: the fact's key (job and phase) makes a repeat a
 * no-op, and the reconcile orders facts by GitHub's timestamps, not by arrival.
 *
 * The one thing a trigger does itself: when routing labels are configured, a job's start (that
 * routed on them) removes them from the runner it started on at once, by `runner_id`, with one
 * DELETE per label — GitHub hands that VM the next queued job the moment this one ends, long
 * before a reset. One attempt, errors logged, never failing the delivery: the reconcile catches up.
 */
import { verify } from "@octokit/webhooks-methods";
import { z } from "zod";
import { zodProblems, type LabConfig } from "../lab/config.js";
import { jobNews, routesOnRoutingLabels } from "../lab/job-news.js";
import { BUSY_FLAG_LOOK_SECONDS } from "../lab/looks.js";
import { GitHubTime, type LabGitHub } from "../github/client.js";
import type { Logger } from "../logger.js";
import type { FactStore, JobFact } from "../storage/facts.js";
import type { HistoryStore, JobNews } from "../storage/history.js";
import type { ReconcileQueue } from "../storage/queue.js";
import { REPOSITORY_PATTERN, type Settings } from "../settings.js";
import { refuse, unavailable, type JsonResponse } from "./http.js";
import type { OncePerKey } from "../once.js";

/** The workflow_job actions recorded as facts; the others change no pair (and are not redelivered). */
const RECORDED = ["in_progress", "completed"] as const;
export const isRecordedAction = (action: string | null): action is (typeof RECORDED)[number] => (RECORDED as readonly (string | null)[]).includes(action);

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
    // A job cancelled before it reached a runner may carry "" and 0 rather than null: no runner.
    runner_name: z.preprocess((name) => (name === "" ? null : name), RunnerNameSchema.nullable()),
    runner_id: z
      .number()
      .int()
      .nullable()
      .optional()
      .transform((id) => (id === 0 ? null : id)),
    /** The job's runs-on labels. */
    labels: z.array(z.string()).optional(),
    /** "GitHub Actions" for a GitHub-hosted runner. */
    runner_group_name: z.string().nullable().optional(),
    started_at: GitHubTime,
    completed_at: GitHubTime.nullable(),
    /** When the job was queued; the history's queue wait starts here. */
    created_at: GitHubTime.optional(),
    conclusion: z.string().nullable().optional(),
  }),
  repository: z.object({ full_name: z.string().regex(REPOSITORY_PATTERN, 'must be "owner/repo"') }),
});
export type WorkflowJobEvent = z.infer<typeof WorkflowJobEventSchema>;

export interface WebhookRuntime {
  settings: Pick<Settings, "webhookSecrets">;
  allowedRepositories: string[];
  facts: FactStore;
  history: Pick<HistoryStore, "recordJobs">;
  queue: ReconcileQueue;
  clock: () => Date;
  config: Pick<LabConfig, "routingLabels" | "pairs">;
  github: Pick<LabGitHub, "removeRunnerLabel">;
  /** Label removals this instance sent recently (runner and label). */
  routingCloses: OncePerKey;
}

/** Longest the answer waits for the label DELETEs (they queue behind GitHub's write spacing); a slower one finishes unawaited, and the queued reconcile closes routing anyway. */
export const ROUTING_DELETE_WAIT_MS = 250;
/** A reset takes minutes: within this window a runner's label removed once is still removed. */
const ROUTING_CLOSE_DEDUPE_MS = 60_000;

const SIGNATURE = /^sha256=[0-9a-f]{64}$/;
// GitHub's delivery ids are GUIDs; anything else is not GitHub's.
const DELIVERY_ID = /^[A-Za-z0-9-]{1,64}$/;
const reply = (status: number, body: Record<string, unknown>): JsonResponse => ({ status, body });
const lower = (s: string) => s.toLowerCase();

async function signedWithOneOf(secrets: string[], body: string, signature: string): Promise<boolean> {
  for (const secret of secrets) if (await verify(secret, body, signature)) return true;
  return false;
}

async function authenticate(runtime: WebhookRuntime, delivery: WebhookDelivery, logger: Logger): Promise<JsonResponse | null> {
  const secrets = runtime.settings.webhookSecrets;
  if (secrets.length === 0) {
    logger.error("githubWebhook: a delivery was refused because GITHUB_WEBHOOK_SECRET is not set; set it to the GitHub App's webhook secret.");
    return refuse(401, "lab-reset has no webhook secret configured (GITHUB_WEBHOOK_SECRET), so it cannot check deliveries.");
  }
  if (delivery.signature === undefined) return refuse(401, "The delivery has no X-Hub-Signature-256 header: set the webhook secret on the GitHub App.");
  // verify() compares in constant time; the format check only spares it garbage.
  if (!SIGNATURE.test(delivery.signature) || delivery.body === "" || !(await signedWithOneOf(secrets, delivery.body, delivery.signature))) {
    return refuse(401, "The X-Hub-Signature-256 signature does not match the body: check that the App's webhook secret equals GITHUB_WEBHOOK_SECRET.");
  }
  return null;
}

/** The delivery's job event, or the refusal to answer with. */
function readEvent(runtime: WebhookRuntime, delivery: WebhookDelivery): WorkflowJobEvent | JsonResponse {
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
  const repository = parsed.data.repository.full_name;
  if (!runtime.allowedRepositories.some((r) => lower(r) === lower(repository))) {
    return refuse(403, `Jobs of ${repository} do not concern this lab-reset: add the repository to ALLOWED_REPOSITORIES, or install the App only on the lab's repositories.`);
  }
  return parsed.data;
}

export async function githubWebhook(runtime: WebhookRuntime, delivery: WebhookDelivery, logger: Logger): Promise<JsonResponse> {
  if (Buffer.byteLength(delivery.body, "utf8") > MAX_WEBHOOK_BODY_BYTES) return refuse(413, `Body is larger than ${MAX_WEBHOOK_BODY_BYTES} bytes.`);
  const refused = await authenticate(runtime, delivery, logger);
  if (refused) return refused;
  const event = readEvent(runtime, delivery);
  if ("status" in event) return event;
  const job = event.workflow_job;
  const about = { deliveryId: delivery.deliveryId, action: event.action, jobId: job.id, runId: job.run_id };
  const history = recordHistory(runtime, event, logger);
  try {
    return await answerDelivery(runtime, event, about, logger);
  } finally {
    await history;
  }
}

async function answerDelivery(runtime: WebhookRuntime, event: WorkflowJobEvent, about: Record<string, unknown>, logger: Logger): Promise<JsonResponse> {
  const job = event.workflow_job;
  if (event.action === "queued" && routesOnRoutingLabels(job, runtime.config)) return lookWhenStarted(runtime, about, logger);
  if (!isRecordedAction(event.action)) return reply(202, { ...about, ignored: `action ${event.action} does not change a pair` });
  // Jobs that never reached a runner are none of the lab's business, but legitimate: not an error.
  if (job.runner_name === null) return reply(202, { ...about, ignored: "the job never reached a runner" });
  const news = jobNews(job, event.action, runtime.config);
  if (news === "drop") return reply(202, { ...about, runner: job.runner_name, ignored: "a GitHub-hosted runner is never a lab runner" });

  const fact = jobFact(event.action, job, job.runner_name, runtime.clock().toISOString());
  let answer: JsonResponse;
  try {
    const [fresh] = await runtime.facts.record([fact]);
    // Queued even for a repeat: the first delivery's hand-over may be the part that failed.
    if (news === "look") await runtime.queue.send({ trigger: "webhook" });
    const reconcile = news === "look" ? "queued" : "not needed (a host job started)";
    answer = reply(fresh ? 202 : 200, { ...about, runner: job.runner_name, recorded: fact.phase, ...(fresh ? {} : { duplicate: true }), reconcile });
  } catch (error) {
    answer = unavailable(error, logger, "Nothing unsafe was done; redeliver the event later.");
  }
  if (event.action === "in_progress") await closeRouting(runtime, event.workflow_job, logger);
  return answer;
}

/** Self-hosted jobs only: a job queued for GitHub's runners never touches the lab. */
const forSelfHosted = (job: WorkflowJobEvent["workflow_job"]) => job.runner_group_name !== "GitHub Actions" && (job.labels ?? []).some((l) => lower(l) === "self-hosted");

/**
 * The delivery's part of the job's history row: labels and queue time from any action, the
 * start or the end from its own. A helper: a failure is logged, the delivery still answered.
 */
async function recordHistory(runtime: WebhookRuntime, event: WorkflowJobEvent, logger: Logger): Promise<void> {
  const job = event.workflow_job;
  if (!forSelfHosted(job) || !["queued", "in_progress", "completed"].includes(event.action)) return;
  const news: JobNews = { jobId: job.id, runId: job.run_id, labels: job.labels ?? [], ...(job.created_at ? { queuedAt: job.created_at } : {}) };
  if (job.runner_name !== null && event.action !== "queued") news.runnerName = job.runner_name;
  // GitHub's own start: a late (or reordered) delivery must not lengthen the job's queue wait.
  if (event.action === "in_progress") news.startedAt = job.started_at;
  // The start is in_progress's to say (dated as the fact is); the end carries only the end.
  if (event.action === "completed") Object.assign(news, { completedAt: job.completed_at ?? runtime.clock().toISOString(), conclusion: job.conclusion ?? null });
  try {
    await runtime.history.recordJobs([news]);
  } catch (error) {
    logger.warn(`githubWebhook: job ${job.id} not written to the history (the report will miss it): ${(error as Error).message}`);
  }
}

/**
 * A job queued on the routing labels may take an open VM within seconds: a look once the busy
 * flag would show it, in case its `in_progress` delivery comes late (or fails). Nothing recorded.
 */
async function lookWhenStarted(runtime: WebhookRuntime, about: Record<string, unknown>, logger: Logger): Promise<JsonResponse> {
  const dueAt = new Date(runtime.clock().getTime() + BUSY_FLAG_LOOK_SECONDS * 1000).toISOString();
  try {
    await runtime.queue.send({ trigger: "webhook", dueAt, firm: true }, { delaySeconds: BUSY_FLAG_LOOK_SECONDS });
    return reply(202, { ...about, reconcile: `a look at ${dueAt}, once GitHub's busy flag would show where the job started` });
  } catch (error) {
    return unavailable(error, logger, "Nothing was recorded; redeliver the event later.");
  }
}

/**
 * The delivery as a fact. A start is dated no earlier than its arrival: `started_at` may be the
 * job's queue time (reports differ on whether GitHub rewrites it at `in_progress`), and a job that
 * queued before a reset and started after it must not look like that reset's to clean.
 */
function jobFact(action: "in_progress" | "completed", job: WorkflowJobEvent["workflow_job"], runnerName: string, now: string): JobFact {
  const githubAt = action === "in_progress" ? job.started_at : job.completed_at;
  const at = action === "in_progress" ? (Date.parse(job.started_at) > Date.parse(now) ? job.started_at : now) : (job.completed_at ?? now);
  return { phase: action === "in_progress" ? "started" : "ended", jobId: job.id, runId: job.run_id, runnerName, runnerId: job.runner_id ?? null, at, githubAt, source: "webhook", recordedAt: now };
}

/**
 * Takes the runner out of routing at its job's start: a DELETE per routing label the job routed
 * on. A write, not a read: the no-GitHub-read rule holds. A label already absent (404) is fine.
 */
async function closeRouting(runtime: WebhookRuntime, job: WorkflowJobEvent["workflow_job"], logger: Logger): Promise<void> {
  const routes = new Set((job.labels ?? runtime.config.routingLabels).map(lower));
  // A job that did not route on a routing label cannot have come through one (nor reached a lab VM by it).
  const labels = runtime.config.routingLabels.filter((l) => routes.has(lower(l)));
  if (labels.length === 0) return;
  const runnerId = job.runner_id ?? null;
  if (runnerId === null) {
    logger.warn(`githubWebhook: job ${job.id} started on ${job.runner_name} without a runner_id; its routing labels are left to the reconcile`);
    return;
  }
  const deletes = (async () => {
    for (const label of labels) {
      try {
        // Once per runner and label in a while: a burst of starts must not queue dozens of writes
        // (spaced a second apart) ahead of the dispatches; no reset can re-add a label that fast.
        await runtime.routingCloses.run(`${runnerId}/${lower(label)}`, () => runtime.github.removeRunnerLabel(runnerId, label), ROUTING_CLOSE_DEDUPE_MS);
      } catch (error) {
        logger.error(`githubWebhook: removing routing label ${label} from runner ${job.runner_name} (id ${runnerId}) at the start of job ${job.id} failed; the reconcile tries again: ${(error as Error).message}`);
      }
    }
  })();
  let timer: NodeJS.Timeout | undefined;
  const waited = new Promise<void>((resolve) => (timer = setTimeout(resolve, ROUTING_DELETE_WAIT_MS)));
  await Promise.race([deletes, waited]);
  clearTimeout(timer);
}
