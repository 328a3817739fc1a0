/**
 * The app's LabGitHub in process, over the GitHub model: no HTTP, and still the requests Octokit
 * would send. Each call is sent as OctokitLabGitHub sends it over the stand-in (test/
 * github-contract.test.ts holds both to the same answers, requests and stats): a request per page
 * of 100, the last ETag of each GET URL sent again (a 304 counted in `notModified`), the retry
 * plugin's retries of a 5xx, the throttling plugin's of a rate limit, label writes sent once, a
 * dispatch never sent again; every attempt is received (recorded, faulted) by the model as the
 * stand-in would receive it. Answers pass the client's zod schemas, and failures become the
 * client's GitHubErrors, so the app cannot tell the two apart. Nothing waits: backoffs and
 * retry-after cost no time here.
 */
import { RequestError } from "@octokit/request-error";
import { z } from "zod";
import type { LabConfig, Pair } from "../lab/config.js";
import {
  describeFailure,
  JobSchema,
  parseAnswer,
  RunnerSchema,
  RunSchema,
  type DispatchResult,
  type Job,
  type LabelEditResult,
  type LabGitHub,
  type Run,
  type Runner,
} from "../github/client.js";
import { errorBody, etagOf, isObject, pageOf, RATE_LIMIT, sameName, type DispatchAnswer, type GitHubModel, type LabelOperation, type WorkflowRun } from "./github-model.js";
import { Lru } from "../lru.js";

export interface ModelLabGitHubOptions {
  /** Retries of a failed read, as the client's `retries` (the simulator's client has 3). */
  retries?: number;
  /** As the client's `maxRateLimitWaitSeconds`: a longer rate-limit wait gives the read up. */
  maxRateLimitWaitSeconds?: number;
}

/** The model's answer to one request; for a list, whether a next page exists. */
interface Routed extends DispatchAnswer {
  more?: boolean;
  /** The model's version of what the answer is made of (GitHubModel.versionOf). */
  version?: string;
  /** The answer's JSON text, when it can be had cheaper than by stringifying the body. */
  text?: () => string;
}

interface Response {
  status: number;
  data: unknown;
  headers: Record<string, string>;
  more: boolean;
}

/** One logical request's options, as the client passes them to Octokit. */
interface Send {
  method: "GET" | "POST" | "DELETE";
  path: string;
  query?: Record<string, string>;
  body?: unknown;
  /** The retry plugin's retries of this request (a 5xx…); the client's `retries` unless the call says. */
  retries?: number;
  /** Label writes: the throttling plugin sends them once too. */
  oneAttempt?: boolean;
  answer: () => Routed;
}

/** The retry plugin's `doNotRetry`, as the client sets it. */
const DO_NOT_RETRY = new Set([400, 401, 403, 404, 410, 422, 429, 451]);
const PER_PAGE = "100";

const ArrayOf = { runners: z.array(RunnerSchema), jobs: z.array(JobSchema), runs: z.array(RunSchema) };


/** GitHub's answer with the paging a list of `key` items takes; `itemText` gives an item's JSON text, if cheaper. */
function listAnswer<T>(key: string, all: readonly T[] | undefined, query: Record<string, string>, version: string, itemText?: (item: T) => string): Routed {
  if (all === undefined) return { status: 404, body: errorBody(404, "Not Found") };
  const { items, page, last } = pageOf(all, query);
  // What JSON.stringify makes of the body, assembled from the items' texts.
  const text = itemText && (() => `{"total_count":${all.length},${JSON.stringify(key)}:[${items.map(itemText).join(",")}]}`);
  return { status: 200, body: { total_count: all.length, [key]: items }, more: page < last, version, ...(text ? { text } : {}) };
}

export class ModelLabGitHub implements LabGitHub {
  private requests = 0;
  private notModified = 0;
  private rateLimitRemaining: number | null = null;
  /** The last ETag of each GET URL: sent as If-None-Match, as the client does. */
  private readonly etags = new Lru<string, string>(2_000);
  /** GitHub's side: the ETag of each URL's answer, computed again only once the model's version of it changes. */
  private readonly answerTags = new Lru<string, { version: string; etag: string }>(5_000);
  /** Each run's JSON text at a version of it: a list of runs changes one run at a time. */
  private readonly runTexts = new Lru<number, { version: number; text: string }>(5_000);
  private readonly finishedJobs = new Lru<number, Job[]>(5_000);
  private runDetailsUnsupported = false;
  private readonly retries: number;
  private readonly maxWait: number;

  constructor(
    readonly model: GitHubModel,
    private readonly config: LabConfig,
    options: ModelLabGitHubOptions = {},
  ) {
    this.retries = options.retries ?? 3;
    this.maxWait = options.maxRateLimitWaitSeconds ?? 120;
  }

  stats() {
    return { requests: this.requests, notModified: this.notModified, rateLimitRemaining: this.rateLimitRemaining };
  }

  private get repoPath(): string {
    return `/repos/${this.config.github.owner}/${this.config.github.repo}`;
  }

  private get orgScope(): boolean {
    return this.config.github.runnerScope === "org";
  }

  /** The stand-in's routes answer only for the model's repository (or its owner's runners). */
  private known(org: boolean): boolean {
    const { owner, repo } = this.config.github;
    return sameName(owner, this.model.owner) && (org || sameName(repo, this.model.repo));
  }

  private routed(org: boolean, answer: () => Routed): () => Routed {
    return () => (this.known(org) ? answer() : { status: 404, body: errorBody(404, "Not Found") });
  }

  async listRunners(): Promise<Runner[]> {
    const path = this.orgScope ? `/orgs/${this.config.github.owner}/actions/runners` : `${this.repoPath}/actions/runners`;
    const call = `GET ${path}`;
    return this.attempt(call, () => parseAnswer(call, ArrayOf.runners, this.paginate(path, {}, (query) => listAnswer("runners", this.model.listRunners(), query, this.model.versionOf({ runners: true })))));
  }

  async listActiveJobs(): Promise<Job[]> {
    const path = `${this.repoPath}/actions/runs`;
    const call = `GET ${path}?status=in_progress`;
    const runs = await this.attempt(call, () =>
      parseAnswer(call, ArrayOf.runs, this.paginate(path, { status: "in_progress" }, (query) => this.runList(this.model.listRuns({ status: "in_progress" }), query))),
    );
    const resetWorkflow = `/${this.config.resetWorkflow.workflow}`;
    const jobs: Job[] = [];
    for (const run of runs.filter((r) => !r.path?.endsWith(resetWorkflow))) {
      for (const job of await this.listRunJobs(run.id)) if (job.status !== "completed" && job.runner_name) jobs.push(job);
    }
    return jobs;
  }

  getRun(runId: number): Promise<Run | null> {
    const path = `${this.repoPath}/actions/runs/${runId}`;
    const call = `GET ${path}`;
    try {
      const { data } = this.send({ method: "GET", path, answer: this.routed(false, () => this.runAnswer(runId)) });
      return Promise.resolve(parseAnswer(call, RunSchema, data));
    } catch (error) {
      if (error instanceof RequestError && error.status === 404) return Promise.resolve(null);
      return Promise.reject(describeFailure(call, error));
    }
  }

  async listRunJobs(runId: number, attempt?: number): Promise<Job[]> {
    const path = `${this.repoPath}/actions/runs/${runId}${attempt ? `/attempts/${attempt}` : ""}/jobs`;
    const call = `GET ${path}`;
    const query: Record<string, string> = attempt ? {} : { filter: "latest" };
    return this.attempt(call, () => parseAnswer(call, ArrayOf.jobs, this.paginate(path, query, (q) => this.jobList(runId, attempt || undefined, q))));
  }

  async listResetRuns(since: Date): Promise<Run[]> {
    const workflow = this.config.resetWorkflow.workflow;
    const path = `${this.repoPath}/actions/workflows/${encodeURIComponent(workflow)}/runs`;
    const call = `GET ${this.repoPath}/actions/workflows/${workflow}/runs`;
    const filter = { workflow, event: "workflow_dispatch", created: createdSince(since) };
    return this.attempt(call, () =>
      parseAnswer(call, ArrayOf.runs, this.paginate(path, { event: filter.event, created: filter.created }, (query) => this.runList(this.model.listRuns(filter), query))),
    );
  }

  async listCompletedRuns(since: Date): Promise<Run[]> {
    const path = `${this.repoPath}/actions/runs`;
    const call = `GET ${path}?status=completed`;
    const filter = { status: "completed", created: createdSince(since) };
    return this.attempt(call, () => parseAnswer(call, ArrayOf.runs, this.paginate(path, filter, (query) => this.runList(this.model.listRuns(filter), query))));
  }

  async listFinishedRunJobs(runId: number): Promise<Job[]> {
    const cached = this.finishedJobs.get(runId);
    if (cached) return cached;
    const jobs = await this.listRunJobs(runId);
    this.finishedJobs.set(runId, jobs);
    return jobs;
  }

  cancelRun(runId: number): Promise<void> {
    const path = `${this.repoPath}/actions/runs/${runId}/cancel`;
    try {
      this.send({ method: "POST", path, answer: this.routed(false, () => this.model.cancel(runId)) });
    } catch (error) {
      // 409: the run already finished; nothing left to cancel.
      if (!(error instanceof RequestError && error.status === 409)) return Promise.reject(describeFailure(`POST ${path}`, error));
    }
    return Promise.resolve();
  }

  private labelsPath(runnerId: number): string {
    return this.orgScope ? `/orgs/${this.config.github.owner}/actions/runners/${runnerId}/labels` : `${this.repoPath}/actions/runners/${runnerId}/labels`;
  }

  async removeRunnerLabel(runnerId: number, label: string): Promise<LabelEditResult> {
    const path = `${this.labelsPath(runnerId)}/${encodeURIComponent(label)}`;
    return this.editLabel(`DELETE ${path}`, { method: "DELETE", path }, runnerId, "remove", label, undefined);
  }

  async addRunnerLabel(runnerId: number, label: string): Promise<LabelEditResult> {
    const path = this.labelsPath(runnerId);
    return this.editLabel(`POST ${path}`, { method: "POST", path }, runnerId, "add", undefined, { labels: [label] });
  }

  /** Label writes are sent once, by both plugins: a retry landing late could undo a newer edit. */
  private editLabel(call: string, request: Pick<Send, "method" | "path">, runnerId: number, operation: LabelOperation, name: string | undefined, body: unknown): Promise<LabelEditResult> {
    const scope = this.orgScope ? "org" : "repo";
    try {
      this.send({ ...request, body, retries: 0, oneAttempt: true, answer: this.routed(this.orgScope, () => this.model.labels(scope, operation, runnerId, name, body)) });
      return Promise.resolve("done");
    } catch (error) {
      if (error instanceof RequestError && error.status === 404) return Promise.resolve("not-found");
      return Promise.reject(describeFailure(call, error));
    }
  }

  async dispatchReset(pair: Pair, requestId: string): Promise<DispatchResult> {
    const { workflow, ref } = this.config.resetWorkflow;
    const call = `POST ${this.repoPath}/actions/workflows/${workflow}/dispatches`;
    const path = `${this.repoPath}/actions/workflows/${encodeURIComponent(workflow)}/dispatches`;
    const inputs = { pair: pair.id, hosts: JSON.stringify(pair.hosts), request_id: requestId };
    // Never repeated blindly (the retry plugin's retries 0): a 5xx may still have created the run.
    const dispatch = (withDetails: boolean) => {
      const body = { ref, inputs: { ...inputs }, ...(withDetails ? { return_run_details: true } : {}) };
      return this.send({ method: "POST", path, body, retries: 0, answer: this.routed(false, () => this.model.dispatch(workflow, body)) });
    };
    try {
      let response;
      try {
        response = dispatch(!this.runDetailsUnsupported);
      } catch (error) {
        if (!this.runDetailsUnsupported && error instanceof RequestError && (error.status === 400 || error.status === 422) && /return_run_details/.test(error.message)) {
          this.runDetailsUnsupported = true;
          response = dispatch(false);
        } else {
          throw error;
        }
      }
      const runId: unknown = isObject(response.data) ? response.data.workflow_run_id : undefined;
      return Promise.resolve({ outcome: "dispatched", runId: Number.isInteger(runId) ? (runId as number) : null });
    } catch (error) {
      const described = describeFailure(call, error);
      const definite = error instanceof RequestError && error.status >= 400 && error.status < 500 && error.status !== 429;
      return Promise.resolve(definite ? { outcome: "rejected", error: described.message } : { outcome: "unknown", error: described.message });
    }
  }

  private runList(runs: WorkflowRun[], query: Record<string, string>): Routed {
    return listAnswer("workflow_runs", runs, query, this.model.versionOf({ runs }), (run) => this.runText(run));
  }

  private runText(run: WorkflowRun): string {
    const id = Number(run.id);
    const version = this.model.runVersion(id) ?? -1;
    const known = this.runTexts.get(id);
    if (known !== undefined && known.version === version) return known.text;
    const text = JSON.stringify(run);
    this.runTexts.set(id, { version, text });
    return text;
  }

  private jobList(runId: number, attempt: number | undefined, query: Record<string, string>): Routed {
    const run = this.model.run(runId);
    return listAnswer("jobs", this.model.listJobs(runId, attempt), query, run === undefined ? "" : this.model.versionOf({ runs: [run] }));
  }

  private runAnswer(runId: number): Routed {
    const run = this.model.run(runId);
    return run === undefined ? { status: 404, body: errorBody(404, "Not Found") } : { status: 200, body: run, version: this.model.versionOf({ runs: [run] }) };
  }

  /** A read as the client makes it: any failure described for the call (a GitHubError passes as it is). */
  private attempt<T>(call: string, read: () => T): Promise<T> {
    try {
      return Promise.resolve(read());
    } catch (error) {
      return Promise.reject(describeFailure(call, error));
    }
  }

  /** `octokit.paginate`: a request per page, following `next`; a 409 ends the list quietly, as in the plugin. */
  private paginate(path: string, query: Record<string, string>, answer: (query: Record<string, string>) => Routed): unknown[] {
    const items: unknown[] = [];
    const org = path.startsWith("/orgs/");
    for (let page = 1; ; page++) {
      const pageQuery: Record<string, string> = { ...query, per_page: PER_PAGE, ...(page > 1 ? { page: String(page) } : {}) };
      let response: Response;
      try {
        response = this.send({ method: "GET", path, query: pageQuery, answer: this.routed(org, () => answer(pageQuery)) });
      } catch (error) {
        if (error instanceof RequestError && error.status === 409) break;
        throw error;
      }
      const data = response.data;
      if (!isObject(data) || !("total_count" in data)) {
        // The plugin unwraps `{ total_count, <items> }`; anything else is taken as it is.
        if (typeof data === "string" && data !== "") throw new TypeError(`Cannot use 'in' operator to search for 'total_count' in ${data}`);
        items.push(...(Array.isArray(data) ? (data as unknown[]) : data ? [data] : []));
      } else {
        const key = Object.keys(data).find((k) => !["total_count", "incomplete_results", "repository_selection"].includes(k));
        const list = key === undefined ? undefined : data[key];
        items.push(...(Array.isArray(list) ? (list as unknown[]) : []));
      }
      if (!response.more) break;
    }
    return items;
  }

  /**
   * One Octokit request: counted once (the client's `before` hook sits outside both plugins),
   * with the last ETag of its URL; the retry plugin around the throttling plugin around each attempt.
   * Returns the answer (a 304's is the one its ETag names), or throws the RequestError Octokit would.
   */
  private send(request: Send): Response {
    this.requests++;
    const key = request.method === "GET" ? `${request.path}?${new URLSearchParams(request.query ?? {}).toString()}` : undefined;
    const etag = key === undefined ? undefined : this.etags.get(key);
    const retries = request.retries ?? this.retries;
    let throttled = 0;
    let response: Response;
    for (let attempt = 0; ; attempt++) {
      // The throttling plugin's count spans the whole request, the retry plugin's attempts included.
      for (response = this.receive(request, key, etag); this.throttle(response, throttled, request.oneAttempt === true); response = this.receive(request, key, etag)) throttled++;
      if (response.status < 400 || DO_NOT_RETRY.has(response.status) || attempt >= retries) break;
    }
    if (response.status === 304 && etag !== undefined) {
      this.notModified++;
      return response;
    }
    if (response.status >= 300) throw this.requestError(request, response);
    const remaining = Number(response.headers["x-ratelimit-remaining"]);
    if (Number.isFinite(remaining)) this.rateLimitRemaining = remaining;
    if (key !== undefined && response.headers.etag !== undefined) this.etags.set(key, response.headers.etag);
    return response;
  }

  /** One attempt, as the stand-in receives it: recorded, perhaps faulted, else the model's answer (304 when its ETag was sent). */
  private receive(request: Send, key: string | undefined, etag: string | undefined): Response {
    const record = this.model.receive(request.method, request.path, request.query ?? {}, request.body);
    const headers: Record<string, string> = { "x-ratelimit-remaining": String(Math.max(0, RATE_LIMIT - this.model.requestCount)) };
    const fault = this.model.injectFault?.(request.method, request.path);
    if (fault !== undefined) {
      for (const [name, value] of Object.entries(fault.headers ?? {})) headers[name.toLowerCase()] = value;
      const noBody = fault.status === 204 || fault.status === 304;
      const payload = fault.raw ?? (noBody && fault.body === undefined ? undefined : JSON.stringify(fault.body ?? errorBody(fault.status)));
      record.status = fault.status;
      return { status: fault.status, data: responseData(payload, headers["content-type"]), headers, more: false };
    }
    const answer = request.answer();
    let status = answer.status;
    if (status === 200 && key !== undefined && answer.body !== undefined) {
      headers.etag = this.answerTag(key, answer);
      if (headers.etag === etag) status = 304;
    }
    record.status = status;
    if (answer.created) this.model.dispatched(answer.created);
    // A 304's body is the one its ETag names, which is this one: the client replays its copy.
    return { status, data: answer.body ?? "", headers, more: answer.more === true };
  }

  /** The stand-in's ETag of a GET answer: the hash of its JSON, hashed again only when the model's version of it changed. */
  private answerTag(key: string, answer: Routed): string {
    const known = answer.version === undefined ? undefined : this.answerTags.get(key);
    if (known !== undefined && known.version === answer.version) return known.etag;
    const etag = etagOf(answer.text ? answer.text() : JSON.stringify(answer.body));
    if (answer.version !== undefined) this.answerTags.set(key, { version: answer.version, etag });
    return etag;
  }

  /** The throttling plugin: a secondary rate limit, or a spent primary one, is waited out (then retried) at most twice. */
  private throttle(response: Response, retryCount: number, oneAttempt: boolean): boolean {
    if (response.status !== 403 && response.status !== 429) return false;
    const message = errorMessage(response.data);
    let retryAfter: number;
    if (/\bsecondary rate\b/i.test(message)) retryAfter = Number(response.headers["retry-after"]) || 60;
    else if (response.headers["x-ratelimit-remaining"] === "0" || rateLimited(response.data)) retryAfter = Math.max(Math.ceil((Math.trunc(Number(response.headers["x-ratelimit-reset"]) || 0) * 1000 - Date.now()) / 1000) + 1, 0);
    else return false;
    // The client's onRateLimit/onSecondaryRateLimit.
    return !oneAttempt && retryCount < 2 && retryAfter <= this.maxWait;
  }

  private requestError(request: Send, response: Response): RequestError {
    const message = response.status === 304 ? "Not modified" : errorMessage(response.data);
    const url = `${this.model.apiUrl}${request.path}`;
    return new RequestError(message, response.status, { request: { method: request.method, url, headers: {} }, response: { status: response.status, url, headers: response.headers, data: response.data } });
  }
}

/** GitHub's `created` filter, as the client words it: runs created at or after `since` (whole seconds, UTC). */
const createdSince = (since: Date) => `>=${since.toISOString().slice(0, 19)}Z`;

/** What @octokit/request makes of a body: JSON when it parses, else the text. */
function responseData(payload: string | undefined, contentType = "application/json"): unknown {
  if (payload === undefined) return "";
  if (!/json/i.test(contentType)) return payload;
  try {
    return JSON.parse(payload) as unknown;
  } catch {
    return payload;
  }
}

/** @octokit/request's message for an error answer. */
function errorMessage(data: unknown): string {
  if (typeof data === "string") return data;
  if (isObject(data) && "message" in data) {
    const suffix = "documentation_url" in data ? ` - ${String(data.documentation_url)}` : "";
    return Array.isArray(data.errors) ? `${String(data.message)}: ${data.errors.map((e) => JSON.stringify(e)).join(", ")}${suffix}` : `${String(data.message)}${suffix}`;
  }
  return `Unknown error: ${JSON.stringify(data)}`;
}

function rateLimited(data: unknown): boolean {
  return isObject(data) && Array.isArray(data.errors) && data.errors.some((e) => isObject(e) && e.type === "RATE_LIMITED");
}
