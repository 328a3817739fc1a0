/**
 * What each function does, independent of Azure's types: plain inputs in, a status and a JSON
 * body out. functions/ adapts these to HTTP and timer triggers.
 */
import { z } from "zod";
import { zodProblems } from "./config.js";
import { GitHubError } from "./github.js";
import type { Logger } from "./logger.js";
import { newPairRecord } from "./pair-record.js";
import { reconcile, RunNotFoundError, type PairResult, type ReconcileResult } from "./reconcile.js";
import type { Runtime } from "./runtime.js";
import { StoreError } from "./store.js";

export interface JsonResponse {
  status: number;
  body: unknown;
  headers?: Record<string, string>;
}

export const MAX_BODY_BYTES = 64 * 1024;

const positiveInt = z.union([z.number().int().positive(), z.string().regex(/^\d+$/, "must be a positive integer").transform(Number)]);

/** Body of POST /api/job-completed. Numbers may come quoted, as `${{ github.run_id }}` often does. */
export const JobCompletedBodySchema = z.strictObject({
  repository: z.string().regex(/^[A-Za-z0-9_.-]+\/[A-Za-z0-9_.-]+$/, 'must be "owner/repo"'),
  runId: positiveInt,
  runAttempt: positiveInt.optional(),
  // eslint-disable-next-line no-control-regex -- a runner name never holds control characters
  runnerName: z.string().min(1).max(255).regex(/^[^\u0000-\u001f\u007f]+$/, "must not contain control characters").optional(),
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

export async function jobCompleted(runtime: Runtime, bodyText: string, logger: Logger): Promise<JsonResponse> {
  if (Buffer.byteLength(bodyText, "utf8") > MAX_BODY_BYTES) return error(413, `Body is larger than ${MAX_BODY_BYTES} bytes.`);
  let json: unknown;
  try {
    json = JSON.parse(bodyText);
  } catch {
    return error(400, 'Body is not JSON. Send {"repository":"owner/repo","runId":123,"runAttempt":1,"runnerName":"VM-42-43"}.');
  }
  const parsed = JobCompletedBodySchema.safeParse(json);
  if (!parsed.success) return error(400, "Body does not match the job-completed schema.", { problems: zodProblems(parsed.error) });
  const body = parsed.data;
  const { owner, repo } = runtime.config.github;
  if (body.repository.toLowerCase() !== `${owner}/${repo}`.toLowerCase()) {
    return error(403, `This lab-reset serves ${owner}/${repo}, not ${body.repository}.`);
  }
  try {
    const result = await reconcile({ ...runtime, logger }, "job-completed", {
      runId: body.runId,
      ...(body.runAttempt ? { runAttempt: body.runAttempt } : {}),
      ...(body.runnerName ? { runnerName: body.runnerName } : {}),
    });
    return reconcileResponse(result, body.runId);
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
