/**
 * workflow_job deliveries built from GitHub's recorded payloads (@octokit/webhooks-examples),
 * adapted to the seed lab (repository, runner, run and times) with their shape kept, and signed
 * as GitHub signs them.
 */
import { randomUUID } from "node:crypto";
import { createRequire } from "node:module";
import { sign } from "@octokit/webhooks-methods";
import type { WebhookDefinition } from "@octokit/webhooks-examples";
import type { WebhookDelivery } from "../../shared/triggers/webhook.js";

const definitions = createRequire(import.meta.url)("@octokit/webhooks-examples") as WebhookDefinition[];
const workflowJob = definitions.find((d): d is WebhookDefinition<"workflow_job"> => d.name === "workflow_job");
if (workflowJob === undefined) throw new Error("@octokit/webhooks-examples has no workflow_job payloads");
export const workflowJobExamples = workflowJob.examples;
export type WorkflowJobPayload = (typeof workflowJobExamples)[number];

export const WEBHOOK_SECRET = "test-webhook-secret-5f1c2d9e8a7b";

export interface JobPatch {
  runnerName?: string | null;
  runId?: number;
  jobId?: number;
  startedAt?: string;
  completedAt?: string | null;
  repository?: string;
}

/** GitHub's recorded payload for `action` (a recent one, with run_attempt), adapted to the lab. */
export function workflowJobPayload(action: "queued" | "waiting" | "in_progress" | "completed", patch: JobPatch = {}): WorkflowJobPayload {
  const example = workflowJobExamples.find((e) => e.action === action && "run_attempt" in e.workflow_job);
  if (example === undefined) throw new Error(`no recorded workflow_job ${action} payload`);
  const payload = structuredClone(example);
  const [owner, name] = (patch.repository ?? "microsoft/netperf").split("/") as [string, string];
  payload.repository.full_name = `${owner}/${name}`;
  payload.repository.name = name;
  payload.repository.owner.login = owner;
  const fields = { runner_name: patch.runnerName, run_id: patch.runId, id: patch.jobId, started_at: patch.startedAt, completed_at: patch.completedAt };
  Object.assign(payload.workflow_job, Object.fromEntries(Object.entries(fields).filter(([, value]) => value !== undefined)));
  // The recorded payloads ran on GitHub-hosted runners: a job given a self-hosted runner is in its group.
  if (typeof patch.runnerName === "string" && !/^GitHub Actions \d+$/.test(patch.runnerName)) Object.assign(payload.workflow_job, { runner_group_id: 1, runner_group_name: "Default" });
  return payload;
}

/** A delivery as GitHub sends it: the body signed with the secret, with its event and delivery id. */
export async function signedDelivery(body: unknown, options: { secret?: string; event?: string; deliveryId?: string } = {}): Promise<WebhookDelivery> {
  const text = typeof body === "string" ? body : JSON.stringify(body);
  return {
    event: options.event ?? "workflow_job",
    deliveryId: options.deliveryId ?? randomUUID(),
    signature: await sign(options.secret ?? WEBHOOK_SECRET, text),
    body: text,
  };
}

/** The HTTP headers GitHub sends with a delivery. */
export function deliveryHeaders(delivery: WebhookDelivery): Record<string, string> {
  return {
    "content-type": "application/json",
    "user-agent": "GitHub-Hookshot/f1b5c8e",
    ...(delivery.event !== undefined ? { "x-github-event": delivery.event } : {}),
    ...(delivery.deliveryId !== undefined ? { "x-github-delivery": delivery.deliveryId } : {}),
    ...(delivery.signature !== undefined ? { "x-hub-signature-256": delivery.signature } : {}),
  };
}
