/**
 * GitHub's state and rules for the parts lab-reset uses, with no HTTP: runners and their labels
 * (and when a label edit reaches job assignment), busy flags, workflow runs and their jobs,
 * dispatches, cancels, label edits with GitHub's answers, and the `workflow_job` payloads GitHub
 * would send. Two fronts speak for it: the HTTP stand-in (github-standin.ts, for Octokit) and
 * ModelLabGitHub (model-github.ts, in process). The lab simulator drives it directly. Every shape
 * is typed with @octokit/openapi-types, so one that drifts from GitHub's fails to compile.
 */
import { createHash } from "node:crypto";
import { STATUS_CODES } from "node:http";
import type { components, operations } from "@octokit/openapi-types";

type Schemas = components["schemas"];
export type Runner = Schemas["runner"];
export type WorkflowRun = Schemas["workflow-run"];
export type Job = Schemas["job"];
type BasicError = Schemas["basic-error"];
type SimpleUser = Schemas["simple-user"];
type MinimalRepository = Schemas["minimal-repository"];
type JobConclusion = Job["conclusion"];
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

export interface GitHubModelOptions {
  owner?: string;
  repo?: string;
  /** Behave like GitHub Enterprise Server ≤ 3.20: reject `return_run_details` on dispatches. */
  ghes?: boolean;
  /** Source of timestamps; the lab simulator passes its simulated clock. */
  clock?: () => Date;
  /** Seconds (on `clock`) before a label edit reaches job assignment (`assignableLabels`); default 0. */
  labelEffectDelaySeconds?: number;
  /** Base of the API URLs answers carry (`url`, `jobs_url`…); the HTTP stand-in passes its own. */
  apiUrl?: string;
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

/** A request GitHub received, through either front. */
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

/** An answer in place of GitHub's: the simulator's random faults, a test's scripted ones. */
export interface FaultSpec {
  status: number;
  body?: unknown;
  /** Sent verbatim instead of a JSON body (e.g. a proxy's HTML error page). */
  raw?: string;
  headers?: Record<string, string>;
}

/** GitHub's answer to one call: its status and JSON body (none for 204). */
export interface Answer {
  status: number;
  body?: unknown;
}

/** A dispatch's answer; `created` once it created a run (announce it with `dispatched`). */
export interface DispatchAnswer extends Answer {
  created?: { record: DispatchRecord; run: WorkflowRun };
}

/** The filters of GitHub's run lists. */
export interface RunFilter {
  /** A workflow's file name or numeric id. */
  workflow?: string;
  /** A run status, or a conclusion. */
  status?: string;
  event?: string;
  branch?: string;
  /** `>=`, `>`, `<=`, `<` a date, a `from..to` range, or a prefix of the ISO timestamp. */
  created?: string;
}

interface StoredRun {
  run: WorkflowRun;
  status: RunStatus;
  jobs: Job[];
  /** Bumped by every change to the run or its jobs: an answer built from it is the same while this is. */
  version: number;
  /** `created_at` parsed once: the `created` filter reads it on every list. */
  createdMs: number;
}

export const DOCS = "https://docs.github.com/rest";
const DISPATCH_DOCS = "https://docs.github.com/rest/actions/workflows#create-a-workflow-dispatch-event";
const LABELS_DOCS = "https://docs.github.com/rest/actions/self-hosted-runners";
/** The core rate limit per hour, as GitHub's headers report it. */
export const RATE_LIMIT = 5000;
export const INSTALLATION_ID = 58_021_447;
const MAX_DISPATCH_INPUTS = 25;
const DEFAULT_WORKFLOW_PATH = ".github/workflows/perf.yml";
const DEFAULT_JOB_LABELS = ["self-hosted", "lab"];
const HEAD_SHA = "8d5f3c2a9b1e4f6a7c0d2e3f4a5b6c7d8e9f0a1b";
const FIRST_RUN_ID = 1000;
const FIRST_JOB_ID = 50_000;
const FIRST_WORKFLOW_ID = 160_000;
const RUNNER_GROUP = { id: 1, name: "Default" };
const HOSTED_RUNNER_GROUP = { id: 2, name: "GitHub Actions" };
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

export class GitHubModel {
  readonly owner: string;
  readonly repo: string;
  readonly apiUrl: string;
  readonly clock: () => Date;
  /** Every request either front received, in order of arrival (`clearRequests` empties it). */
  readonly requests: RecordedRequest[] = [];
  readonly dispatches: DispatchRecord[] = [];
  /** Every call to a runner's labels endpoints, answered or not. */
  readonly labelCalls: LabelCall[] = [];
  /** Called on each accepted dispatch, after the run was created and the answer sent. */
  onDispatch?: (dispatch: DispatchRecord, run: WorkflowRun) => void;
  /** Asked for every authorized request: a fault to answer instead (the simulator's random faults). */
  injectFault?: (method: string, path: string) => FaultSpec | undefined;
  /** True: answer the label call 403, as GitHub does to an App without runner write permission. */
  denyLabelCall?: (call: LabelCall) => boolean;
  /** Seconds before a label edit reaches job assignment; the REST answers show it at once. */
  labelEffectDelaySeconds: number;
  /** Called after each accepted label edit with the time it reaches assignment (the simulator assigns then). */
  onLabelsEdited?: (runnerName: string, effectiveAt: Date) => void;
  /** Called when a cancel completed a run's unfinished jobs (the simulator stops them). */
  onRunCancelled?: (runId: number) => void;
  readonly repository: MinimalRepository;
  readonly actor: SimpleUser;

  private readonly ghes: boolean;
  private readonly runners = new Map<string, Runner>();
  private readonly runnersById = new Map<number, Runner>();
  private readonly labelIds = new Map<string, number>();
  /** Per runner name: the label names job assignment uses, and edits still on their way to it. */
  private readonly assignment = new Map<string, { labels: string[]; pending: { at: number; labels: string[] }[] }>();
  /** In id order, which is creation order: newest first is the reverse. */
  private readonly runStore = new Map<number, StoredRun>();
  /** Runs not completed yet: what the in-progress and queued lists read. */
  private readonly unfinished = new Set<StoredRun>();
  private readonly jobIndex = new Map<number, { job: Job; stored: StoredRun }>();
  /** Per runner name, the job it runs now (in progress on it). */
  private readonly runningJobs = new Map<string, number>();
  private readonly workflowIds = new Map<string, number>();
  private readonly runCounts = new Map<number, number>();
  private runnersVersion = 0;
  private nextRunnerId = 1;
  private nextRunId = FIRST_RUN_ID;
  private nextJobId = FIRST_JOB_ID;
  private received = 0;

  constructor(options: GitHubModelOptions = {}) {
    this.owner = options.owner ?? "microsoft";
    this.repo = options.repo ?? "netperf";
    this.apiUrl = (options.apiUrl ?? "https://api.github.com").replace(/\/+$/, "");
    this.ghes = options.ghes ?? false;
    this.clock = options.clock ?? (() => new Date());
    this.labelEffectDelaySeconds = options.labelEffectDelaySeconds ?? 0;
    this.actor = simpleUser(this.apiUrl, "lab-reset[bot]", 41898282, "Bot");
    this.repository = minimalRepository(this.apiUrl, simpleUser(this.apiUrl, this.owner, 6154722, "Organization"), this.repo);
  }

  /** Now on GitHub's clock, as its timestamps read (whole seconds). */
  timestamp(): string {
    return timestamp(this.clock());
  }

  // ---- requests, as the fronts receive them ----

  /** Notes a request's arrival (before any fault or answer); set its `status` once answered. */
  receive(method: string, path: string, query: Record<string, string>, body: unknown): RecordedRequest {
    const record: RecordedRequest = { method, path, query, body, status: 0 };
    this.requests.push(record);
    this.received++;
    return record;
  }

  /** Requests received so far, `clearRequests` notwithstanding: what the rate limit counts. */
  get requestCount(): number {
    return this.received;
  }

  clearRequests(): void {
    this.requests.length = 0;
  }

  // ---- runners ----

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
    this.runnersById.set(runner.id, runner);
    this.runnersVersion++;
    this.assignment.set(spec.name, { labels: runner.labels.map((l) => l.name), pending: [] });
    return structuredClone(runner);
  }

  setRunner(name: string, patch: { status?: "online" | "offline"; busy?: boolean }): void {
    const runner = this.runners.get(name);
    if (runner === undefined) throw new Error(`unknown runner ${name}`);
    if (patch.status !== undefined) runner.status = patch.status;
    if (patch.busy !== undefined) runner.busy = patch.busy;
    this.runnersVersion++;
  }

  /** A snapshot of one runner, as GitHub would list it. */
  getRunner(name: string): Runner | undefined {
    const runner = this.runners.get(name);
    return runner === undefined ? undefined : structuredClone(runner);
  }

  /** Whether the runner is online; undefined for an unknown runner. No copy: the simulator asks often. */
  isOnline(name: string): boolean | undefined {
    const runner = this.runners.get(name);
    return runner === undefined ? undefined : runner.status === "online";
  }

  removeRunner(name: string): void {
    const runner = this.runners.get(name);
    if (runner === undefined) throw new Error(`unknown runner ${name}`);
    this.runners.delete(name);
    this.runnersById.delete(runner.id);
    this.runnersVersion++;
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

  /** The id of the job in progress on the runner, if any. */
  runningJobOn(runnerName: string): number | undefined {
    return this.runningJobs.get(runnerName);
  }

  // ---- runs and jobs ----

  addRun(spec: RunSpec): WorkflowRun {
    const status = spec.status ?? "in_progress";
    const conclusion = settle(status, spec.conclusion);
    const id = this.nextRunId++;
    const now = this.timestamp();
    const createdAt = spec.createdAt ?? now;
    const path = spec.workflowPath ?? DEFAULT_WORKFLOW_PATH;
    const workflowId = this.workflowId(path);
    const name = spec.name ?? fileName(path).replace(/\.ya?ml$/, "");
    const runNumber = (this.runCounts.get(workflowId) ?? 0) + 1;
    this.runCounts.set(workflowId, runNumber);
    const api = `${this.apiUrl}/repos/${this.owner}/${this.repo}`;
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
    const stored: StoredRun = { run, status, jobs: [], version: 0, createdMs: Date.parse(createdAt) };
    this.runStore.set(id, stored);
    if (status !== "completed") this.unfinished.add(stored);
    for (const [index, jobSpec] of (spec.jobs ?? []).entries()) this.addJob(stored, this.newJob(stored, jobSpec, `job ${index + 1}`));
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
    stored.version++;
    stored.run.status = status;
    stored.run.conclusion = conclusion;
    stored.run.updated_at = now;
    if (status !== "completed") {
      this.unfinished.add(stored);
      return;
    }
    this.unfinished.delete(stored);
    // GitHub never reports a completed run with unfinished jobs.
    for (const job of stored.jobs.filter((j) => j.status !== "completed")) {
      const before = { status: job.status, runner: job.runner_name };
      job.status = "completed";
      job.conclusion = jobConclusion;
      job.completed_at = now;
      this.placeJob(job, before);
    }
  }

  setJob(id: number, patch: { status?: JobStatus; conclusion?: string | null; runnerName?: string | null }): void {
    const entry = this.jobIndex.get(id);
    if (entry === undefined) throw new Error(`unknown job ${id}`);
    const { job, stored } = entry;
    const before = { status: job.status, runner: job.runner_name };
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
    stored.version++;
    this.placeJob(job, before);
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
    for (const job of jobs) this.addJob(stored, job);
    stored.run.updated_at = this.timestamp();
    stored.version++;
    return structuredClone(jobs);
  }

  /** The hosts of the reset dispatch that created the run; undefined for a run no dispatch created. */
  dispatchedHosts(runId: number): ResetHost[] | undefined {
    const dispatch = this.dispatches.find((d) => d.runId === runId);
    return dispatch === undefined ? undefined : resetHosts(dispatch.inputs.hosts);
  }

  getRun(id: number): WorkflowRun | undefined {
    const stored = this.runStore.get(id);
    return stored === undefined ? undefined : structuredClone(stored.run);
  }

  /** Snapshots of all runs, newest first (as GitHub lists them). */
  runs(): WorkflowRun[] {
    return this.newestFirst().map((s) => structuredClone(s.run));
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

  /** The repository as webhook payloads carry it (`repository-webhooks`, a superset of the REST one); built once, shared. */
  webhookRepository(): WebhookRepository {
    return (this.hookRepository ??= this.newWebhookRepository());
  }

  private hookRepository?: WebhookRepository;

  private newWebhookRepository(): WebhookRepository {
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

  // ---- what the REST routes read: the model's own objects, for a front to serialize at once ----

  /** The runners, optionally those named `name` (GitHub's `name` filter). */
  listRunners(name?: string): Runner[] {
    const all = [...this.runners.values()];
    return name === undefined ? all : all.filter((r) => r.name === name);
  }

  runnerById(id: number): Runner | undefined {
    return this.runnersById.get(id);
  }

  /** Runs matching GitHub's list filters, newest first. */
  listRuns(filter: RunFilter = {}): WorkflowRun[] {
    const { workflow, status, event, branch, created } = filter;
    const byId = workflow !== undefined && /^\d+$/.test(workflow);
    // Only unfinished runs can have an unfinished status: no need to look through every run.
    const candidates = status !== undefined && status !== "completed" && isRunStatus(status) ? [...this.unfinished].sort((a, b) => Number(b.run.id) - Number(a.run.id)) : this.newestFirst();
    return candidates
      .filter(
        ({ run, createdMs }) =>
          (workflow === undefined || (byId ? run.workflow_id === Number(workflow) : run.path.endsWith(`/${workflow}`))) &&
          (status === undefined || (isRunStatus(status) ? run.status === status : run.conclusion === status)) &&
          (event === undefined || run.event === event) &&
          (branch === undefined || run.head_branch === branch) &&
          (created === undefined || matchesCreated(run.created_at, createdMs, created)),
      )
      .map((s) => s.run);
  }

  /**
   * A version of what the answers about these runners (undefined: all of them) or runs are made
   * of: while it is the same, so is every answer built from them (the in-process front's ETags).
   */
  versionOf(what: { runners: true } | { runs: readonly WorkflowRun[] }): string {
    if ("runners" in what) return `runners ${this.runnersVersion}`;
    return what.runs.map((run) => `${run.id}.${this.runVersion(Number(run.id)) ?? -1}`).join(" ");
  }

  /** Bumped by every change to the run or its jobs; undefined for a run GitHub does not know. */
  runVersion(id: number): number | undefined {
    return this.runStore.get(id)?.version;
  }

  run(id: number): WorkflowRun | undefined {
    return this.runStore.get(id)?.run;
  }

  /** A run's jobs (of one attempt); undefined when GitHub answers 404 (no such run or attempt). Only the current attempt has jobs. */
  listJobs(runId: number, attempt?: number): Job[] | undefined {
    const stored = this.runStore.get(runId);
    if (stored === undefined) return undefined;
    if (attempt !== undefined && (attempt < 1 || attempt > (stored.run.run_attempt ?? 1))) return undefined;
    return attempt === undefined ? stored.jobs : stored.jobs.filter((job) => job.run_attempt === attempt);
  }

  job(id: number): Job | undefined {
    return this.jobIndex.get(id)?.job;
  }

  // ---- what the REST routes change, with GitHub's answers ----

  /** `POST …/workflows/{workflow}/dispatches` with its JSON body (undefined when none). */
  dispatch(workflow: string, body: unknown): DispatchAnswer {
    const fields: Record<string, unknown> = isObject(body) ? body : {};
    const record: DispatchRecord = {
      workflow,
      ref: typeof fields.ref === "string" ? fields.ref : "",
      inputs: isObject(fields.inputs) ? fields.inputs : {},
      returnRunDetails: fields.return_run_details === true,
      runId: null,
    };
    this.dispatches.push(record);
    const path = this.dispatchedWorkflowPath(workflow);
    if (path === undefined) return notFound(DOCS);
    if (this.ghes && "return_run_details" in fields) {
      const message = 'Invalid request.\n\n"return_run_details" is not a permitted key.';
      return { status: 400, body: { message, documentation_url: DISPATCH_DOCS, status: "400" } satisfies BasicError };
    }
    const problem = dispatchProblem(fields);
    if (problem !== undefined) {
      return { status: 422, body: { message: `Invalid request.\n\n${problem}`, documentation_url: DISPATCH_DOCS, status: "422" } satisfies BasicError };
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
    const created = { record, run };
    if (!record.returnRunDetails) return { status: 204, created };
    return { status: 200, body: { workflow_run_id: run.id, run_url: run.url, html_url: run.html_url } satisfies Schemas["workflow-dispatch-response"], created };
  }

  /** Tells `onDispatch` of a run a dispatch created; a front calls it once it has answered. */
  dispatched(created: NonNullable<DispatchAnswer["created"]>): void {
    this.onDispatch?.(created.record, created.run);
  }

  /** GitHub answers 202 and cancels the run's unfinished jobs; a finished run cannot be cancelled (409). */
  cancel(runId: number): Answer {
    const stored = this.runStore.get(runId);
    if (stored === undefined) return notFound(DOCS);
    if (stored.status === "completed") {
      return { status: 409, body: { message: "Cannot cancel a workflow run that is completed.", documentation_url: DOCS, status: "409" } satisfies BasicError };
    }
    this.setRun(runId, { status: "completed", conclusion: "cancelled" });
    this.onRunCancelled?.(runId);
    return { status: 202, body: {} };
  }

  /**
   * A call to `…/actions/runners/{id}/labels[/{name}]`: GitHub's rules for permission, runner,
   * body and read-only labels, then the edit. Recorded in `labelCalls`; an edit reaches job
   * assignment `labelEffectDelaySeconds` later.
   */
  labels(scope: LabelCall["scope"], operation: LabelOperation, runnerId: number, name: string | undefined, body: unknown): Answer {
    const runner = this.runnersById.get(runnerId);
    const call: LabelCall = { operation, scope, runnerId, runnerName: runner?.name ?? null, labels: name !== undefined ? [name] : bodyLabels(body), status: 0 };
    this.labelCalls.push(call);
    const answer = this.labelAnswer(call, runner, body);
    call.status = answer.status;
    if (operation !== "list" && answer.status === 200) this.runnersVersion++;
    if (answer.edited && runner !== undefined) this.labelsEdited(runner);
    return { status: answer.status, body: answer.body };
  }

  private labelAnswer(call: LabelCall, runner: Runner | undefined, body: unknown): Answer & { edited?: boolean } {
    if (this.denyLabelCall?.(call) === true) {
      return { status: 403, body: { message: "Resource not accessible by integration", documentation_url: LABELS_DOCS, status: "403" } satisfies BasicError };
    }
    if (runner === undefined) return notFound(LABELS_DOCS);
    if (call.operation === "add" || call.operation === "set") {
      const problem = labelsBodyProblem(body, call.operation);
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
        if (!custom.some((l) => sameName(l.name, name))) return notFound(LABELS_DOCS);
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

  // ---- inner workings ----

  private addJob(stored: StoredRun, job: Job): void {
    stored.jobs.push(job);
    stored.version++;
    this.jobIndex.set(Number(job.id), { job, stored });
    this.placeJob(job, { status: "queued", runner: null });
  }

  /** Keeps `runningJobs` true to the job's status and runner, given what they were. */
  private placeJob(job: Job, before: { status: string; runner: string | null }): void {
    if (before.runner !== null && this.runningJobs.get(before.runner) === Number(job.id)) this.runningJobs.delete(before.runner);
    if (job.status === "in_progress" && job.runner_name !== null) this.runningJobs.set(job.runner_name, Number(job.id));
  }

  private newJob(stored: StoredRun, spec: JobSpec, defaultName: string): Job {
    const { run } = stored;
    const id = this.nextJobId++;
    const status = spec.status ?? stored.status;
    const conclusion = spec.conclusion !== undefined ? spec.conclusion : status === stored.status ? run.conclusion : null;
    const api = `${this.apiUrl}/repos/${this.owner}/${this.repo}`;
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

  private workflowId(path: string): number {
    let id = this.workflowIds.get(path);
    if (id === undefined) {
      id = FIRST_WORKFLOW_ID + this.workflowIds.size;
      this.workflowIds.set(path, id);
    }
    return id;
  }

  /** `.github/workflows/{file}` for a file name; a numeric id must name a workflow that already ran. */
  private dispatchedWorkflowPath(workflow: string): string | undefined {
    if (!/^\d+$/.test(workflow)) return `.github/workflows/${workflow}`;
    return [...this.workflowIds].find(([, id]) => id === Number(workflow))?.[0];
  }

  private newestFirst(): StoredRun[] {
    return [...this.runStore.values()].reverse();
  }
}

/** GitHub's paging: per_page 30 by default, clamped to 100; `last` is the number of pages (at least 1). */
export function pageOf<T>(all: readonly T[], query: Record<string, string | undefined>): { items: T[]; page: number; last: number } {
  const perPage = Math.min(100, Math.max(1, positiveInt(query.per_page) ?? 30));
  const page = positiveInt(query.page) ?? 1;
  const last = Math.max(1, Math.ceil(all.length / perPage));
  return { items: all.slice((page - 1) * perPage, page * perPage), page, last };
}

/** Like GitHub: every GET answer carries an ETag of its body; a matching If-None-Match gets 304. */
export function etagOf(payload: string): string {
  return `W/"${createHash("sha1").update(payload).digest("hex")}"`;
}

/** GitHub's body for an error status with nothing more to say. */
export function errorBody(status: number, message = STATUS_CODES[status] ?? "Error"): BasicError {
  return { message, documentation_url: DOCS, status: String(status) };
}

function notFound(documentationUrl: string): Answer {
  return { status: 404, body: { message: "Not Found", documentation_url: documentationUrl, status: "404" } satisfies BasicError };
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
function matchesCreated(createdAt: string, at: number, filter: string): boolean {
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

export function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function positiveInt(value: string | undefined): number | undefined {
  const n = Number(value);
  return value !== undefined && Number.isInteger(n) && n >= 1 ? n : undefined;
}

export function sameName(a: string, b: string): boolean {
  return a.toLowerCase() === b.toLowerCase();
}

function fileName(path: string): string {
  return path.slice(path.lastIndexOf("/") + 1);
}

/** GitHub's timestamps have whole seconds. */
function timestamp(at: Date): string {
  return at.toISOString().replace(/\.\d{3}Z$/, "Z");
}
