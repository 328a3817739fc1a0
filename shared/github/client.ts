/**
 * The app's only door to GitHub: an Octokit with the throttling and retry plugins, and the few
 * reads and writes (dispatch, cancel, label edits) that a reconcile needs. Every answer is checked with zod, so a
 * malformed answer is an error (and the pair is left alone), never a guess.
 */
import { Octokit } from "@octokit/rest";
import { retry } from "@octokit/plugin-retry";
import { throttling } from "@octokit/plugin-throttling";
import { createAppAuth } from "@octokit/auth-app";
import { RequestError } from "@octokit/request-error";
import Bottleneck from "bottleneck";
import { z } from "zod";
import type { LabConfig, Pair } from "../lab/config.js";
import type { Logger } from "../logger.js";
import { Lru } from "../lru.js";

const LabOctokit = Octokit.plugin(throttling, retry);
export type LabOctokitInstance = InstanceType<typeof LabOctokit>;

export type GitHubAuth =
  | { kind: "token"; token: string }
  | { kind: "app"; appId: string; installationId: number; privateKey: string };

export interface GitHubClientOptions {
  baseUrl: string;
  auth: GitHubAuth;
  logger: Logger;
  /** Per-request time limit; a hung request counts as a failed read. */
  timeoutMs?: number;
  /** Retries of a failed read (5xx, timeouts) before the read is given up. */
  retries?: number;
  /** Base of the retry plugin's backoff (retry n waits n² × this). Tests make it small. */
  retryBaseMs?: number;
  /** Most seconds to wait on a rate limit before giving up the read (and failing closed). */
  maxRateLimitWaitSeconds?: number;
  /** Least time between two writes (dispatches); GitHub asks for ≥ 1 s. Tests make it small. */
  writeSpacingMs?: number;
  /** Milliseconds per second of a rate limit's retry-after; the simulator makes it small. */
  rateLimitBaseMs?: number;
}

export function createOctokit(options: GitHubClientOptions): LabOctokitInstance {
  const { logger } = options;
  const timeoutMs = options.timeoutMs ?? 20_000;
  const maxWait = options.maxRateLimitWaitSeconds ?? 120;
  const onLimit =
    (kind: string) =>
    (retryAfter: number, request: { method: string; url: string; request?: Record<string, unknown> }, _octokit: unknown, retryCount: number) => {
      // A label write sent again later could land after a newer edit of the same runner.
      const willRetry = request.request?.oneAttempt !== true && retryCount < 2 && retryAfter <= maxWait;
      logger.warn(`GitHub ${kind} rate limit on ${request.method} ${request.url}: ${willRetry ? `retrying after ${retryAfter}s` : request.request?.oneAttempt === true ? "not sent again (label writes are sent once)" : "giving up this read"}`);
      return willRetry;
    };
  return new LabOctokit({
    baseUrl: options.baseUrl.replace(/\/+$/, ""),
    userAgent: "lab-reset",
    ...(options.auth.kind === "token"
      ? { auth: options.auth.token }
      : {
          authStrategy: createAppAuth,
          auth: { appId: options.auth.appId, privateKey: options.auth.privateKey, installationId: options.auth.installationId },
        }),
    request: {
      // A GitHub that cannot be reached fails fast (one quick second try), not through the retry
      // plugin's backoff: an answer of "unreachable" in under a second beats one after 14.
      fetch: async (url: string | URL, init: RequestInit = {}) => {
        const attempt = () => fetch(url, { ...init, signal: init.signal ? AbortSignal.any([init.signal, AbortSignal.timeout(timeoutMs)]) : AbortSignal.timeout(timeoutMs) });
        try {
          return await attempt();
        } catch (error) {
          let reason = connectFailure(error);
          if (reason === null) throw error;
          if (TRY_AGAIN_ONCE.has(reason)) {
            await new Promise((resolve) => setTimeout(resolve, 200));
            try {
              return await attempt();
            } catch (again) {
              reason = connectFailure(again);
              if (reason === null) throw again;
            }
          }
          throw new GitHubUnreachable(new URL(String(url)).origin, reason);
        }
      },
    },
    // 429 is the throttling plugin's alone: it honours retry-after, or gives the read up.
    retry: { retries: options.retries ?? 3, retryAfterBaseValue: options.retryBaseMs ?? 1000, doNotRetry: [400, 401, 403, 404, 410, 422, 429, 451] },
    throttle: {
      onRateLimit: onLimit("primary"),
      onSecondaryRateLimit: onLimit("secondary"),
      ...(options.rateLimitBaseMs !== undefined ? { retryAfterBaseValue: options.rateLimitBaseMs } : {}),
      // The plugin spaces writes ≥ 1 s apart by default, as GitHub asks of content-creating requests.
      ...(options.writeSpacingMs !== undefined
        ? { write: new Bottleneck.Group({ id: "lab-reset-write", maxConcurrent: 1, minTime: options.writeSpacingMs }) }
        : {}),
    },
    // Octokit logs every 304 (a conditional request's hit) as a failed request, and a failed connection as a
    // "500" GitHub never sent: neither is logged here (the described GitHubError is).
    log: { debug: () => {}, info: () => {}, warn: (m: string) => logger.warn(m), error: (m: string) => (/ - 304 with id | - 500 with id UNKNOWN /.test(m) ? undefined : logger.error(m)) },
  });
}

// The fields we read, checked at run time; the stand-in types the full shapes with @octokit/openapi-types.
/**
 * GitHub's timestamps (`2026-11-27T12:00:00Z`) in the one form the app stores and compares as
 * strings (`Date#toISOString`: milliseconds, UTC), so that earlier always sorts first.
 */
export const GitHubTime = z.iso.datetime({ offset: true }).transform((s) => new Date(s).toISOString());

export const RunnerSchema = z.object({
  id: z.number().int(),
  name: z.string(),
  status: z.string(),
  busy: z.boolean(),
  /** `type` is "read-only" (self-hosted, OS, architecture: never touched) or "custom". */
  labels: z.array(z.object({ name: z.string(), type: z.string().optional() })),
});
export type Runner = z.infer<typeof RunnerSchema>;

export const JobSchema = z.object({
  id: z.number().int(),
  run_id: z.number().int(),
  status: z.string(),
  conclusion: z.string().nullable(),
  runner_name: z.string().nullable(),
  runner_id: z.number().int().nullable().optional(),
  /** The job's runs-on labels. */
  labels: z.array(z.string()).default([]),
  completed_at: GitHubTime.nullable().optional(),
  /** When it was queued and started: the history's queue wait. */
  created_at: GitHubTime.nullable().optional(),
  started_at: GitHubTime.nullable().optional(),
  /** The job's page (`…/actions/runs/{run_id}/job/{id}`). */
  html_url: z.string().nullable().optional(),
});
export type Job = z.infer<typeof JobSchema>;

export const RunSchema = z.object({
  id: z.number().int(),
  status: z.string().nullable(),
  conclusion: z.string().nullable(),
  display_title: z.string().optional(),
  path: z.string().optional(),
  html_url: z.string(),
  updated_at: GitHubTime,
  run_attempt: z.number().int().optional(),
});
export type Run = z.infer<typeof RunSchema>;

const DispatchDetailsSchema = z.object({ workflow_run_id: z.number().int() });

/** A GitHub call that failed, described for the person reading the log or the pair's record. */
export class GitHubError extends Error {
  constructor(
    readonly call: string,
    readonly status: number | null,
    detail: string,
  ) {
    super(`GitHub ${call} failed${status ? ` with ${status}` : ""}: ${detail}`);
    this.name = "GitHubError";
  }
}

/** Fetch failures that mean no connection to GitHub opened, so no request reached it (fetch's `cause.code`). */
const NOT_CONNECTED = new Set(["ECONNREFUSED", "ENOTFOUND", "EAI_AGAIN", "EHOSTUNREACH", "ENETUNREACH", "UND_ERR_CONNECT_TIMEOUT"]);
const TLS_REFUSED = new Set(["CERT_HAS_EXPIRED", "UNABLE_TO_VERIFY_LEAF_SIGNATURE", "UNABLE_TO_GET_ISSUER_CERT_LOCALLY", "SELF_SIGNED_CERT_IN_CHAIN", "DEPTH_ZERO_SELF_SIGNED_CERT", "ERR_TLS_CERT_ALTNAME_INVALID"]);
/** Worth one quick second try (a proxy restarting, a DNS blip); the others would fail the same way again. */
const TRY_AGAIN_ONCE = new Set(["ECONNREFUSED", "ENOTFOUND"]);

/** The reason fetch could not connect (`ECONNREFUSED`, a TLS code, …), or null when it did connect or did not fail so. */
function connectFailure(error: unknown): string | null {
  const cause = error instanceof TypeError ? (error.cause as { code?: unknown; message?: unknown } | undefined) : undefined;
  const code = typeof cause?.code === "string" ? cause.code : undefined;
  if (code && (NOT_CONNECTED.has(code) || TLS_REFUSED.has(code))) return code;
  return cause?.message === "bad port" ? "a port fetch refuses to use" : null;
}

/**
 * GitHub could not be reached at all, so it sent no status. Named AbortError because Octokit
 * passes that on as it is, where any other fetch failure would become a "500" RequestError
 * that the retry plugin retries with seconds of backoff.
 */
class GitHubUnreachable extends Error {
  override name = "AbortError";
  constructor(
    readonly origin: string,
    readonly reason: string,
  ) {
    super(`cannot connect to ${origin}: ${reason}`);
  }
}

function describe(call: string, error: unknown): GitHubError {
  if (error instanceof GitHubError) return error;
  if (error instanceof GitHubUnreachable) {
    const hint = TLS_REFUSED.has(error.reason) ? "; check GITHUB_API_URL, and for a private CA set NODE_EXTRA_CA_CERTS" : "; check GITHUB_API_URL";
    return new GitHubError(call, null, `${error.message}${hint}`);
  }
  // Octokit reports every fetch failure as "500"; without a response, GitHub never answered.
  if (error instanceof RequestError && error.response === undefined && error.cause instanceof TypeError) {
    const cause = error.cause.cause as { code?: unknown } | undefined;
    const origin = URL.canParse(error.request.url) ? new URL(error.request.url).origin : "GitHub";
    return new GitHubError(call, null, `no answer from ${origin}: ${typeof cause?.code === "string" ? cause.code : error.message}`);
  }
  if (error instanceof RequestError) {
    const hint =
      error.status === 401 ? " (check GITHUB_TOKEN or the GitHub App settings)"
      : error.status === 403 ? " (the token lacks a permission, or the rate limit is spent)"
      : "";
    return new GitHubError(call, error.status, `${error.message}${hint}`);
  }
  return new GitHubError(call, null, error instanceof Error ? error.message : String(error));
}

/** GitHub's `created` filter: runs created at or after `since` (whole seconds, UTC). */
const createdSince = (since: Date) => `>=${since.toISOString().slice(0, 19)}Z`;

function parse<T>(call: string, schema: z.ZodType<T>, value: unknown): T {
  const result = schema.safeParse(value);
  if (!result.success) {
    throw new GitHubError(call, null, `unexpected answer: ${result.error.issues.slice(0, 3).map((i) => `${i.path.join(".")}: ${i.message}`).join("; ")}`);
  }
  return result.data;
}

export type DispatchResult =
  | { outcome: "dispatched"; runId: number | null }
  /** GitHub refused it: no run exists. */
  | { outcome: "rejected"; error: string }
  /** No clear answer (5xx, timeout): a run may or may not exist; find it by request id. */
  | { outcome: "unknown"; error: string };

/**
 * A label edit's answer: `done`, or `not-found`: for a removal, the runner does not carry the
 * label (or no longer exists); for an addition, the runner no longer exists. Failures throw a GitHubError.
 */
export type LabelEditResult = "done" | "not-found";

/** Label writes are sent once: a retry landing late could undo a newer edit of the same runner. */
const ONE_ATTEMPT = { retries: 0, oneAttempt: true };

/** What a reconcile asks of GitHub. A second implementation (the simulator) passes the same tests. */
export interface LabGitHub {
  listRunners(): Promise<Runner[]>;
  /**
   * Unfinished jobs that a runner has picked up, of the repository's in-progress runs that can
   * hold a job on a lab VM: runs of the reset workflow are skipped (their jobs run on host runners
   * and GitHub-hosted ones only).
   */
  listActiveJobs(): Promise<Job[]>;
  /** null when GitHub does not know the run. */
  getRun(runId: number): Promise<Run | null>;
  listRunJobs(runId: number, attempt?: number): Promise<Job[]>;
  /** Reset runs created since `since`, to find runs by the request id in their title. */
  listResetRuns(since: Date): Promise<Run[]>;
  /** The repository's runs completed and created since `since` (the timer's look for lost job-completed calls). */
  listCompletedRuns(since: Date): Promise<Run[]>;
  /** Jobs of a completed run; they no longer change, so each run is read once per process. */
  listFinishedRunJobs(runId: number): Promise<Job[]>;
  dispatchReset(pair: Pair, requestId: string): Promise<DispatchResult>;
  /** Cancels a run (a reset given up on), so it cannot restore a VM later. */
  cancelRun(runId: number): Promise<void>;
  /** `DELETE …/runners/{id}/labels/{label}` (repo or org runners, per runnerScope); one attempt. */
  removeRunnerLabel(runnerId: number, label: string): Promise<LabelEditResult>;
  /** `POST …/runners/{id}/labels` with `{ labels: [label] }`; one attempt. */
  addRunnerLabel(runnerId: number, label: string): Promise<LabelEditResult>;
  /** Requests sent so far, and the last rate-limit headroom seen. */
  stats(): { requests: number; notModified: number; rateLimitRemaining: number | null };
}


interface CachedAnswer {
  etag: string;
  response: { status: number; url: string; headers: Record<string, string | number | undefined>; data: unknown };
}

export class OctokitLabGitHub implements LabGitHub {
  private requests = 0;
  private notModified = 0;
  private rateLimitRemaining: number | null = null;
  /** Last answer of each GET, replayed when GitHub says 304 (a 304 costs no rate limit). */
  private readonly answers = new Lru<string, CachedAnswer>(2_000);
  private readonly finishedJobs = new Lru<number, Job[]>(5_000);
  /** Servers that refused `return_run_details` (GHES ≤ 3.20): don't ask them again. */
  private runDetailsUnsupported = false;

  constructor(
    private readonly octokit: LabOctokitInstance,
    private readonly config: LabConfig,
  ) {
    octokit.hook.before("request", () => {
      this.requests++;
    });
    octokit.hook.after("request", (response) => {
      const remaining = Number(response.headers["x-ratelimit-remaining"]);
      if (Number.isFinite(remaining)) this.rateLimitRemaining = remaining;
    });
    // Conditional requests: send the last ETag of each list; on 304 reuse the answer it names.
    octokit.hook.wrap("request", async (request, options) => {
      if (options.method !== "GET") return request(options);
      const key = octokit.request.endpoint(options).url;
      const cached = this.answers.get(key);
      if (cached) options.headers = { ...options.headers, "if-none-match": cached.etag };
      try {
        const response = await request(options);
        const etag = response.headers.etag;
        // Copies: paginate rewrites the answer it is given (it unwraps `{ total_count, runners }`).
        if (typeof etag === "string") this.answers.set(key, { etag, response: structuredClone({ status: response.status, url: response.url, headers: response.headers, data: response.data as unknown }) });
        return response;
      } catch (error) {
        if (cached && error instanceof RequestError && error.status === 304) {
          this.notModified++;
          return structuredClone(cached.response) as Awaited<ReturnType<typeof request>>;
        }
        throw error;
      }
    });
  }

  stats() {
    return { requests: this.requests, notModified: this.notModified, rateLimitRemaining: this.rateLimitRemaining };
  }

  private get repo() {
    return { owner: this.config.github.owner, repo: this.config.github.repo };
  }

  async listRunners(): Promise<Runner[]> {
    const call = this.config.github.runnerScope === "org" ? `GET /orgs/${this.repo.owner}/actions/runners` : `GET /repos/${this.repo.owner}/${this.repo.repo}/actions/runners`;
    try {
      const runners =
        this.config.github.runnerScope === "org"
          ? await this.octokit.paginate(this.octokit.rest.actions.listSelfHostedRunnersForOrg, { org: this.repo.owner, per_page: 100 })
          : await this.octokit.paginate(this.octokit.rest.actions.listSelfHostedRunnersForRepo, { ...this.repo, per_page: 100 });
      return parse(call, z.array(RunnerSchema), runners);
    } catch (error) {
      throw describe(call, error);
    }
  }

  async listActiveJobs(): Promise<Job[]> {
    const call = `GET /repos/${this.repo.owner}/${this.repo.repo}/actions/runs?status=in_progress`;
    let runs: Run[];
    try {
      const listed = await this.octokit.paginate(this.octokit.rest.actions.listWorkflowRunsForRepo, { ...this.repo, status: "in_progress", per_page: 100 });
      runs = parse(call, z.array(RunSchema), listed);
    } catch (error) {
      throw describe(call, error);
    }
    const jobs: Job[] = [];
    const resetWorkflow = `/${this.config.resetWorkflow.workflow}`;
    // Serial on purpose: GitHub asks integrators to avoid concurrent requests.
    for (const run of runs.filter((r) => !r.path?.endsWith(resetWorkflow))) {
      for (const job of await this.listRunJobs(run.id)) {
        if (job.status !== "completed" && job.runner_name) jobs.push(job);
      }
    }
    return jobs;
  }

  async getRun(runId: number): Promise<Run | null> {
    const call = `GET /repos/${this.repo.owner}/${this.repo.repo}/actions/runs/${runId}`;
    try {
      const { data } = await this.octokit.rest.actions.getWorkflowRun({ ...this.repo, run_id: runId });
      return parse(call, RunSchema, data);
    } catch (error) {
      if (error instanceof RequestError && error.status === 404) return null;
      throw describe(call, error);
    }
  }

  async listRunJobs(runId: number, attempt?: number): Promise<Job[]> {
    const call = `GET /repos/${this.repo.owner}/${this.repo.repo}/actions/runs/${runId}${attempt ? `/attempts/${attempt}` : ""}/jobs`;
    try {
      const jobs = attempt
        ? await this.octokit.paginate(this.octokit.rest.actions.listJobsForWorkflowRunAttempt, { ...this.repo, run_id: runId, attempt_number: attempt, per_page: 100 })
        : await this.octokit.paginate(this.octokit.rest.actions.listJobsForWorkflowRun, { ...this.repo, run_id: runId, filter: "latest", per_page: 100 });
      return parse(call, z.array(JobSchema), jobs);
    } catch (error) {
      throw describe(call, error);
    }
  }

  async listResetRuns(since: Date): Promise<Run[]> {
    const workflow = this.config.resetWorkflow.workflow;
    const call = `GET /repos/${this.repo.owner}/${this.repo.repo}/actions/workflows/${workflow}/runs`;
    return this.readRuns(call, () =>
      this.octokit.paginate(this.octokit.rest.actions.listWorkflowRuns, { ...this.repo, workflow_id: workflow, event: "workflow_dispatch", created: createdSince(since), per_page: 100 }),
    );
  }

  async listCompletedRuns(since: Date): Promise<Run[]> {
    const call = `GET /repos/${this.repo.owner}/${this.repo.repo}/actions/runs?status=completed`;
    return this.readRuns(call, () =>
      this.octokit.paginate(this.octokit.rest.actions.listWorkflowRunsForRepo, { ...this.repo, status: "completed", created: createdSince(since), per_page: 100 }),
    );
  }

  private async readRuns(call: string, list: () => Promise<unknown>): Promise<Run[]> {
    try {
      return parse(call, z.array(RunSchema), await list());
    } catch (error) {
      throw describe(call, error);
    }
  }

  async listFinishedRunJobs(runId: number): Promise<Job[]> {
    const cached = this.finishedJobs.get(runId);
    if (cached) return cached;
    const jobs = await this.listRunJobs(runId);
    this.finishedJobs.set(runId, jobs);
    return jobs;
  }

  async cancelRun(runId: number): Promise<void> {
    const call = `POST /repos/${this.repo.owner}/${this.repo.repo}/actions/runs/${runId}/cancel`;
    try {
      await this.octokit.rest.actions.cancelWorkflowRun({ ...this.repo, run_id: runId });
    } catch (error) {
      // 409: the run already finished; nothing left to cancel.
      if (error instanceof RequestError && error.status === 409) return;
      throw describe(call, error);
    }
  }

  private runnerPath(runnerId: number): string {
    const { owner, repo } = this.repo;
    return this.config.github.runnerScope === "org" ? `/orgs/${owner}/actions/runners/${runnerId}/labels` : `/repos/${owner}/${repo}/actions/runners/${runnerId}/labels`;
  }

  async removeRunnerLabel(runnerId: number, label: string): Promise<LabelEditResult> {
    const call = `DELETE ${this.runnerPath(runnerId)}/${encodeURIComponent(label)}`;
    const { owner: org } = this.repo;
    try {
      if (this.config.github.runnerScope === "org") await this.octokit.rest.actions.removeCustomLabelFromSelfHostedRunnerForOrg({ org, runner_id: runnerId, name: label, request: ONE_ATTEMPT });
      else await this.octokit.rest.actions.removeCustomLabelFromSelfHostedRunnerForRepo({ ...this.repo, runner_id: runnerId, name: label, request: ONE_ATTEMPT });
      return "done";
    } catch (error) {
      if (error instanceof RequestError && error.status === 404) return "not-found";
      throw describe(call, error);
    }
  }

  async addRunnerLabel(runnerId: number, label: string): Promise<LabelEditResult> {
    const call = `POST ${this.runnerPath(runnerId)}`;
    const { owner: org } = this.repo;
    try {
      if (this.config.github.runnerScope === "org") await this.octokit.rest.actions.addCustomLabelsToSelfHostedRunnerForOrg({ org, runner_id: runnerId, labels: [label], request: ONE_ATTEMPT });
      else await this.octokit.rest.actions.addCustomLabelsToSelfHostedRunnerForRepo({ ...this.repo, runner_id: runnerId, labels: [label], request: ONE_ATTEMPT });
      return "done";
    } catch (error) {
      if (error instanceof RequestError && error.status === 404) return "not-found";
      throw describe(call, error);
    }
  }

  async dispatchReset(pair: Pair, requestId: string): Promise<DispatchResult> {
    const { workflow, ref } = this.config.resetWorkflow;
    const call = `POST /repos/${this.repo.owner}/${this.repo.repo}/actions/workflows/${workflow}/dispatches`;
    const inputs = { pair: pair.id, hosts: JSON.stringify(pair.hosts), request_id: requestId };
    const send = (withDetails: boolean) =>
      this.octokit.request("POST /repos/{owner}/{repo}/actions/workflows/{workflow_id}/dispatches", {
        ...this.repo,
        workflow_id: workflow,
        ref,
        inputs,
        ...(withDetails ? { return_run_details: true } : {}),
        // Never repeat a dispatch blindly: a 5xx may still have created the run.
        request: { retries: 0 },
      });
    try {
      let response;
      try {
        response = await send(!this.runDetailsUnsupported);
      } catch (error) {
        if (!this.runDetailsUnsupported && error instanceof RequestError && (error.status === 400 || error.status === 422) && /return_run_details/.test(error.message)) {
          this.runDetailsUnsupported = true;
          response = await send(false);
        } else {
          throw error;
        }
      }
      const details = DispatchDetailsSchema.safeParse(response.data);
      return { outcome: "dispatched", runId: details.success ? details.data.workflow_run_id : null };
    } catch (error) {
      const described = describe(call, error);
      const definite = error instanceof RequestError && error.status >= 400 && error.status < 500 && error.status !== 429;
      return definite ? { outcome: "rejected", error: described.message } : { outcome: "unknown", error: described.message };
    }
  }
}

/** For other GitHub readers over the same client (shared/github/deliveries.ts): one way to report a failed call and an unexpected answer. */
export { describe as describeFailure, parse as parseAnswer };
