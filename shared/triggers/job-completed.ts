/**
 * POST /api/job-completed: a perf workflow's last job says its run is done. The call reads the
 * run's jobs from GitHub, records that each ended on its runner (insert-only facts), queues a
 * reconcile, and answers 202 with the pairs the run used. The decision follows in the pairs'
 * records and events; the call never reconciles itself.
 */
import { z } from "zod";
import { CallerRejectedError, type ActionsCaller, type OidcVerifier } from "../auth/oidc.js";
import type { Job } from "../github/client.js";
import type { TriggerLookups } from "../github/lookups.js";
import { zodProblems, type LabConfig, type Pair } from "../lab/config.js";
import { foldJobs } from "../lab/decide.js";
import { newPairRecord, type PairRecord } from "../lab/pair-record.js";
import type { Logger } from "../logger.js";
import type { OncePerKey } from "../once.js";
import { OIDC_DISABLED_WARNING, REPOSITORY_PATTERN } from "../settings.js";
import type { FactStore, JobFact } from "../storage/facts.js";
import { jobNewsOf, type HistoryStore } from "../storage/history.js";
import type { ReconcileQueue } from "../storage/queue.js";
import type { PairStore } from "../storage/tables.js";
import { refuse as error, unavailable, type JsonResponse } from "./http.js";
import { RunnerNameSchema } from "./webhook.js";

export const MAX_BODY_BYTES = 64 * 1024;

const positiveInt = z.union([z.number().int().positive(), z.string().regex(/^\d+$/, "must be a positive integer").transform(Number)]);

/** Body of POST /api/job-completed. Numbers may come quoted, as `${{ github.run_id }}` often does. */
const JobCompletedBodySchema = z.strictObject({
  repository: z.string().regex(REPOSITORY_PATTERN, 'must be "owner/repo"'),
  runId: positiveInt,
  runAttempt: positiveInt.optional(),
  runnerName: RunnerNameSchema.optional(),
});
type JobCompletedBody = z.infer<typeof JobCompletedBodySchema>;

export interface JobCompletedRuntime {
  /** null when OIDC_DISABLED=true. */
  oidc: Pick<OidcVerifier, "verify"> | null;
  /** Who may report when OIDC is off (with OIDC, the verifier holds the same list). */
  allowedRepositories: string[];
  config: Pick<LabConfig, "github">;
  lookups: Pick<TriggerLookups, "pairOfRunner" | "runJobs">;
  facts: Pick<FactStore, "record">;
  history: Pick<HistoryStore, "recordJobs">;
  /** Job ends of a run already recorded by this instance. */
  recordedRuns: OncePerKey;
  queue: Pick<ReconcileQueue, "send">;
  /** Read only, for the answer: the reconcile writes the records. */
  store: Pick<PairStore, "getPair">;
  clock: () => Date;
}

/** The caller's credentials, as the HTTP request carried them. */
export interface CallerCredentials {
  /** The Authorization header: `Bearer <GitHub Actions OIDC token>`. */
  authorization?: string;
}

/** The verified caller (null when OIDC is switched off), or the refusal to answer with. */
async function authenticate(runtime: Pick<JobCompletedRuntime, "oidc">, credentials: CallerCredentials, logger: Logger): Promise<{ caller: ActionsCaller | null } | { refused: JsonResponse }> {
  if (runtime.oidc === null) {
    logger.warn(OIDC_DISABLED_WARNING);
    return { caller: null };
  }
  try {
    return { caller: await runtime.oidc.verify(credentials.authorization) };
  } catch (cause) {
    if (!(cause instanceof CallerRejectedError)) throw cause;
    if (cause.status === 503) logger.error(cause.message);
    const headers: Record<string, string> = cause.status === 401 ? { "www-authenticate": 'Bearer error="invalid_token"' } : cause.status === 503 ? { "retry-after": "60" } : {};
    return { refused: { ...error(cause.status, cause.message), headers } };
  }
}

/** What the body claims beyond its token, if anything: a token is good for its own run only. */
function beyondToken(caller: ActionsCaller, body: JobCompletedBody): string | null {
  if (body.repository.toLowerCase() !== caller.repository.toLowerCase()) return `repository ${body.repository}`;
  if (body.runId !== caller.runId) return `run ${body.runId}`;
  if (body.runAttempt !== undefined && body.runAttempt !== caller.runAttempt) return `attempt ${body.runAttempt}`;
  return null;
}

export async function jobCompleted(runtime: JobCompletedRuntime, bodyText: string, logger: Logger, credentials: CallerCredentials = {}): Promise<JsonResponse> {
  if (Buffer.byteLength(bodyText, "utf8") > MAX_BODY_BYTES) return error(413, `Body is larger than ${MAX_BODY_BYTES} bytes.`);
  // Who calls is settled before the body is read, so an unknown caller learns nothing from it.
  const authenticated = await authenticate(runtime, credentials, logger);
  if ("refused" in authenticated) return authenticated.refused;
  const { caller } = authenticated;
  let json: unknown;
  try {
    json = JSON.parse(bodyText);
  } catch {
    return error(400, 'Body is not JSON. Send {"repository":"owner/repo","runId":123,"runAttempt":1,"runnerName":"VM-42-43"}.');
  }
  const parsed = JobCompletedBodySchema.safeParse(json);
  if (!parsed.success) return error(400, "Body does not match the job-completed schema.", { problems: zodProblems(parsed.error) });
  const body = parsed.data;
  const claimed = caller === null ? null : beyondToken(caller, body);
  if (caller !== null && claimed !== null) {
    return error(403, `The token was issued to run ${caller.runId} (attempt ${caller.runAttempt}) of ${caller.repository}; it cannot report ${claimed}.`);
  }
  if (caller === null && !runtime.allowedRepositories.some((r) => r.toLowerCase() === body.repository.toLowerCase())) {
    return error(403, `This lab-reset serves ${runtime.allowedRepositories.join(", ")}, not ${body.repository}.`);
  }
  const { owner, repo } = runtime.config.github;
  const ownRepository = body.repository.toLowerCase() === `${owner}/${repo}`.toLowerCase();
  if (!ownRepository && !body.runnerName) {
    return error(400, `lab-reset reads the jobs of ${owner}/${repo} only: for a run of ${body.repository}, name the VM runner in runnerName.`);
  }
  const runAttempt = caller?.runAttempt ?? body.runAttempt;
  try {
    let runnerPair: Pair | undefined;
    if (body.runnerName) {
      // A runner outside the lab would be ignored silently; say so instead, before anything is written.
      runnerPair = await runtime.lookups.pairOfRunner(body.runnerName);
      if (runnerPair === undefined) return error(400, `runnerName ${JSON.stringify(body.runnerName)} is not the VM runner of a configured pair; leave it out or name a lab VM runner (e.g. VM-42-43).`);
    }
    // Another repository's run cannot be read here: the call itself is the fact.
    const jobs = ownRepository ? await runtime.lookups.runJobs(body.runId, runAttempt) : [];
    if (jobs === null) return error(404, `GitHub has no run ${body.runId} in ${owner}/${repo}; check runId.`);
    const facts = endedFacts(jobs, body.runId, body.runnerName, runtime.clock());
    // Facts are insert-only, so the same run's ends need recording once per instance.
    const key = `${body.runId}/${runAttempt ?? "latest"}/${facts.map((f) => `${f.jobId ?? f.runnerName}:${f.at}`).join(",")}`;
    await runtime.recordedRuns.run(key, async () => {
      await runtime.facts.record(facts);
      await recordHistory(runtime, jobs, logger);
    });
    await runtime.queue.send({ trigger: "job-completed" });
    logger.info(`job-completed: run ${body.runId} recorded (${facts.length} job ends); a reconcile is queued`);
    return { status: 202, body: { runId: body.runId, pairs: await usedPairs(runtime, facts, runnerPair), reconcile: "queued" } };
  } catch (cause) {
    return unavailable(cause, logger, "Nothing was reset; retry later.");
  }
}

/** The run's jobs as GitHub lists them, each whole: no extra request. A helper: a failure is logged. */
async function recordHistory(runtime: Pick<JobCompletedRuntime, "history">, jobs: Job[], logger: Logger): Promise<void> {
  const news = jobs.filter((job) => job.runner_name || job.labels.some((l) => l.toLowerCase() === "self-hosted")).map(jobNewsOf);
  if (news.length === 0) return;
  try {
    await runtime.history.recordJobs(news);
  } catch (error) {
    logger.warn(`job-completed: the run's jobs were not written to the history (the report will miss them): ${(error as Error).message}`);
  }
}

/** Each finished job of the run that ran on a runner, and the runner the call names. */
function endedFacts(jobs: Job[], runId: number, runnerName: string | undefined, now: Date): JobFact[] {
  const at = now.toISOString();
  const facts: JobFact[] = jobs
    .filter((job) => job.status === "completed" && job.runner_name)
    .map((job) => ({ phase: "ended", jobId: job.id, runId, runnerName: job.runner_name!, runnerId: job.runner_id ?? null, at: job.completed_at ?? at, source: "job-completed", recordedAt: at }));
  const named = runnerName !== undefined && facts.some((f) => f.runnerName.toLowerCase() === runnerName.toLowerCase());
  if (runnerName !== undefined && !named) facts.push({ phase: "ended", jobId: null, runId, runnerName, runnerId: null, at, source: "job-completed", recordedAt: at });
  return facts;
}

/** The pairs the run used, as their records read once these job ends are folded in. */
async function usedPairs(runtime: Pick<JobCompletedRuntime, "lookups" | "store" | "clock">, facts: JobFact[], runnerPair: Pair | undefined) {
  const pairs = new Map<string, Pair>(runnerPair ? [[runnerPair.id, runnerPair]] : []);
  for (const fact of facts) {
    const pair = await runtime.lookups.pairOfRunner(fact.runnerName);
    if (pair) pairs.set(pair.id, pair);
  }
  return Promise.all(
    [...pairs.values()].map(async (pair) => {
      const record: PairRecord = (await runtime.store.getPair(pair.id))?.record ?? newPairRecord(pair.id, runtime.clock());
      // As the reconcile will fold this call's job ends in: a clean pair turns dirty.
      const folded = foldJobs({ ...record, resetDispatchedAt: null }, facts.map((f) => ({ runId: f.runId, at: f.at })));
      return { id: pair.id, state: folded.state, jobSinceReset: true };
    }),
  );
}
