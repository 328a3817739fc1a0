/**
 * What each function does, independent of Azure's types: plain inputs in, a status and a JSON
 * body out. functions/ adapts these to HTTP and timer triggers.
 */
import { z } from "zod";
import { zodProblems } from "../lab/config.js";
import { GitHubError } from "../github/client.js";
import type { Logger } from "../logger.js";
import { CallerRejectedError, type ActionsCaller } from "./oidc.js";
import { newPairRecord } from "../lab/pair-record.js";
import { reconcile, RunNotFoundError, type JobReport, type PairResult, type ReconcileResult } from "../reconcile/reconcile.js";
import type { Runtime } from "../runtime.js";
import { OIDC_DISABLED_WARNING, REPOSITORY_PATTERN } from "../settings.js";
import { StoreError } from "../storage/tables.js";
import { noteJob, pairOfRunner, RunnerNameSchema } from "./webhook.js";

export interface JsonResponse {
  status: number;
  body: unknown;
  headers?: Record<string, string>;
}

export const MAX_BODY_BYTES = 64 * 1024;

const positiveInt = z.union([z.number().int().positive(), z.string().regex(/^\d+$/, "must be a positive integer").transform(Number)]);

/** Body of POST /api/job-completed. Numbers may come quoted, as `${{ github.run_id }}` often does. */
export const JobCompletedBodySchema = z.strictObject({
  repository: z.string().regex(REPOSITORY_PATTERN, 'must be "owner/repo"'),
  runId: positiveInt,
  runAttempt: positiveInt.optional(),
  runnerName: RunnerNameSchema.optional(),
});
export type JobCompletedBody = z.infer<typeof JobCompletedBodySchema>;

const error = (status: number, message: string, extra: Record<string, unknown> = {}): JsonResponse => ({ status, body: { error: message, ...extra } });

/** A failure the caller can retry: GitHub or Table Storage did not answer as needed. */
function unavailable(cause: unknown, logger: Logger): JsonResponse {
  const message = cause instanceof Error ? cause.message : String(cause);
  logger.error(message);
  return { ...error(503, `${message}. Nothing was reset; retry later.`), headers: { "retry-after": "60" } };
}

const pairView = (p: PairResult) => ({
  id: p.id,
  state: p.state,
  decision: p.decision,
  resetRunId: p.resetRunId,
  ...(p.lastError ? { lastError: p.lastError } : {}),
  ...(p.error ? { error: p.error } : {}),
});

function reconcileResponse(result: ReconcileResult, runId: number): JsonResponse {
  const used = new Set(result.runPairs);
  const body = {
    runId,
    pairs: result.pairs.filter((p) => used.has(p.id)).map(pairView),
    // Other pairs this call acted on or is waiting for, so the caller sees the whole effect.
    alsoReconciled: result.pairs.filter((p) => !used.has(p.id) && p.decision !== "not-needed").map(pairView),
    ...(result.ok ? {} : { errors: result.errors }),
  };
  return result.ok ? { status: 202, body } : { status: 503, body: { error: "Some facts could not be read or recorded; the affected pairs were not reset. Retry later.", ...body }, headers: { "retry-after": "60" } };
}

/** The caller's credentials, as the HTTP request carried them. */
export interface CallerCredentials {
  /** The Authorization header: `Bearer <GitHub Actions OIDC token>`. */
  authorization?: string;
}

/** The verified caller (null when OIDC is switched off), or the refusal to answer with. */
async function authenticate(runtime: Runtime, credentials: CallerCredentials, logger: Logger): Promise<{ caller: ActionsCaller | null } | { refused: JsonResponse }> {
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

export async function jobCompleted(runtime: Runtime, bodyText: string, logger: Logger, credentials: CallerCredentials = {}): Promise<JsonResponse> {
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
  const report: JobReport = { runId: body.runId, ...(runAttempt ? { runAttempt } : {}), ...(body.runnerName ? { runnerName: body.runnerName } : {}) };
  try {
    const deps = { ...runtime, logger };
    if (body.runnerName) {
      // A runner outside the lab would be ignored silently; say so instead, before anything is written.
      const pair = pairOfRunner(runtime.config, await runtime.github.listRunners(), body.runnerName);
      if (pair === undefined) return error(400, `runnerName ${JSON.stringify(body.runnerName)} is not the VM runner of a configured pair; leave it out or name a lab VM runner (e.g. VM-42-43).`);
      if (!ownRepository) {
        // Another repository's run cannot be read here: record the job from the call, then look.
        await noteJob(deps, pair, { runId: body.runId, at: runtime.clock().toISOString(), runnerName: body.runnerName, phase: "finished" }, "job-completed");
        return reconcileResponse({ ...(await reconcile(deps, "job-completed")), runPairs: [pair.id] }, body.runId);
      }
    }
    return reconcileResponse(await reconcile(deps, "job-completed", report), body.runId);
  } catch (cause) {
    if (cause instanceof RunNotFoundError) return error(404, `${cause.message}; check runId.`);
    if (cause instanceof GitHubError || cause instanceof StoreError) return unavailable(cause, logger);
    throw cause;
  }
}

export async function scheduledReset(runtime: Runtime, logger: Logger): Promise<ReconcileResult> {
  const result = await reconcile({ ...runtime, logger }, "timer");
  if (!result.ok) {
    // A failed timer run is not retried by the host; the next trigger reconciles again.
    throw new Error(`scheduled reconcile incomplete, pairs left alone: ${result.errors.join("; ")}`);
  }
  return result;
}

export async function pairs(runtime: Runtime, logger: Logger): Promise<JsonResponse> {
  try {
    const stored = new Map((await runtime.store.listPairs()).map((s) => [s.record.pairId, s.record]));
    return {
      status: 200,
      body: {
        pairs: runtime.config.pairs.map((pair) => {
          const record = stored.get(pair.id);
          // A pair never seen is reported as the reconcile would treat it: dirty, never updated.
          const { pairId, ...fields } = record ?? newPairRecord(pair.id, runtime.clock());
          return { id: pairId, vmRunnerLabel: pair.vmRunnerLabel, ...fields, updatedAt: record ? fields.updatedAt : null };
        }),
      },
    };
  } catch (cause) {
    if (cause instanceof StoreError) return unavailable(cause, logger);
    throw cause;
  }
}
