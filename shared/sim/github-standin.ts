/**
 * A loopback HTTP front for the GitHub model (github-model.ts): the REST routes lab-reset uses,
 * with GitHub's authentication (a token, or a GitHub App's JWT and installation tokens), paging,
 * ETags and 304s, rate-limit headers, scripted failures (fail, hang) and the App's webhook
 * deliveries API. Integration tests drive GitHub's state through it (addRunner, addRun, setJob…);
 * the state and rules themselves are the model's, which the in-process ModelLabGitHub shares.
 */
import { createPublicKey, randomBytes, verify as verifySignature, type KeyObject } from "node:crypto";
import { createServer } from "node:http";
import type { IncomingMessage, OutgoingHttpHeaders, Server, ServerResponse } from "node:http";
import type { components, operations } from "@octokit/openapi-types";
import {
  DOCS,
  errorBody,
  etagOf,
  GitHubModel,
  INSTALLATION_ID,
  pageOf,
  RATE_LIMIT,
  sameName,
  type Answer,
  type DispatchRecord,
  type FaultSpec,
  type GitHubModelOptions,
  type Job,
  type JobSpec,
  type JobStatus,
  type LabelCall,
  type LabelOperation,
  type RecordedRequest,
  type ResetHost,
  type Runner,
  type RunnerSpec,
  type RunSpec,
  type RunStatus,
  type WorkflowJobAction,
  type WorkflowJobEvent,
  type WorkflowRun,
} from "./github-model.js";
import { WebhookDeliveryLog, type HookDeliveryItem } from "./standin-deliveries.js";

export {
  hostedRunnerName,
  labResetJobs,
  type DispatchRecord,
  type FaultSpec,
  type JobSpec,
  type JobStatus,
  type LabelCall,
  type LabelOperation,
  type RecordedRequest,
  type ResetHost,
  type RunnerSpec,
  type RunSpec,
  type RunStatus,
  type WorkflowJobAction,
  type WorkflowJobEvent,
} from "./github-model.js";

type Schemas = components["schemas"];
type BasicError = Schemas["basic-error"];
type RunnerList =
  operations["actions/list-self-hosted-runners-for-repo"]["responses"][200]["content"]["application/json"];
type RunList = operations["actions/list-workflow-runs-for-repo"]["responses"][200]["content"]["application/json"];
type JobList = operations["actions/list-jobs-for-workflow-run"]["responses"][200]["content"]["application/json"];

export interface StandinOptions extends Omit<GitHubModelOptions, "apiUrl"> {
  token?: string;
  /** Front this model instead of a new one (its owner, repo, clock… then apply). */
  model?: GitHubModel;
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

const API_PREFIX = "/api/v3";
const ACCESS_TOKENS_PATH = /^\/app\/installations\/(\d+)\/access_tokens$/;
const DELIVERIES_PATH = /^\/app\/hook\/deliveries(?:\/(\d+)\/attempts)?$/;

export class GitHubStandin {
  readonly token: string;
  /** GitHub's state and rules; the stand-in only speaks HTTP for it. */
  readonly model: GitHubModel;
  /** Awaited before every request is answered: a test changes the world between a request and its answer. */
  onRequest?: (method: string, path: string) => void | Promise<void>;
  private readonly interceptors: Interceptor[] = [];
  private readonly rateLimitReset = Math.floor(Date.now() / 1000) + 3600;

  private constructor(
    private readonly server: Server,
    readonly url: string,
    options: StandinOptions,
  ) {
    this.token = options.token ?? "test-token";
    this.model = options.model ?? new GitHubModel({ ...options, apiUrl: url });
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

  // ---- the model's state and hooks, as tests have always reached them through the stand-in ----

  get owner(): string {
    return this.model.owner;
  }
  get repo(): string {
    return this.model.repo;
  }
  /** Every request received (through this front or the in-process one). */
  get requests(): RecordedRequest[] {
    return this.model.requests;
  }
  get dispatches(): DispatchRecord[] {
    return this.model.dispatches;
  }
  get labelCalls(): LabelCall[] {
    return this.model.labelCalls;
  }
  get onDispatch() {
    return this.model.onDispatch;
  }
  set onDispatch(hook: GitHubModel["onDispatch"]) {
    this.model.onDispatch = hook;
  }
  get injectFault() {
    return this.model.injectFault;
  }
  set injectFault(hook: GitHubModel["injectFault"]) {
    this.model.injectFault = hook;
  }
  get denyLabelCall() {
    return this.model.denyLabelCall;
  }
  set denyLabelCall(rule: GitHubModel["denyLabelCall"]) {
    this.model.denyLabelCall = rule;
  }
  get onLabelsEdited() {
    return this.model.onLabelsEdited;
  }
  set onLabelsEdited(hook: GitHubModel["onLabelsEdited"]) {
    this.model.onLabelsEdited = hook;
  }
  get labelEffectDelaySeconds(): number {
    return this.model.labelEffectDelaySeconds;
  }
  set labelEffectDelaySeconds(seconds: number) {
    this.model.labelEffectDelaySeconds = seconds;
  }

  clearRequests(): void {
    this.model.clearRequests();
  }
  addRunner(spec: RunnerSpec): Runner {
    return this.model.addRunner(spec);
  }
  setRunner(name: string, patch: { status?: "online" | "offline"; busy?: boolean }): void {
    this.model.setRunner(name, patch);
  }
  getRunner(name: string): Runner | undefined {
    return this.model.getRunner(name);
  }
  removeRunner(name: string): void {
    this.model.removeRunner(name);
  }
  assignableLabels(name: string): readonly string[] | undefined {
    return this.model.assignableLabels(name);
  }
  addRun(spec: RunSpec): WorkflowRun {
    return this.model.addRun(spec);
  }
  setRun(id: number, patch: { status?: RunStatus; conclusion?: string | null }): void {
    this.model.setRun(id, patch);
  }
  setJob(id: number, patch: { status?: JobStatus; conclusion?: string | null; runnerName?: string | null }): void {
    this.model.setJob(id, patch);
  }
  jobsOf(runId: number): Job[] {
    return this.model.jobsOf(runId);
  }
  addJobs(runId: number, specs: JobSpec[]): Job[] {
    return this.model.addJobs(runId, specs);
  }
  dispatchedHosts(runId: number): ResetHost[] | undefined {
    return this.model.dispatchedHosts(runId);
  }
  workflowJobEvent(jobId: number, action: WorkflowJobAction): WorkflowJobEvent {
    return this.model.workflowJobEvent(jobId, action);
  }
  getRun(id: number): WorkflowRun | undefined {
    return this.model.getRun(id);
  }
  runs(): WorkflowRun[] {
    return this.model.runs();
  }

  // ---- HTTP only ----

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
    this.deliveryLog = new WebhookDeliveryLog(target, () => this.model.clock(), INSTALLATION_ID, Number(this.model.repository.id));
  }

  /** Delivers the job's `action` to the webhook URL as GitHub would; resolves with the logged attempt. */
  deliverJob(jobId: number, action: WorkflowJobAction): Promise<HookDeliveryItem> {
    if (this.deliveryLog === undefined) throw new Error("enableWebhook first");
    return this.deliveryLog.deliver("workflow_job", this.workflowJobEvent(jobId, action));
  }

  /** Delivers a delivery made elsewhere (the simulated lab's, its GUID and body kept) as GitHub would; resolves with the logged attempt. */
  forwardDelivery(delivery: { event: string; deliveryId: string; body: string }): Promise<HookDeliveryItem> {
    if (this.deliveryLog === undefined) throw new Error("enableWebhook first");
    return this.deliveryLog.deliver(delivery.event, JSON.parse(delivery.body) as { action?: string }, delivery.deliveryId);
  }

  /** Logs a delivery GitHub failed to make (the app unreachable) without sending it, for the App to redeliver. */
  logUnreachableDelivery(delivery: { event: string; deliveryId: string; body: string }): HookDeliveryItem {
    if (this.deliveryLog === undefined) throw new Error("enableWebhook first");
    return this.deliveryLog.logUnreachable(delivery.event, JSON.parse(delivery.body) as { action?: string }, delivery.deliveryId);
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
    const intercepted = this.intercept(method, path) ?? this.model.injectFault?.(method, path);
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
    const record = this.model.receive(method, path, Object.fromEntries(url.searchParams), body);
    const count = this.model.requestCount;
    const ex: Exchange = {
      req,
      res,
      url,
      record,
      rateLimitHeaders: {
        "x-ratelimit-limit": String(RATE_LIMIT),
        "x-ratelimit-remaining": String(Math.max(0, RATE_LIMIT - count)),
        "x-ratelimit-reset": String(this.rateLimitReset),
        "x-ratelimit-used": String(Math.min(RATE_LIMIT, count)),
        "x-ratelimit-resource": "core",
        "x-github-request-id": `5A4D:${count.toString(16).toUpperCase().padStart(6, "0")}:STANDIN`,
      },
    };

    await this.onRequest?.(method, path);
    if (this.appAuth !== undefined && ACCESS_TOKENS_PATH.test(path)) return this.answerAccessTokens(ex, method, path);
    if (DELIVERIES_PATH.test(path)) return this.answerDeliveries(ex, method, path);
    if (!this.authorized(req.headers.authorization)) {
      return this.send(ex, 401, { message: "Bad credentials", documentation_url: DOCS, status: "401" } satisfies BasicError);
    }
    const intercepted = this.intercept(method, path) ?? this.model.injectFault?.(method, path);
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
    const { model } = this;
    const { status, event, created, branch } = ex.record.query;
    const found = (value: unknown) => (value === undefined ? this.notFound(ex) : this.send(ex, 200, value));
    // Routes below /repos/{owner}/{repo}; the handler gets the pattern's captures.
    const routes: [string, RegExp, (p: string[]) => void][] = [
      ["GET", /^\/actions\/runners$/, () => this.listRunners(ex)],
      ["GET", /^\/actions\/runners\/(\d+)$/, ([id]) => found(model.runnerById(Number(id)))],
      ["GET", /^\/actions\/runs$/, () => this.listRuns(ex, model.listRuns({ status, event, created, branch }))],
      ["GET", /^\/actions\/workflows\/([^/]+)\/runs$/, ([workflow]) => this.listRuns(ex, model.listRuns({ workflow: decode(workflow), status, event, created, branch }))],
      ["GET", /^\/actions\/runs\/(\d+)$/, ([id]) => found(model.run(Number(id)))],
      ["GET", /^\/actions\/runs\/(\d+)\/jobs$/, ([id]) => this.listJobs(ex, model.listJobs(Number(id)))],
      ["GET", /^\/actions\/runs\/(\d+)\/attempts\/(\d+)\/jobs$/, ([id, n]) => this.listJobs(ex, model.listJobs(Number(id), Number(n)))],
      ["GET", /^\/actions\/jobs\/(\d+)$/, ([id]) => found(model.job(Number(id)))],
      ["POST", /^\/actions\/workflows\/([^/]+)\/dispatches$/, ([workflow]) => this.dispatch(ex, decode(workflow))],
      ["POST", /^\/actions\/runs\/(\d+)\/cancel$/, ([id]) => this.answer(ex, model.cancel(Number(id)))],
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
    this.answer(ex, this.model.labels(scope, operation, Number(match[1]), name, ex.record.body));
    return true;
  }

  private listRunners(ex: Exchange): void {
    const runners = this.model.listRunners(ex.record.query.name);
    const { items, link } = this.paginate(ex, runners);
    this.send(ex, 200, { total_count: runners.length, runners: items } satisfies RunnerList, link);
  }

  private listRuns(ex: Exchange, runs: WorkflowRun[]): void {
    const { items, link } = this.paginate(ex, runs);
    this.send(ex, 200, { total_count: runs.length, workflow_runs: items } satisfies RunList, link);
  }

  private listJobs(ex: Exchange, jobs: Job[] | undefined): void {
    if (jobs === undefined) return this.notFound(ex);
    const { items, link } = this.paginate(ex, jobs);
    this.send(ex, 200, { total_count: jobs.length, jobs: items } satisfies JobList, link);
  }

  private dispatch(ex: Exchange, workflow: string): void {
    const answer = this.model.dispatch(workflow, ex.record.body);
    this.answer(ex, answer);
    if (answer.created) this.model.dispatched(answer.created);
  }

  /** GitHub's paging, with a Link header whenever there is more than one page. */
  private paginate<T>(ex: Exchange, all: T[]): { items: T[]; link: OutgoingHttpHeaders } {
    const { items, page, last } = pageOf(all, ex.record.query);
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
    return { items, link };
  }

  private notFound(ex: Exchange): void {
    this.send(ex, 404, { message: "Not Found", documentation_url: DOCS, status: "404" } satisfies BasicError);
  }

  private answer(ex: Exchange, answer: Answer): void {
    this.send(ex, answer.status, answer.body);
  }

  private sendFault(ex: Exchange, fault: FaultSpec): void {
    const noBody = fault.status === 204 || fault.status === 304;
    const payload = fault.raw ?? (noBody && fault.body === undefined ? undefined : JSON.stringify(fault.body ?? errorBody(fault.status)));
    this.write(ex, fault.status, payload, fault.headers ?? {});
  }

  private send(ex: Exchange, status: number, body?: unknown, headers: OutgoingHttpHeaders = {}): void {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    if (status === 200 && ex.record.method === "GET" && payload !== undefined) {
      const etag = etagOf(payload);
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

function decode(segment: string | undefined): string {
  return decodeURIComponent(segment ?? "");
}

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(String(chunk)));
  return Buffer.concat(chunks).toString("utf8");
}
