/**
 * Which `workflow_job` deliveries can change a pair's decision, and so are worth a look at
 * GitHub. Most deliveries of the repository are not: jobs on GitHub-hosted runners, and the
 * reset workflow's own host jobs starting. Pure: the delivery and the config say it all.
 */
import type { LabConfig } from "./config.js";

/** The delivery's job as this rule reads it. */
export interface DeliveredJob {
  /** The job's runs-on labels. */
  labels?: string[] | undefined;
  runner_name: string | null;
  runner_group_name?: string | null | undefined;
}

/**
 * - `look`: record the fact and queue a reconcile (a job started or ended on a runner that may be
 *   a lab VM, or a host job ended: a reset step, or a host freed);
 * - `record`: record the fact only (a host job started: it makes no pair dirty and blocks no
 *   reset already in flight; the reconcile reads it with the next look);
 * - `drop`: answer 2xx and keep nothing (a GitHub-hosted runner is never a lab runner).
 */
export type JobNews = "look" | "record" | "drop";

/** GitHub-hosted runners are in this runner group, and named `GitHub Actions <n>`. */
const HOSTED_GROUP = "GitHub Actions";
const HOSTED_NAME = /^GitHub Actions \d+$/;

export function jobNews(job: DeliveredJob, action: "in_progress" | "completed", config: Pick<LabConfig, "pairs" | "routingLabels">): JobNews {
  if (job.runner_name === null) return "drop";
  if (job.runner_group_name === HOSTED_GROUP || HOSTED_NAME.test(job.runner_name)) return "drop";
  const lower = (s: string) => s.toLowerCase();
  const labels = new Set((job.labels ?? []).map(lower));
  const hostLabels = config.pairs.flatMap((p) => p.hosts.map((h) => lower(h.runnerLabel)));
  const vmLabels = [...config.routingLabels, ...config.pairs.map((p) => p.vmRunnerLabel)].map(lower);
  // A job routed on a host's label runs on that host, never on a VM; only its end can unblock a pair.
  const onHost = hostLabels.some((l) => labels.has(l)) && !vmLabels.some((l) => labels.has(l));
  if (onHost) return action === "completed" ? "look" : "record";
  // Any other self-hosted runner may be a lab VM: which runner is whose is the reconcile's to say.
  return "look";
}

/** Whether a job routes on the routing labels (so may take a VM the reconcile put in routing); only with routing labels configured. */
export function routesOnRoutingLabels(job: Pick<DeliveredJob, "labels">, config: Pick<LabConfig, "routingLabels">): boolean {
  const labels = new Set((job.labels ?? []).map((l) => l.toLowerCase()));
  return config.routingLabels.some((l) => labels.has(l.toLowerCase()));
}
