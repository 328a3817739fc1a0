/**
 * A loopback stand-in for the parts of GitHub's REST API that lab-reset uses: runners and their
 * labels, workflow runs, jobs and workflow dispatches, plus the `workflow_job` webhook payloads
 * GitHub would send. Integration tests drive its state directly (addRunner, addRun, setJob…) and
 * script failures (fail, hang, denyLabelCall); every answer is typed with @octokit/openapi-types
 * so a shape that drifts from GitHub's fails to compile.
 */
import { createHash, createPublicKey, randomBytes, verify as verifySignature, type KeyObject } from "node:crypto";
import { createServer, STATUS_CODES } from "node:http";
import type { IncomingMessage, OutgoingHttpHeaders, Server, ServerResponse } from "node:http";
import type { components, operations } from "@octokit/openapi-types";
import { WebhookDeliveryLog, type HookDeliveryItem } from "./standin-deliveries.js";

type Schemas = components["schemas"];
type Runner = Schemas["runner"];
type WorkflowRun = Schemas["workflow-run"];
type Job = Schemas["job"];
type BasicError = Schemas["basic-error"];
type SimpleUser = Schemas["simple-user"];
type MinimalRepository = Schemas["minimal-repository"];
type JobConclusion = Job["conclusion"];
type RunnerList =
  operations["actions/list-self-hosted-runners-for-repo"]["responses"][200]["content"]["application/json"];
type RunList = operations["actions/list-workflow-runs-for-repo"]["responses"][200]["content"]["application/json"];
type JobList = operations["actions/list-jobs-for-workflow-run"]["responses"][200]["content"]["application/json"];
type RunnerLabel = Schemas["runner-label"];
type LabelList = operations["actions/list-labels-for-self-hosted-runner-for-repo"]["responses"][200]["content"]["application/json"];
type LabelsAdded = operations["actions/add-custom-labels-to-self-hosted-runner-for-repo"]["responses"][200]["content"]["application/json"];
type LabelsSet = operations["actions/set-custom-labels-for-self-hosted-runner-for-repo"]["responses"][200]["content"]["application/json"];
type LabelRemoved = operations["actions/remove-custom-label-from-self-hosted-runner-for-repo"]["responses"][200]["content"]["application/json"];
type LabelsRemoved = operations["actions/remove-all-custom-labels-from-self-hosted-runner-for-repo"]["responses"][200]["content"]["application/json"];
type OrgLabelList = operations["actions/list-labels-for-self-hosted-runner-for-org"]["responses"][200]["content"]["application/json"];
type ValidationError = Schemas["validation-error-simple"];
type WebhookRepository = Schemas["repository-webhooks"];

/** The `workflow_job` deliveries lab-reset reads, as GitHub's webhook schemas type them. */
export type WorkflowJobEvent =
  | Schemas["webhook-workflow-job-queued"]
  | Schemas["webhook-workflow-job-in-progress"]
  | Schemas["webhook-workflow-job-completed"];
export type WorkflowJobAction = WorkflowJobEvent["action"];

export type JobStatus = Job["status"];
/** GitHub's run statuses are the job statuses (the run schema only says `string`). */
export type RunStatus = JobStatus;

export interface StandinOptions {
  token?: string;
  owner?: string;
  repo?: string;
  /** Behave like GitHub Enterprise Server ≤ 3.20: reject `return_run_details` on dispatches. */
  ghes?: boolean;
  /** Source of timestamps; the lab simulator passes its simulated clock. */
  clock?: () => Date;
  /** Seconds (on `clock`) before a label edit reaches job assignment (`assignableLabels`); default 0. */
  labelEffectDelaySeconds?: number;
}

export type LabelOperation = "list" | "add" | "set" | "remove" | "remove-all";

/** One call to a runner's labels endpoints, as recorded in `labelCalls`. */
export interface LabelCall {
  operation: LabelOperation;
  scope: "repo" | "org";
  runnerId: number;
  /** Null when no runner has that id. */
  runnerName: string | null;
  /** The labels the call names: the body's for add and set, the path's for remove. */
  labels: string[];
  /** Status answered; 0 until answered. */
  status: number;
}

/** A host of a reset dispatch's `hosts` input. */
export interface ResetHost {
  runnerLabel: string;
  vmName: string;
}

/** The jobs of infra/github/lab-reset.yml, named as its matrix names them. */
export const labResetJobs = {
  check: (host: ResetHost) => `Check ${host.vmName} (${host.runnerLabel})`,
  restore: (host: ResetHost) => `Reset ${host.vmName} (${host.runnerLabel})`,
  report: "Tell lab-reset the reset ended",
};

/** A GitHub-hosted runner's name as jobs report it; it is in no runner list of the repository. */
export const hostedRunnerName = (n: number) => `GitHub Actions ${n}`;

export interface RecordedRequest {
  method: string;
  /** Pathname without the `/api/v3` prefix. */
  path: string;
  query: Record<string, string>;
  /** Parsed JSON body, or undefined when there was none (or it was malformed). */
  body: unknown;
  /** Status answered; 0 while unanswered (e.g. a hung request). */
  status: number;
}

export interface RunnerSpec {
  name: string;
  /** Custom labels, e.g. ["lab", "os-windows-2022", "vm-25-26"]. */
  labels: string[];
  status?: "online" | "offline";
  busy?: boolean;
  /** The OS label GitHub sets: "Windows" (default), "Linux" or "macOS". */
  os?: string;
  /** The architecture label GitHub sets: "X64" (default) or "ARM64". */
  arch?: string;
}

export interface JobSpec {
  name?: string;
  /** Defaults to the run's status (and conclusion), so a completed run gets completed jobs. */
  status?: JobStatus;
  conclusion?: string | null;
  runnerName?: string | null;
  /** The runs-on labels; default ["self-hosted", "lab"]. */
  labels?: string[];
}

export interface RunSpec {
  name?: string;
  workflowPath?: string;
  event?: string;
  /** head_branch; default "main". */
  branch?: string;
  status?: RunStatus;
  conclusion?: string | null;
  displayTitle?: string;
  runAttempt?: number;
  createdAt?: string;
  jobs?: JobSpec[];
}

export interface DispatchRecord {
  workflow: string;
  ref: string;
  inputs: Record<string, unknown>;
  returnRunDetails: boolean;
  /** The run created, or null if the dispatch was rejected. */
  runId: number | null;
}

export interface FaultSpec {
  status: number;
  body?: unknown;
  /** Sent verbatim instead of a JSON body (e.g. a proxy's HTML error page). */
  raw?: string;
  headers?: Record<string, string>;
}

interface RequestMatch {
  method?: string;
  path: string | RegExp;
}

interface Interceptor extends RequestMatch {
  remaining: number;
  answer: FaultSpec | "hang";
}

/** One request in flight: what the handlers need to answer it. */
interface Exchange {
  req: IncomingMessage;
  res: ServerResponse;
  url: URL;
  record: RecordedRequest;
  rateLimitHeaders: OutgoingHttpHeaders;
}

interface StoredRun {
  run: WorkflowRun;
  status: RunStatus;
  jobs: Job[];
}

const API_PREFIX = "/api/v3";
const ACCESS_TOKENS_PATH = /^\/app\/installations\/(\d+)\/access_tokens$/;
const DELIVERIES_PATH = /^\/app\/hook\/deliveries(?:\/(\d+)\/attempts)?$/;
const DOCS = "https://docs.github.com/rest";
const DISPATCH_DOCS = "https://docs.github.com/rest/actions/workflows#create-a-workflow-dispatch-event";
const RATE_LIMIT = 5000;
const MAX_DISPATCH_INPUTS = 25;
const DEFAULT_WORKFLOW_PATH = ".github/workflows/perf.yml";
const DEFAULT_JOB_LABELS = ["self-hosted", "lab"];
const HEAD_SHA = "8d5f3c2a9b1e4f6a7c0d2e3f4a5b6c7d8e9f0a1b";
const FIRST_RUN_ID = 1000;
const FIRST_JOB_ID = 50_000;
const FIRST_WORKFLOW_ID = 160_000;
const RUNNER_GROUP = { id: 1, name: "Default" };
const HOSTED_RUNNER_GROUP = { id: 2, name: "GitHub Actions" };
const INSTALLATION_ID = 58_021_447;
const LABELS_DOCS = "https://docs.github.com/rest/actions/self-hosted-runners";
/** Labels GitHub sets itself and nobody can add or remove: `self-hosted`, the OS and the architecture. */
const READ_ONLY_LABELS = new Set(["self-hosted", "windows", "linux", "macos", "x64", "arm64", "arm"]);

const RUN_STATUSES = ["queued", "in_progress", "completed", "waiting", "requested", "pending"] as const satisfies readonly RunStatus[];
const JOB_CONCLUSIONS = [
  "success",
  "failure",
  "neutral",
  "cancelled",
  "skipped",
  "timed_out",
  "action_required",
] as const satisfies readonly NonNullable<JobConclusion>[];

export class GitHubStandin {
  readonly token: string;
  readonly owner: string;
  readonly repo: string;
  readonly requests: RecordedRequest[] = [];
  readonly dispatches: DispatchRecord[] = [];
  /** Called on each accepted dispatch, after the run was created and the answer sent. */
  onDispatch?: (dispatch: DispatchRecord, run: WorkflowRun) => void;
  /** Asked for every authorized request: a fault to answer instead (the simulator's random faults). */
  injectFault?: (method: string, path: string) => FaultSpec | undefined;
  /** Awaited before every request is answered: a test changes the world between a request and its answer. */
  onRequest?: (method: string, path: string) => void | Promise<void>;
  /** Every call to a runner's labels endpoints, answered or not. */
  readonly labelCalls: LabelCall[] = [];
  /** True: answer the label call 403, as GitHub does to an App without runner write permission. */
  denyLabelCall?: (call: LabelCall) => boolean;
  /** Seconds before a label edit reaches job assignment; the REST answers show it at once. */
  labelEffectDelaySeconds: number;
  /** Called after each accepted label edit with the time it reaches assignment (the simulator assigns then). */
  onLabelsEdited?: (runnerName: string, effectiveAt: Date) => void;

  private readonly ghes: boolean;
  private readonly clock: () => Date;
  private readonly runners = new Map<string, Runner>();
  private readonly labelIds = new Map<string, number>();
  /** Per runner name: the label names job assignment uses, and edits still on their way to it. */
  private readonly assignment = new Map<string, { labels: string[]; pending: { at: number; labels: string[] }[] }>();
  private readonly runStore = new Map<number, StoredRun>();
  private readonly jobIndex = new Map<number, { job: Job; stored: StoredRun }>();
  private readonly workflowIds = new Map<string, number>();
  private readonly interceptors: Interceptor[] = [];
  private nextRunnerId = 1;
  private nextRunId = FIRST_RUN_ID;
  private nextJobId = FIRST_JOB_ID;
  private requestCount = 0;
  private readonly rateLimitReset = Math.floor(Date.now() / 1000) + 3600;
  private readonly repository: MinimalRepository;
  private readonly actor: SimpleUser;

  private constructor(
    private readonly server: Server,
    readonly url: string,
    options: StandinOptions,
  ) {
    this.token = options.token ?? "test-token";
    this.owner = options.owner ?? "microsoft";
    this.repo = options.repo ?? "netperf";
    this.ghes = options.ghes ?? false;
    this.clock = options.clock ?? (() => new Date());
    this.labelEffectDelaySeconds = options.labelEffectDelaySeconds ?? 0;
    this.actor = simpleUser(url, "lab-reset[bot]", 41898282, "Bot");
    this.repository = minimalRepository(url, simpleUser(url, this.owner, 6154722, "Organization"), this.repo);
    server.on("request", (req: IncomingMessage, res: ServerResponse) => {
      this.handle(req, res).catch((error: unknown) => {
        // Before the answer: tell the client. After it (a throwing onDispatch): surface it to the test run.
        if (res.headersSent) throw error;
        res.writeHead(500, { "content-type": "application/json; charset=utf-8" });
        res.end(JSON.stringify({ message: `stand-in error: ${String(error)}` } satisfies BasicError));
      });
    });
  }

  static async start(options: StandinOptions = {}): Promise<GitHubStandin> {
    const server = createServer();
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(0, "127.0.0.1", () => resolve());
    });
    const address = server.address();
    if (address === null || typeof address === "string") throw new Error("stand-in did not get a TCP port");
    return new GitHubStandin(server, `http://127.0.0.1:${address.port}`, options);
  }

  private timestamp(): string {
    return timestamp(this.clock());
  }

  clearRequests(): void {
    this.requests.length = 0;
  }

  addRunner(spec: RunnerSpec): Runner {
    if (this.runners.has(spec.name)) throw new Error(`runner ${spec.name} already exists`);
    const os = spec.os ?? "Windows";
    if (spec.labels.some(isReadOnlyLabel)) throw new Error(`runner ${spec.name}: read-only labels are GitHub's own, not custom ones`);
    const runner: Runner = {
      id: this.nextRunnerId++,
      runner_group_id: RUNNER_GROUP.id,
      name: spec.name,
      os,
      status: spec.status ?? "online",
      busy: spec.busy ?? false,
      labels: [
        this.label("self-hosted", "read-only"),
        this.label(os, "read-only"),
        this.label(spec.arch ?? "X64", "read-only"),
        ...uniqueNames(spec.labels).map((name) => this.label(name, "custom")),
      ],
      ephemeral: false,
      version: "2.330.0",
    };
    this.runners.set(spec.name, runner);
    this.assignment.set(spec.name, { labels: runner.labels.map((l) => l.name), pending: [] });
    return structuredClone(runner);
  }

  setRunner(name: string, patch: { status?: "online" | "offline"; busy?: boolean }): void {
    const runner = this.runners.get(name);
    if (runner === undefined) throw new Error(`unknown runner ${name}`);
    if (patch.status !== undefined) runner.status = patch.status;
    if (patch.busy !== undefined) runner.busy = patch.busy;
  }

  /** A snapshot of one runner, as GitHub would list it. */
  getRunner(name: string): Runner | undefined {
    const runner = this.runners.get(name);
    return runner === undefined ? undefined : structuredClone(runner);
  }

  removeRunner(name: string): void {
    if (!this.runners.delete(name)) throw new Error(`unknown runner ${name}`);
    this.assignment.delete(name);
  }

  /**
   * The runner's label names as GitHub's job assignment sees them now: an edit counts from
   * `labelEffectDelaySeconds` after it was made. Undefined for an unknown runner.
   */
  assignableLabels(name: string): readonly string[] | undefined {
    const entry = this.assignment.get(name);
    if (entry === undefined) return undefined;
    const now = this.clock().getTime();
    while (entry.pending[0] !== undefined && entry.pending[0].at <= now) entry.labels = entry.pending.shift()!.labels;
    return entry.labels;
  }

  addRun(spec: RunSpec): WorkflowRun {
    const status = spec.status ?? "in_progress";
    const conclusion = settle(status, spec.conclusion);
    const id = this.nextRunId++;
    const now = this.timestamp();
    const createdAt = spec.createdAt ?? now;
    const path = spec.workflowPath ?? DEFAULT_WORKFLOW_PATH;
    const workflowId = this.workflowId(path);
    const name = spec.name ?? fileName(path).replace(/\.ya?ml$/, "");
    const runNumber = [...this.runStore.values()].filter((s) => s.run.workflow_id === workflowId).length + 1;
    const api = `${this.url}/repos/${this.owner}/${this.repo}`;
    const run: WorkflowRun = {
      id,
      name,
      node_id: `WFR_standin${id}`,
      check_suite_id: id + 900_000,
      check_suite_node_id: `CS_standin${id}`,
      head_branch: spec.branch ?? "main",
      head_sha: HEAD_SHA,
      path,
      display_title: spec.displayTitle ?? name,
      run_number: runNumber,
      run_attempt: spec.runAttempt ?? 1,
      referenced_workflows: [],
      event: spec.event ?? "push",
      status,
      conclusion,
      workflow_id: workflowId,
      url: `${api}/actions/runs/${id}`,
      html_url: `https://github.com/${this.owner}/${this.repo}/actions/runs/${id}`,
      pull_requests: [],
      created_at: createdAt,
      updated_at: now,
      actor: this.actor,
      triggering_actor: this.actor,
      run_started_at: createdAt,
      jobs_url: `${api}/actions/runs/${id}/jobs`,
      logs_url: `${api}/actions/runs/${id}/logs`,
      check_suite_url: `${api}/check-suites/${id + 900_000}`,
      artifacts_url: `${api}/actions/runs/${id}/artifacts`,
      cancel_url: `${api}/actions/runs/${id}/cancel`,
      rerun_url: `${api}/actions/runs/${id}/rerun`,
      previous_attempt_url: null,
      workflow_url: `${api}/actions/workflows/${workflowId}`,
      head_commit: {
        id: HEAD_SHA,
        tree_id: "4b825dc642cb6eb9a060e54bf8d69288fbee4904",
        message: "Update perf baselines",
        timestamp: createdAt,
        author: { name: "Lab Admin", email: "lab-admin@example.com" },
        committer: { name: "GitHub", email: "noreply@github.com" },
      },
      repository: this.repository,
      head_repository: this.repository,
      head_repository_id: Number(this.repository.id),
    };
    const stored: StoredRun = { run, status, jobs: [] };
    this.runStore.set(id, stored);
    for (const [index, jobSpec] of (spec.jobs ?? []).entries()) {
      const job = this.newJob(stored, jobSpec, `job ${index + 1}`);
      stored.jobs.push(job);
      this.jobIndex.set(Number(job.id), { job, stored });
    }
    return structuredClone(run);
  }

  setRun(id: number, patch: { status?: RunStatus; conclusion?: string | null }): void {
    const stored = this.runStore.get(id);
    if (stored === undefined) throw new Error(`unknown run ${id}`);
    const now = this.timestamp();
    const status = patch.status ?? stored.status;
    const conclusion = settle(
      status,
      patch.conclusion !== undefined ? patch.conclusion : status === "completed" ? stored.run.conclusion : null,
    );
    // Validated before any change, so a bad patch leaves the run as it was.
    const jobConclusion = toJobConclusion(conclusion);
    stored.status = status;
    stored.run.status = status;
    stored.run.conclusion = conclusion;
    stored.run.updated_at = now;
    if (status !== "completed") return;
    // GitHub never reports a completed run with unfinished jobs.
    for (const job of stored.jobs.filter((j) => j.status !== "completed")) {
      job.status = "completed";
      job.conclusion = jobConclusion;
      job.completed_at = now;
    }
  }

  setJob(id: number, patch: { status?: JobStatus; conclusion?: string | null; runnerName?: string | null }): void {
    const entry = this.jobIndex.get(id);
    if (entry === undefined) throw new Error(`unknown job ${id}`);
    const { job, stored } = entry;
    const now = this.timestamp();
    const status = patch.status ?? job.status;
    const conclusion = toJobConclusion(
      settle(status, patch.conclusion !== undefined ? patch.conclusion : status === "completed" ? job.conclusion : null),
    );
    if (status === "in_progress" && job.status !== "in_progress") job.started_at = now;
    if (status === "completed" && job.status !== "completed") job.completed_at = now;
    if (status !== "completed") job.completed_at = null;
    job.status = status;
    job.conclusion = conclusion;
    if (patch.runnerName !== undefined) Object.assign(job, this.runnerFields(patch.runnerName));
    stored.run.updated_at = now;
  }

  /** Snapshots of a run's jobs. */
  jobsOf(runId: number): Job[] {
    return structuredClone(this.runStore.get(runId)?.jobs ?? []);
  }

  /** Jobs GitHub creates in a running run once their `needs` are met (a later step of the workflow). */
  addJobs(runId: number, specs: JobSpec[]): Job[] {
    const stored = this.runStore.get(runId);
    if (stored === undefined) throw new Error(`unknown run ${runId}`);
    const jobs = specs.map((spec, index) => this.newJob(stored, spec, `job ${stored.jobs.length + index + 1}`));
    for (const job of jobs) {
      stored.jobs.push(job);
      this.jobIndex.set(Number(job.id), { job, stored });
    }
    stored.run.updated_at = this.timestamp();
    return structuredClone(jobs);
  }

  /** The hosts of the reset dispatch that created the run; undefined for a run no dispatch created. */
  dispatchedHosts(runId: number): ResetHost[] | undefined {
    const dispatch = this.dispatches.find((d) => d.runId === runId);
    return dispatch === undefined ? undefined : resetHosts(dispatch.inputs.hosts);
  }

  /** The `workflow_job` delivery GitHub sends for the job's `action`, with the job as it is now. */
  workflowJobEvent(jobId: number, action: WorkflowJobAction): WorkflowJobEvent {
    const entry = this.jobIndex.get(jobId);
    if (entry === undefined) throw new Error(`unknown job ${jobId}`);
    const { job } = entry;
    const fields = {
      id: Number(job.id),
      run_id: Number(job.run_id),
      run_url: job.run_url,
      run_attempt: job.run_attempt ?? 1,
      node_id: job.node_id,
      head_sha: job.head_sha,
      head_branch: job.head_branch,
      url: job.url,
      html_url: job.html_url ?? "",
      check_run_url: job.check_run_url,
      name: job.name,
      labels: [...job.labels],
      workflow_name: job.workflow_name,
      created_at: job.created_at,
      started_at: job.started_at,
      completed_at: job.completed_at ?? null,
      steps: [],
      ...(action === "queued" ? this.runnerFields(null) : this.runnerFields(job.runner_name)),
    };
    const envelope = { repository: this.webhookRepository(), sender: this.actor, installation: { id: INSTALLATION_ID, node_id: `MDIzOkludGVncmF0aW9uSW5zdGFsbGF0aW9u${INSTALLATION_ID}` } };
    if (action === "queued") {
      return { action, workflow_job: { ...fields, status: "queued", conclusion: null, completed_at: null }, ...envelope } satisfies Schemas["webhook-workflow-job-queued"];
    }
    if (action === "in_progress") {
      return { action, workflow_job: { ...fields, status: "in_progress", conclusion: null, completed_at: null }, ...envelope } satisfies Schemas["webhook-workflow-job-in-progress"];
    }
    const conclusion = job.conclusion ?? "success";
    return { action, workflow_job: { ...fields, status: "completed", conclusion, completed_at: job.completed_at ?? this.timestamp() }, ...envelope } satisfies Schemas["webhook-workflow-job-completed"];
  }

  getRun(id: number): WorkflowRun | undefined {
    const stored = this.runStore.get(id);
    return stored === undefined ? undefined : structuredClone(stored.run);
  }

  /** Snapshots of all runs, newest first (as GitHub lists them). */
  runs(): WorkflowRun[] {
    return this.newestFirst().map((s) => structuredClone(s.run));
  }

  /** The next `times` requests matching get `fault` instead of the real answer (after auth, before routing). */
  fail(match: RequestMatch, fault: FaultSpec, times = 1): void {
    this.interceptors.push({ ...match, remaining: times, answer: fault });
  }

  /** The next `times` matching requests never get an answer; their sockets stay open until close(). */
  hang(match: RequestMatch, times = 1): void {
    this.interceptors.push({ ...match, remaining: times, answer: "hang" });
  }

  async close(): Promise<void> {
    // Also ends hung and keep-alive connections, which server.close() alone would wait for.
    this.server.closeAllConnections();
    await new Promise<void>((resolve, reject) => this.server.close((error) => (error ? reject(error) : resolve())));
  }

  // ---- GitHub App authentication: installation tokens minted for an RS256 JWT signed with the App's key ----

  private appAuth?: { appId: string; installationId: number; publicKey: KeyObject; tokens: Set<string>; minted: number };

  /** Accept a GitHub App: POST /app/installations/{id}/access_tokens checks the App JWT and mints a token the other routes accept. */
  enableAppAuth(options: { appId: string; installationId: number; publicKeyPem: string }): void {
    this.appAuth = { appId: options.appId, installationId: options.installationId, publicKey: createPublicKey(options.publicKeyPem), tokens: new Set(), minted: 0 };
  }

  /** Installation tokens minted so far. */
  get appTokensMinted(): number {
    return this.appAuth?.minted ?? 0;
  }

  private answerAccessTokens(ex: Exchange, method: string, path: string): void {
    const app = this.appAuth!;
    const problem = method !== "POST" ? "Not Found" : this.appJwtProblem(ex.req.headers.authorization, app);
    if (problem !== undefined) {
      return this.send(ex, problem === "Not Found" ? 404 : 401, { message: problem, documentation_url: DOCS, status: problem === "Not Found" ? "404" : "401" } satisfies BasicError);
    }
    if (Number(ACCESS_TOKENS_PATH.exec(path)?.[1]) !== app.installationId) return this.notFound(ex);
    const token = `ghs_${randomBytes(18).toString("base64url")}`;
    app.tokens.add(token);
    app.minted++;
    this.send(ex, 201, {
      token,
      // On the wall clock, as the JWT: Octokit signs JWTs and caches tokens by the machine's clock, not a simulated lab's.
      expires_at: new Date(Date.now() + 3600_000).toISOString().replace(/\.\d{3}Z$/, "Z"),
      permissions: { actions: "write", administration: "read" },
      repository_selection: "selected",
    } satisfies Schemas["installation-token"]);
  }

  /** GitHub's checks of an App JWT: RS256, signed by the App's key, issued by the App, at most 10 minutes long. */
  private appJwtProblem(header: string | undefined, app: NonNullable<GitHubStandin["appAuth"]>): string | undefined {
    const jwt = /^bearer\s+([\w-]+)\.([\w-]+)\.([\w-]+)$/i.exec(header ?? "");
    if (jwt === null) return "A JSON web token could not be decoded";
    const [, head, body, signature] = jwt as unknown as [string, string, string, string];
    let claims: { alg?: unknown; iss?: unknown; iat?: unknown; exp?: unknown };
    try {
      claims = { ...(JSON.parse(Buffer.from(head, "base64url").toString()) as object), ...(JSON.parse(Buffer.from(body, "base64url").toString()) as object) };
    } catch {
      return "A JSON web token could not be decoded";
    }
    if (claims.alg !== "RS256" || !verifySignature("RSA-SHA256", Buffer.from(`${head}.${body}`), app.publicKey, Buffer.from(signature, "base64url"))) {
      return "A JSON web token could not be decoded";
    }
    // The signer's clock is the machine's (Octokit's auth-app), whatever clock the simulated lab runs on.
    const now = Math.floor(Date.now() / 1000);
    if (String(claims.iss) !== app.appId) return "'Issuer' claim ('iss') must be an Integer";
    if (typeof claims.iat !== "number" || typeof claims.exp !== "number" || claims.iat > now + 60 || claims.exp <= now || claims.exp - claims.iat > 660) {
      return "'Expiration time' claim ('exp') is too far in the future";
    }
    return undefined;
  }

  // ---- The App's webhook: deliveries sent to its URL, and their log read and redelivered with the App JWT ----

  private deliveryLog?: WebhookDeliveryLog;

  /** Send `workflow_job` deliveries to the App's webhook URL, signed with its secret (see deliverJob). */
  enableWebhook(target: { url: string; secret: string }): void {
    this.deliveryLog = new WebhookDeliveryLog(target, () => this.clock(), INSTALLATION_ID, Number(this.webhookRepository().id));
  }

  /** Delivers the job's `action` to the webhook URL as GitHub would; resolves with the logged attempt. */
  deliverJob(jobId: number, action: WorkflowJobAction): Promise<HookDeliveryItem> {
    if (this.deliveryLog === undefined) throw new Error("enableWebhook first");
    return this.deliveryLog.deliver("workflow_job", this.workflowJobEvent(jobId, action));
  }

  /** The webhook's log of delivery attempts (redeliveries included), oldest first. */
  get webhookDeliveries(): HookDeliveryItem[] {
    return this.deliveryLog?.items ?? [];
  }

  /** Resolves once every delivery and redelivery under way has been answered. */
  deliveriesSettled(): Promise<void> {
    return this.deliveryLog?.settled() ?? Promise.resolve();
  }

  private answerDeliveries(ex: Exchange, method: string, path: string): void {
    // These routes take only the App's JWT; an installation token or a PAT cannot be decoded as one.
    const problem = this.appAuth === undefined ? "A JSON web token could not be decoded" : this.appJwtProblem(ex.req.headers.authorization, this.appAuth);
    if (problem !== undefined) return this.send(ex, 401, { message: problem, documentation_url: DOCS, status: "401" } satisfies BasicError);
    // Faults as for any route, once the caller is known to be the App.
    const intercepted = this.intercept(method, path) ?? this.injectFault?.(method, path);
    if (intercepted === "hang") return;
    if (intercepted !== undefined) return this.sendFault(ex, intercepted);
    const attempt = DELIVERIES_PATH.exec(path)?.[1];
    const log = this.deliveryLog;
    if (attempt === undefined && method === "GET") {
      const perPage = Number(ex.url.searchParams.get("per_page") ?? 30);
      const page = log?.page(perPage, ex.url.searchParams.get("cursor")) ?? { items: [], next: null };
      const next = new URL(ex.url.href);
      if (page.next !== null) next.searchParams.set("cursor", page.next);
      return this.send(ex, 200, page.items, page.next === null ? {} : { link: `<${next.href}>; rel="next"` });
    }
    if (attempt !== undefined && method === "POST") {
      if (log === undefined || !log.redeliver(Number(attempt))) return this.notFound(ex);
      return this.send(ex, 202, {});
    }
    return this.notFound(ex);
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? "/", this.url);
    const prefixed = url.pathname === API_PREFIX || url.pathname.startsWith(`${API_PREFIX}/`);
    const path = prefixed ? url.pathname.slice(API_PREFIX.length) || "/" : url.pathname;
    const text = await readBody(req);
    let body: unknown;
    let malformed = false;
    if (text.trim() !== "") {
      try {
        body = JSON.parse(text);
      } catch {
        malformed = true;
      }
    }
    const method = (req.method ?? "GET").toUpperCase();
    const record: RecordedRequest = { method, path, query: Object.fromEntries(url.searchParams), body, status: 0 };
    this.requests.push(record);
    this.requestCount++;
    const ex: Exchange = {
      req,
      res,
      url,
      record,
      rateLimitHeaders: {
        "x-ratelimit-limit": String(RATE_LIMIT),
        "x-ratelimit-remaining": String(Math.max(0, RATE_LIMIT - this.requestCount)),
        "x-ratelimit-reset": String(this.rateLimitReset),
        "x-ratelimit-used": String(Math.min(RATE_LIMIT, this.requestCount)),
        "x-ratelimit-resource": "core",
        "x-github-request-id": `5A4D:${this.requestCount.toString(16).toUpperCase().padStart(6, "0")}:STANDIN`,
      },
    };

    await this.onRequest?.(method, path);
    if (this.appAuth !== undefined && ACCESS_TOKENS_PATH.test(path)) return this.answerAccessTokens(ex, method, path);
    if (DELIVERIES_PATH.test(path)) return this.answerDeliveries(ex, method, path);
    if (!this.authorized(req.headers.authorization)) {
      return this.send(ex, 401, { message: "Bad credentials", documentation_url: DOCS, status: "401" } satisfies BasicError);
    }
    const intercepted = this.intercept(method, path) ?? this.injectFault?.(method, path);
    if (intercepted === "hang") return;
    if (intercepted !== undefined) return this.sendFault(ex, intercepted);
    if (malformed) {
      return this.send(ex, 400, { message: "Problems parsing JSON", documentation_url: DOCS, status: "400" } satisfies BasicError);
    }
    this.route(ex, method, path);
  }

  private authorized(header: string | undefined): boolean {
    const match = /^(?:token|bearer)\s+(\S+)$/i.exec(header ?? "");
    return match?.[1] === this.token || (match?.[1] !== undefined && this.appAuth?.tokens.has(match[1]) === true);
  }

  private intercept(method: string, path: string): FaultSpec | "hang" | undefined {
    const interceptor = this.interceptors.find(
      (i) =>
        i.remaining > 0 &&
        (i.method === undefined || i.method.toUpperCase() === method) &&
        (typeof i.path === "string" ? i.path === path : i.path.test(path)),
    );
    if (interceptor === undefined) return undefined;
    interceptor.remaining--;
    return interceptor.answer;
  }

  private route(ex: Exchange, method: string, path: string): void {
    const org = /^\/orgs\/([^/]+)(\/actions\/runners.*)$/.exec(path);
    if (org !== null && sameName(decode(org[1]), this.owner)) {
      if (org[2] === "/actions/runners" && method === "GET") return this.listRunners(ex);
      if (this.routeLabels(ex, "org", method, org[2] ?? "")) return;
      return this.notFound(ex);
    }
    const scoped = /^\/repos\/([^/]+)\/([^/]+)(\/.*)$/.exec(path);
    if (scoped === null || !sameName(decode(scoped[1]), this.owner) || !sameName(decode(scoped[2]), this.repo)) {
      return this.notFound(ex);
    }
    // Routes below /repos/{owner}/{repo}; the handler gets the pattern's captures.
    const routes: [string, RegExp, (p: string[]) => void][] = [
      ["GET", /^\/actions\/runners$/, () => this.listRunners(ex)],
      ["GET", /^\/actions\/runners\/(\d+)$/, ([id]) => this.answerRunner(ex, Number(id))],
      ["GET", /^\/actions\/runs$/, () => this.listRuns(ex, () => true)],
      ["GET", /^\/actions\/workflows\/([^/]+)\/runs$/, ([workflow]) => this.listWorkflowRuns(ex, decode(workflow))],
      ["GET", /^\/actions\/runs\/(\d+)$/, ([id]) => this.answerRun(ex, Number(id))],
      ["GET", /^\/actions\/runs\/(\d+)\/jobs$/, ([id]) => this.listJobs(ex, Number(id), undefined)],
      ["GET", /^\/actions\/runs\/(\d+)\/attempts\/(\d+)\/jobs$/, ([id, n]) => this.listJobs(ex, Number(id), Number(n))],
      ["GET", /^\/actions\/jobs\/(\d+)$/, ([id]) => this.answerJob(ex, Number(id))],
      ["POST", /^\/actions\/workflows\/([^/]+)\/dispatches$/, ([workflow]) => this.dispatch(ex, decode(workflow))],
      ["POST", /^\/actions\/runs\/(\d+)\/cancel$/, ([id]) => this.cancel(ex, Number(id))],
    ];
    const rest = scoped[3] ?? "";
    for (const [routeMethod, pattern, handler] of routes) {
      const match = pattern.exec(rest);
      if (match !== null && routeMethod === method) return handler(match.slice(1));
    }
    if (this.routeLabels(ex, "repo", method, rest)) return;
    this.notFound(ex);
  }

  /** `…/actions/runners/{id}/labels[/{name}]` below a repository or an organisation; false when `rest` is another route. */
  private routeLabels(ex: Exchange, scope: LabelCall["scope"], method: string, rest: string): boolean {
    const match = /^\/actions\/runners\/(\d+)\/labels(?:\/([^/]+))?$/.exec(rest);
    if (match === null) return false;
    const name = match[2] === undefined ? undefined : decode(match[2]);
    const operations: Record<string, LabelOperation | undefined> =
      name === undefined ? { GET: "list", POST: "add", PUT: "set", DELETE: "remove-all" } : { DELETE: "remove" };
    const operation = operations[method];
    if (operation === undefined) return false;
    const runner = [...this.runners.values()].find((r) => r.id === Number(match[1]));
    const call: LabelCall = { operation, scope, runnerId: Number(match[1]), runnerName: runner?.name ?? null, labels: name !== undefined ? [name] : bodyLabels(ex.record.body), status: 0 };
    this.labelCalls.push(call);
    const answer = this.labelAnswer(ex, call, runner);
    call.status = answer.status;
    this.send(ex, answer.status, answer.body);
    if (answer.edited && runner !== undefined) this.labelsEdited(runner);
    return true;
  }

  /** GitHub's rules for label calls: permission, runner, body, read-only labels, then the edit. */
  private labelAnswer(ex: Exchange, call: LabelCall, runner: Runner | undefined): { status: number; body: unknown; edited?: boolean } {
    if (this.denyLabelCall?.(call) === true) {
      return { status: 403, body: { message: "Resource not accessible by integration", documentation_url: LABELS_DOCS, status: "403" } satisfies BasicError };
    }
    if (runner === undefined) return { status: 404, body: { message: "Not Found", documentation_url: LABELS_DOCS, status: "404" } satisfies BasicError };
    if (call.operation === "add" || call.operation === "set") {
      const problem = labelsBodyProblem(ex.record.body, call.operation);
      if (problem !== undefined) return { status: 422, body: { message: `Invalid request.\n\n${problem}`, documentation_url: LABELS_DOCS } satisfies ValidationError };
    }
    const readOnly = call.labels.filter(isReadOnlyLabel);
    if (readOnly.length > 0) {
      const errors = readOnly.map((name) => `'${name}' is a read-only label: GitHub sets it and it cannot be added or removed.`);
      return { status: 422, body: { message: "Validation Failed", documentation_url: LABELS_DOCS, errors } satisfies ValidationError };
    }
    const custom = runner.labels.filter((l) => l.type === "custom");
    const fixed = runner.labels.filter((l) => l.type !== "custom");
    switch (call.operation) {
      case "list":
        return { status: 200, body: labelList(runner.labels) satisfies LabelList satisfies OrgLabelList };
      case "add": {
        const added = uniqueNames(call.labels).filter((name) => !custom.some((l) => sameName(l.name, name)));
        runner.labels = [...runner.labels, ...added.map((name) => this.label(name, "custom"))];
        return { status: 200, body: labelList(runner.labels) satisfies LabelsAdded, edited: added.length > 0 };
      }
      case "set":
        runner.labels = [...fixed, ...uniqueNames(call.labels).map((name) => this.label(name, "custom"))];
        return { status: 200, body: labelList(runner.labels) satisfies LabelsSet, edited: true };
      case "remove-all":
        runner.labels = fixed;
        return { status: 200, body: labelList(runner.labels) satisfies LabelsRemoved, edited: custom.length > 0 };
      case "remove": {
        const name = call.labels[0] ?? "";
        if (!custom.some((l) => sameName(l.name, name))) return { status: 404, body: { message: "Not Found", documentation_url: LABELS_DOCS, status: "404" } satisfies BasicError };
        runner.labels = runner.labels.filter((l) => !(l.type === "custom" && sameName(l.name, name)));
        return { status: 200, body: labelList(runner.labels) satisfies LabelRemoved, edited: true };
      }
    }
  }

  /** The REST answers show an edit at once; assignment sees it `labelEffectDelaySeconds` later. */
  private labelsEdited(runner: Runner): void {
    const entry = this.assignment.get(runner.name);
    if (entry === undefined) return;
    const at = this.clock().getTime() + this.labelEffectDelaySeconds * 1000;
    entry.pending.push({ at, labels: runner.labels.map((l) => l.name) });
    this.onLabelsEdited?.(runner.name, new Date(at));
  }

  private listRunners(ex: Exchange): void {
    const name = ex.record.query.name;
    const runners = [...this.runners.values()].filter((r) => name === undefined || r.name === name);
    const { items, link } = this.paginate(ex, runners);
    this.send(ex, 200, { total_count: runners.length, runners: items } satisfies RunnerList, link);
  }

  private answerRunner(ex: Exchange, id: number): void {
    const runner = [...this.runners.values()].find((r) => r.id === id);
    if (runner === undefined) return this.notFound(ex);
    this.send(ex, 200, runner);
  }

  private listWorkflowRuns(ex: Exchange, workflow: string): void {
    const byId = /^\d+$/.test(workflow);
    this.listRuns(ex, (run) => (byId ? run.workflow_id === Number(workflow) : run.path.endsWith(`/${workflow}`)));
  }

  private listRuns(ex: Exchange, inWorkflow: (run: WorkflowRun) => boolean): void {
    const { status, event, created, branch } = ex.record.query;
    const runs = this.newestFirst()
      .map((s) => s.run)
      .filter(
        (run) =>
          inWorkflow(run) &&
          (status === undefined || (isRunStatus(status) ? run.status === status : run.conclusion === status)) &&
          (event === undefined || run.event === event) &&
          (branch === undefined || run.head_branch === branch) &&
          (created === undefined || matchesCreated(run.created_at, created)),
      );
    const { items, link } = this.paginate(ex, runs);
    this.send(ex, 200, { total_count: runs.length, workflow_runs: items } satisfies RunList, link);
  }

  private answerRun(ex: Exchange, id: number): void {
    const stored = this.runStore.get(id);
    if (stored === undefined) return this.notFound(ex);
    this.send(ex, 200, stored.run);
  }

  /** Jobs only exist for the run's current attempt, so `filter=latest` and `filter=all` agree. */
  private listJobs(ex: Exchange, runId: number, attempt: number | undefined): void {
    const stored = this.runStore.get(runId);
    if (stored === undefined) return this.notFound(ex);
    if (attempt !== undefined && (attempt < 1 || attempt > (stored.run.run_attempt ?? 1))) return this.notFound(ex);
    const jobs = stored.jobs.filter((job) => attempt === undefined || job.run_attempt === attempt);
    const { items, link } = this.paginate(ex, jobs);
    this.send(ex, 200, { total_count: jobs.length, jobs: items } satisfies JobList, link);
  }

  /** GitHub answers 202 and cancels the run's unfinished jobs; a finished run cannot be cancelled (409). */
  private cancel(ex: Exchange, id: number): void {
    const stored = this.runStore.get(id);
    if (stored === undefined) return this.notFound(ex);
    if (stored.status === "completed") {
      return this.send(ex, 409, { message: "Cannot cancel a workflow run that is completed.", documentation_url: DOCS, status: "409" } satisfies BasicError);
    }
    this.setRun(id, { status: "completed", conclusion: "cancelled" });
    this.send(ex, 202, {});
  }

  private answerJob(ex: Exchange, id: number): void {
    const entry = this.jobIndex.get(id);
    if (entry === undefined) return this.notFound(ex);
    this.send(ex, 200, entry.job);
  }

  private dispatch(ex: Exchange, workflow: string): void {
    const body: Record<string, unknown> = isObject(ex.record.body) ? ex.record.body : {};
    const record: DispatchRecord = {
      workflow,
      ref: typeof body.ref === "string" ? body.ref : "",
      inputs: isObject(body.inputs) ? body.inputs : {},
      returnRunDetails: body.return_run_details === true,
      runId: null,
    };
    this.dispatches.push(record);
    const path = this.dispatchedWorkflowPath(workflow);
    if (path === undefined) return this.notFound(ex);
    if (this.ghes && "return_run_details" in body) {
      const message = 'Invalid request.\n\n"return_run_details" is not a permitted key.';
      return this.send(ex, 400, { message, documentation_url: DISPATCH_DOCS, status: "400" } satisfies BasicError);
    }
    const problem = dispatchProblem(body);
    if (problem !== undefined) {
      return this.send(ex, 422, { message: `Invalid request.\n\n${problem}`, documentation_url: DISPATCH_DOCS, status: "422" } satisfies BasicError);
    }

    const title = ["Lab reset", record.inputs.pair, record.inputs.request_id].filter((part) => part !== undefined).map(String).join(" ");
    const run = this.addRun({
      workflowPath: path,
      event: "workflow_dispatch",
      branch: record.ref.replace(/^refs\/heads\//, ""),
      status: "queued",
      displayTitle: title,
      // lab-reset.yml's first step; its restore jobs are created once the checks pass (addJobs).
      jobs: resetHosts(record.inputs.hosts).map((host) => ({ name: labResetJobs.check(host), status: "queued", labels: ["self-hosted", host.runnerLabel], runnerName: null })),
    });
    record.runId = Number(run.id);
    if (record.returnRunDetails) {
      this.send(ex, 200, {
        workflow_run_id: run.id,
        run_url: run.url,
        html_url: run.html_url,
      } satisfies Schemas["workflow-dispatch-response"]);
    } else {
      this.send(ex, 204);
    }
    this.onDispatch?.(record, run);
  }

  /** `.github/workflows/{file}` for a file name; a numeric id must name a workflow that already ran. */
  private dispatchedWorkflowPath(workflow: string): string | undefined {
    if (!/^\d+$/.test(workflow)) return `.github/workflows/${workflow}`;
    return [...this.workflowIds].find(([, id]) => id === Number(workflow))?.[0];
  }

  private newJob(stored: StoredRun, spec: JobSpec, defaultName: string): Job {
    const { run } = stored;
    const id = this.nextJobId++;
    const status = spec.status ?? stored.status;
    const conclusion = spec.conclusion !== undefined ? spec.conclusion : status === stored.status ? run.conclusion : null;
    const api = `${this.url}/repos/${this.owner}/${this.repo}`;
    return {
      id,
      run_id: run.id,
      run_url: run.url,
      run_attempt: run.run_attempt ?? 1,
      node_id: `CR_standin${id}`,
      head_sha: run.head_sha,
      url: `${api}/actions/jobs/${id}`,
      html_url: `https://github.com/${this.owner}/${this.repo}/actions/runs/${String(run.id)}/job/${id}`,
      status,
      conclusion: toJobConclusion(settle(status, conclusion)),
      created_at: run.created_at,
      // GitHub fills started_at even for queued jobs (with the creation time).
      started_at: run.created_at,
      completed_at: status === "completed" ? this.timestamp() : null,
      name: spec.name ?? defaultName,
      steps: [],
      check_run_url: `${api}/check-runs/${id}`,
      labels: spec.labels ?? DEFAULT_JOB_LABELS,
      ...this.runnerFields(spec.runnerName ?? null),
      workflow_name: run.name ?? null,
      head_branch: run.head_branch,
    };
  }

  /** A job names its runner; the id comes from the current runner list (null once the runner is gone). */
  private runnerFields(runnerName: string | null): { runner_id: number | null; runner_name: string | null; runner_group_id: number | null; runner_group_name: string | null } {
    if (runnerName === null) return { runner_id: null, runner_name: null, runner_group_id: null, runner_group_name: null };
    const hosted = /^GitHub Actions (\d+)$/.exec(runnerName);
    if (hosted !== null && !this.runners.has(runnerName)) {
      return { runner_id: Number(hosted[1]), runner_name: runnerName, runner_group_id: HOSTED_RUNNER_GROUP.id, runner_group_name: HOSTED_RUNNER_GROUP.name };
    }
    return {
      runner_id: this.runners.get(runnerName)?.id ?? null,
      runner_name: runnerName,
      runner_group_id: RUNNER_GROUP.id,
      runner_group_name: RUNNER_GROUP.name,
    };
  }

  /** Like GitHub, one id per label name (labels are case-insensitive), shared by every runner carrying it. */
  private label(name: string, type: "read-only" | "custom"): RunnerLabel {
    let id = this.labelIds.get(name.toLowerCase());
    if (id === undefined) {
      id = this.labelIds.size + 1;
      this.labelIds.set(name.toLowerCase(), id);
    }
    return { id, name, type };
  }

  /** The repository as webhook payloads carry it (`repository-webhooks`, a superset of the REST one). */
  private webhookRepository(): WebhookRepository {
    const { url, html_url: htmlUrl, full_name: fullName } = this.repository;
    const created = "2020-06-19T01:12:33Z";
    return {
      ...repositoryFields(url, this.repository.owner, this.repo),
      git_url: `git://github.com/${fullName}.git`,
      ssh_url: `git@github.com:${fullName}.git`,
      clone_url: `${htmlUrl}.git`,
      svn_url: htmlUrl,
      mirror_url: null,
      homepage: null,
      language: "PowerShell",
      license: null,
      forks: 0,
      forks_count: 0,
      stargazers_count: 0,
      watchers: 0,
      watchers_count: 0,
      size: 0,
      default_branch: "main",
      open_issues: 0,
      open_issues_count: 0,
      has_issues: true,
      has_projects: false,
      has_wiki: false,
      has_pages: false,
      has_downloads: true,
      archived: false,
      disabled: false,
      visibility: "public",
      created_at: created,
      updated_at: created,
      pushed_at: created,
    };
  }

  private workflowId(path: string): number {
    let id = this.workflowIds.get(path);
    if (id === undefined) {
      id = FIRST_WORKFLOW_ID + this.workflowIds.size;
      this.workflowIds.set(path, id);
    }
    return id;
  }

  private newestFirst(): StoredRun[] {
    return [...this.runStore.entries()].sort(([a], [b]) => b - a).map(([, stored]) => stored);
  }

  /** GitHub's paging: per_page 30 by default, clamped to 100; a Link header whenever there is more than one page. */
  private paginate<T>(ex: Exchange, all: T[]): { items: T[]; link: OutgoingHttpHeaders } {
    const perPage = Math.min(100, Math.max(1, positiveInt(ex.record.query.per_page) ?? 30));
    const page = positiveInt(ex.record.query.page) ?? 1;
    const last = Math.max(1, Math.ceil(all.length / perPage));
    const pageUrl = (n: number): string => {
      const target = new URL(ex.url.pathname + ex.url.search, `http://${ex.req.headers.host ?? new URL(this.url).host}`);
      target.searchParams.set("page", String(n));
      return target.href;
    };
    const rels: [string, number][] = [];
    if (page > 1) rels.push(["prev", page - 1]);
    if (page < last) rels.push(["next", page + 1], ["last", last]);
    if (page > 1) rels.push(["first", 1]);
    const link = rels.length === 0 ? {} : { link: rels.map(([rel, n]) => `<${pageUrl(n)}>; rel="${rel}"`).join(", ") };
    return { items: all.slice((page - 1) * perPage, page * perPage), link };
  }

  private notFound(ex: Exchange): void {
    this.send(ex, 404, { message: "Not Found", documentation_url: DOCS, status: "404" } satisfies BasicError);
  }

  private sendFault(ex: Exchange, fault: FaultSpec): void {
    const noBody = fault.status === 204 || fault.status === 304;
    const payload = fault.raw ?? (noBody && fault.body === undefined ? undefined : JSON.stringify(fault.body ?? defaultError(fault.status)));
    this.write(ex, fault.status, payload, fault.headers ?? {});
  }

  private send(ex: Exchange, status: number, body?: unknown, headers: OutgoingHttpHeaders = {}): void {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    if (status === 200 && ex.record.method === "GET" && payload !== undefined) {
      // Like GitHub: every GET answer carries an ETag, and a matching If-None-Match gets 304 with no body.
      const etag = `W/"${createHash("sha1").update(payload).digest("hex")}"`;
      if (ex.req.headers["if-none-match"] === etag) return this.write(ex, 304, undefined, { ...headers, etag });
      return this.write(ex, status, payload, { ...headers, etag });
    }
    this.write(ex, status, payload, headers);
  }

  private write(ex: Exchange, status: number, payload: string | undefined, headers: OutgoingHttpHeaders): void {
    const { res } = ex;
    if (payload !== undefined) res.setHeader("content-type", "application/json; charset=utf-8");
    // setHeader is case-insensitive, so a fault's headers replace the defaults (e.g. x-ratelimit-remaining: 0).
    for (const [name, value] of Object.entries({ ...ex.rateLimitHeaders, ...headers })) {
      if (value !== undefined) res.setHeader(name, value);
    }
    ex.record.status = status;
    res.writeHead(status);
    res.end(payload);
  }
}

function simpleUser(api: string, login: string, id: number, type: "Bot" | "Organization"): SimpleUser {
  const url = `${api}/users/${encodeURIComponent(login)}`;
  return {
    login,
    id,
    node_id: `U_standin${id}`,
    avatar_url: `https://avatars.githubusercontent.com/u/${id}?v=4`,
    gravatar_id: "",
    url,
    html_url: `https://github.com/${encodeURIComponent(login)}`,
    followers_url: `${url}/followers`,
    following_url: `${url}/following{/other_user}`,
    gists_url: `${url}/gists{/gist_id}`,
    starred_url: `${url}/starred{/owner}{/repo}`,
    subscriptions_url: `${url}/subscriptions`,
    organizations_url: `${url}/orgs`,
    repos_url: `${url}/repos`,
    events_url: `${url}/events{/privacy}`,
    received_events_url: `${url}/received_events`,
    type,
    site_admin: false,
  };
}

function minimalRepository(api: string, owner: SimpleUser, name: string): MinimalRepository {
  return repositoryFields(`${api}/repos/${owner.login}/${name}`, owner, name);
}

/** The fields the REST and webhook shapes of a repository share. */
function repositoryFields(url: string, owner: SimpleUser, name: string) {
  const fullName = `${owner.login}/${name}`;
  return {
    id: 273_418_914,
    node_id: "R_standin273418914",
    name,
    full_name: fullName,
    owner,
    private: false,
    html_url: `https://github.com/${fullName}`,
    description: "Network performance lab",
    fork: false,
    url,
    archive_url: `${url}/{archive_format}{/ref}`,
    assignees_url: `${url}/assignees{/user}`,
    blobs_url: `${url}/git/blobs{/sha}`,
    branches_url: `${url}/branches{/branch}`,
    collaborators_url: `${url}/collaborators{/collaborator}`,
    comments_url: `${url}/comments{/number}`,
    commits_url: `${url}/commits{/sha}`,
    compare_url: `${url}/compare/{base}...{head}`,
    contents_url: `${url}/contents/{+path}`,
    contributors_url: `${url}/contributors`,
    deployments_url: `${url}/deployments`,
    downloads_url: `${url}/downloads`,
    events_url: `${url}/events`,
    forks_url: `${url}/forks`,
    git_commits_url: `${url}/git/commits{/sha}`,
    git_refs_url: `${url}/git/refs{/sha}`,
    git_tags_url: `${url}/git/tags{/sha}`,
    issue_comment_url: `${url}/issues/comments{/number}`,
    issue_events_url: `${url}/issues/events{/number}`,
    issues_url: `${url}/issues{/number}`,
    keys_url: `${url}/keys{/key_id}`,
    labels_url: `${url}/labels{/name}`,
    languages_url: `${url}/languages`,
    merges_url: `${url}/merges`,
    milestones_url: `${url}/milestones{/number}`,
    notifications_url: `${url}/notifications{?since,all,participating}`,
    pulls_url: `${url}/pulls{/number}`,
    releases_url: `${url}/releases{/id}`,
    stargazers_url: `${url}/stargazers`,
    statuses_url: `${url}/statuses/{sha}`,
    subscribers_url: `${url}/subscribers`,
    subscription_url: `${url}/subscription`,
    tags_url: `${url}/tags`,
    teams_url: `${url}/teams`,
    trees_url: `${url}/git/trees{/sha}`,
    hooks_url: `${url}/hooks`,
  };
}

/** GitHub's problems with a dispatch body, in the words of its 422 answers; undefined when valid. */
function dispatchProblem(body: Record<string, unknown>): string | undefined {
  if (typeof body.ref !== "string" || body.ref === "") return '"ref" wasn\'t supplied.';
  if (body.inputs === undefined) return undefined;
  if (!isObject(body.inputs)) return `For 'properties/inputs', ${JSON.stringify(body.inputs)} is not an object.`;
  const entries = Object.entries(body.inputs);
  if (entries.length > MAX_DISPATCH_INPUTS) {
    return `you may only define up to ${MAX_DISPATCH_INPUTS} \`inputs\` for a \`workflow_dispatch\` event (got ${entries.length}).`;
  }
  const bad = entries.find(([, value]) => !["string", "number", "boolean"].includes(typeof value));
  return bad === undefined ? undefined : `For 'properties/${bad[0]}', ${JSON.stringify(bad[1])} is not a string.`;
}

/** The reset workflow's `hosts` input: a JSON array of hosts, each with its runner label and VM. */
function resetHosts(hosts: unknown): ResetHost[] {
  if (typeof hosts !== "string") return [];
  let parsed: unknown;
  try {
    parsed = JSON.parse(hosts);
  } catch {
    return [];
  }
  if (!Array.isArray(parsed)) return [];
  return parsed.flatMap((host: unknown) =>
    isObject(host) && typeof host.runnerLabel === "string" ? [{ runnerLabel: host.runnerLabel, vmName: typeof host.vmName === "string" ? host.vmName : "VM" }] : [],
  );
}

/** A label call's `{ labels: [...] }` body, as far as it holds strings. */
function bodyLabels(body: unknown): string[] {
  return isObject(body) && Array.isArray(body.labels) ? body.labels.filter((l): l is string => typeof l === "string") : [];
}

/** GitHub's problems with an add or set body, in the words of its 422 answers; undefined when valid. */
function labelsBodyProblem(body: unknown, operation: "add" | "set"): string | undefined {
  if (!isObject(body) || !("labels" in body)) return "Invalid input: object is missing required key: labels.";
  const labels: unknown = body.labels;
  if (!Array.isArray(labels)) return `For 'properties/labels', ${JSON.stringify(labels)} is not an array.`;
  const bad = (labels as unknown[]).find((l) => typeof l !== "string" || l === "");
  if (bad !== undefined) return `For 'items', ${JSON.stringify(bad)} is not a non-empty string.`;
  // Adding nothing is refused; setting nothing removes every custom label.
  if (operation === "add" && labels.length === 0) return "For 'properties/labels', [] has fewer than 1 items.";
  return undefined;
}

function labelList(labels: RunnerLabel[]): { total_count: number; labels: RunnerLabel[] } {
  return { total_count: labels.length, labels };
}

function isReadOnlyLabel(name: string): boolean {
  return READ_ONLY_LABELS.has(name.toLowerCase());
}

/** Names once each, compared case-insensitively; the first spelling wins. */
function uniqueNames(names: string[]): string[] {
  return names.filter((name, i) => names.findIndex((other) => sameName(other, name)) === i);
}

/** A conclusion only exists once completed; completing without one means success. */
function settle(status: RunStatus, conclusion: string | null | undefined): string | null {
  if (status === "completed") return conclusion ?? "success";
  if (conclusion != null) throw new Error(`conclusion "${conclusion}" needs status "completed", not "${status}"`);
  return null;
}

function toJobConclusion(conclusion: string | null): JobConclusion {
  if (conclusion === null) return null;
  const known = JOB_CONCLUSIONS.find((c) => c === conclusion);
  if (known === undefined) throw new Error(`"${conclusion}" is not a job conclusion (${JOB_CONCLUSIONS.join(", ")})`);
  return known;
}

function isRunStatus(value: string): value is RunStatus {
  return RUN_STATUSES.some((s) => s === value);
}

/** `created` filter: >=, >, <=, < a date, a `from..to` range, or a prefix of the ISO timestamp. */
function matchesCreated(createdAt: string, filter: string): boolean {
  const at = Date.parse(createdAt);
  const range = /^(.+)\.\.(.+)$/.exec(filter);
  if (range !== null) return at >= Date.parse(range[1] ?? "") && at <= Date.parse(range[2] ?? "");
  const comparison = /^(>=|<=|>|<)(.+)$/.exec(filter);
  if (comparison === null) return createdAt.startsWith(filter);
  const bound = Date.parse(comparison[2] ?? "");
  switch (comparison[1]) {
    case ">=":
      return at >= bound;
    case "<=":
      return at <= bound;
    case ">":
      return at > bound;
    default:
      return at < bound;
  }
}

function defaultError(status: number): BasicError {
  return { message: STATUS_CODES[status] ?? "Error", documentation_url: DOCS, status: String(status) };
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function positiveInt(value: string | undefined): number | undefined {
  const n = Number(value);
  return value !== undefined && Number.isInteger(n) && n >= 1 ? n : undefined;
}

function sameName(a: string, b: string): boolean {
  return a.toLowerCase() === b.toLowerCase();
}

function decode(segment: string | undefined): string {
  return decodeURIComponent(segment ?? "");
}

function fileName(path: string): string {
  return path.slice(path.lastIndexOf("/") + 1);
}

/** GitHub's timestamps have whole seconds. */
function timestamp(at: Date): string {
  return at.toISOString().replace(/\.\d{3}Z$/, "Z");
}

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(String(chunk)));
  return Buffer.concat(chunks).toString("utf8");
}
