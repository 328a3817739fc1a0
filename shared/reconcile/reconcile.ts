/**
 * One reconcile: read the record and GitHub, decide each pair with `decide`, then act.
 * Every trigger only says "look now"; running it twice in a row changes nothing the second time.
 *
 * Acting on a reset is two-phase: claim the pair with an ETag-conditional write (only one
 * reconcile can win it), look at GitHub again, and only then dispatch.
 */
import { randomUUID } from "node:crypto";
import type { LabConfig, Pair } from "../lab/config.js";
import { decide, failedRecord, type Decision, type Outcome, type PairObservation, type ResetRunFacts, type RunnerFacts } from "../lab/decide.js";
import { GitHubError, type Job, type LabGitHub, type Run, type Runner } from "../github/client.js";
import type { Logger } from "../logger.js";
import { newPairRecord, type PairEvent, type PairRecord, type Trigger } from "../lab/pair-record.js";
import { StoreConflictError, type PairStore, type StoredPair } from "../storage/tables.js";

export interface ReconcileDeps {
  config: LabConfig;
  github: LabGitHub;
  store: PairStore;
  clock: () => Date;
  logger: Logger;
  newRequestId?: () => string;
}

/** A job-completed call: this run finished; find the pairs it used. */
export interface JobReport {
  runId: number;
  runAttempt?: number;
  runnerName?: string;
}

export interface PairResult {
  id: string;
  state: PairRecord["state"];
  decision: Decision;
  jobSinceReset: boolean;
  resetRequestId: string | null;
  resetRunId: number | null;
  lastError: string | null;
  /** Set when this pair could not be handled (a Table or GitHub call failed). */
  error?: string;
}

export interface ReconcileResult {
  trigger: Trigger;
  /** False when any fact or write failed: nothing unsafe was done, but the caller should retry. */
  ok: boolean;
  errors: string[];
  pairs: PairResult[];
  /** Pairs the reported run used (job-completed only). */
  runPairs: string[];
  dispatches: number;
  githubRequests: number;
  /** Of those, answered 304 Not Modified (free of rate limit). */
  notModified: number;
  rateLimitRemaining: number | null;
  durationMs: number;
}

/** The run named by a job-completed call does not exist on GitHub. */
export class RunNotFoundError extends Error {
  constructor(readonly runId: number) {
    super(`GitHub has no run ${runId} in this repository`);
    this.name = "RunNotFoundError";
  }
}

export const MAX_CONFLICT_RETRIES = 5;
/** Older than this, the second look is taken again before the next dispatch. */
const STALE_LOOK_MS = 10_000;
export const lower = (s: string) => s.toLowerCase();

/** One look at GitHub: every runner and every unfinished job, indexed for the pairs. */
interface LabView {
  /** Runners by label (lower case): GitHub's labels are case-insensitive. */
  byLabel: Map<string, Runner[]>;
  /** Unfinished jobs by runner name (lower case). */
  jobByRunner: Map<string, Job>;
}

async function lookAtLab(github: LabGitHub): Promise<LabView | { error: string }> {
  try {
    const runners = await github.listRunners();
    const activeJobs = await github.listActiveJobs();
    const byLabel = new Map<string, Runner[]>();
    for (const runner of runners) {
      for (const label of new Set(runner.labels.map((l) => lower(l.name)))) byLabel.set(label, [...(byLabel.get(label) ?? []), runner]);
    }
    return { byLabel, jobByRunner: new Map(activeJobs.map((job) => [lower(job.runner_name ?? ""), job])) };
  } catch (error) {
    return { error: error instanceof Error ? error.message : String(error) };
  }
}

/** The pair as GitHub shows it: runners by label, busy by flag or by an unfinished job (the flag lags). */
export function observePair(pair: Pair, view: LabView | { error: string }): PairObservation {
  if ("error" in view) return { ok: false, error: `not reset: could not read GitHub (${view.error})` };
  const { jobByRunner } = view;
  const withLabel = (label: string) => view.byLabel.get(lower(label)) ?? [];
  const facts = (r: Runner): RunnerFacts => ({ name: r.name, online: r.status === "online", busy: r.busy || jobByRunner.has(lower(r.name)) });
  const vm = withLabel(pair.vmRunnerLabel);
  const job = vm.map((r) => jobByRunner.get(lower(r.name))).find((j) => j !== undefined);
  return {
    ok: true,
    vmRunners: vm.map(facts),
    hostRunners: pair.hosts.map((h) => withLabel(h.runnerLabel).map(facts)),
    jobRunId: job?.run_id ?? null,
  };
}

/** The pairs whose VM runner ran a job of the reported run, with when their last job there ended. */
async function pairsOfRun(deps: ReconcileDeps, report: JobReport, view: LabView, now: Date): Promise<Map<string, string>> {
  const run = await deps.github.getRun(report.runId);
  if (run === null) throw new RunNotFoundError(report.runId);
  const jobs = await deps.github.listRunJobs(report.runId, report.runAttempt);
  const endedAt = new Map<string, string>();
  const note = (runnerName: string, at: string) => {
    const previous = endedAt.get(lower(runnerName));
    if (previous === undefined || at > previous) endedAt.set(lower(runnerName), at);
  };
  for (const job of jobs) if (job.runner_name) note(job.runner_name, job.completed_at ?? now.toISOString());
  if (report.runnerName) note(report.runnerName, now.toISOString());

  const used = new Map<string, string>();
  for (const pair of deps.config.pairs) {
    for (const runner of view.byLabel.get(lower(pair.vmRunnerLabel)) ?? []) {
      const at = endedAt.get(lower(runner.name));
      if (at && (used.get(pair.id) ?? "") < at) used.set(pair.id, at);
    }
  }
  return used;
}

/** How far back the timer looks for finished runs: a day, and the longest perf run before that. */
const BACKSTOP_HORIZON_MS = 24 * 3_600_000;
const LONGEST_RUN_MS = 6 * 3_600_000;

/**
 * I3's backstop: jobs on a pair's VM runner that finished after the pair's last reset request and
 * that the record does not know of — their run's job-completed call never came. One listing of
 * runs completed since the oldest such request (at most a day back), and the jobs of each run not
 * read before by this process.
 */
async function unreportedJobs(deps: ReconcileDeps, stored: Map<string, StoredPair>, view: LabView, now: Date): Promise<Map<string, { runId: number; at: string }>> {
  const pairOfRunner = new Map<string, Pair>();
  for (const pair of deps.config.pairs) for (const runner of view.byLabel.get(lower(pair.vmRunnerLabel)) ?? []) pairOfRunner.set(lower(runner.name), pair);
  const horizon = now.getTime() - BACKSTOP_HORIZON_MS;
  const oldest = Math.min(...deps.config.pairs.map((p) => Date.parse(stored.get(p.id)?.record.resetDispatchedAt ?? "") || horizon));
  const runs = await deps.github.listCompletedRuns(new Date(Math.max(oldest, horizon) - LONGEST_RUN_MS));
  const found = new Map<string, { runId: number; at: string }>();
  const resetWorkflow = deps.config.resetWorkflow.workflow;
  for (const run of runs) {
    if (run.path?.endsWith(`/${resetWorkflow}`)) continue; // reset runs use host runners only
    for (const job of await deps.github.listFinishedRunJobs(run.id)) {
      const pair = pairOfRunner.get(lower(job.runner_name ?? ""));
      if (!pair || !job.completed_at) continue;
      const record = stored.get(pair.id)?.record;
      const afterReset = !record?.resetDispatchedAt || job.completed_at > record.resetDispatchedAt;
      const unknown = !record?.lastJobAt || job.completed_at > record.lastJobAt;
      if (afterReset && unknown && job.completed_at > (found.get(pair.id)?.at ?? "")) found.set(pair.id, { runId: run.id, at: job.completed_at });
    }
  }
  return found;
}

/**
 * A reset run still in progress may be done with its hosts: its last job (telling lab-reset the
 * reset ended) runs inside the same run. The reset is over when every job on the pair's host
 * runners is: success if all succeeded.
 */
async function judgeByResetJobs(github: LabGitHub, run: Run, pair: Pair): Promise<ResetRunFacts> {
  const hostLabels = new Set(pair.hosts.map((h) => lower(h.runnerLabel)));
  const hostJobs = (await github.listRunJobs(run.id)).filter((job) => job.labels.some((l) => hostLabels.has(lower(l))));
  const done = hostJobs.length > 0 && hostJobs.every((job) => job.status === "completed");
  if (!done) return { found: true, runId: run.id, status: run.status ?? "unknown", conclusion: run.conclusion, completedAt: null, url: run.html_url };
  const failed = hostJobs.find((job) => job.conclusion !== "success");
  return {
    found: true,
    runId: run.id,
    status: "completed",
    conclusion: failed ? failed.conclusion : "success",
    completedAt: hostJobs.map((job) => job.completed_at ?? "").reduce((a, b) => (a > b ? a : b)),
    url: run.html_url,
  };
}

/** What GitHub shows of each reset in flight: by run id when known, else by request id in the run's title. */
async function followResets(github: LabGitHub, stored: Map<string, StoredPair>, pairs: Pair[]): Promise<Map<string, ResetRunFacts>> {
  const facts = new Map<string, ResetRunFacts>();
  const resetting = [...stored.values()].map((s) => s.record).filter((r) => r.state === "resetting");
  const unnumbered = resetting.filter((r) => r.resetRunId === null && r.resetDispatchedAt !== null);
  let listed: Run[] | { unknown: string } = [];
  if (unnumbered.length > 0) {
    // A run is created after its dispatch; a margin covers clock skew between us and GitHub.
    const since = new Date(Math.min(...unnumbered.map((r) => Date.parse(r.resetDispatchedAt!))) - 5 * 60_000);
    try {
      listed = await github.listResetRuns(since);
    } catch (error) {
      listed = { unknown: (error as Error).message };
    }
  }
  for (const record of resetting) {
    const toFacts = (run: Run | null | undefined): ResetRunFacts =>
      run
        ? { found: true, runId: run.id, status: run.status ?? "unknown", conclusion: run.conclusion, completedAt: run.status === "completed" ? run.updated_at : null, url: run.html_url }
        : { found: false };
    if (record.resetRunId !== null) {
      try {
        const run = await github.getRun(record.resetRunId);
        const pair = pairs.find((p) => p.id === record.pairId);
        facts.set(record.pairId, run && run.status !== "completed" && pair ? await judgeByResetJobs(github, run, pair) : toFacts(run));
      } catch (error) {
        facts.set(record.pairId, { unknown: (error as Error).message });
      }
    } else if (Array.isArray(listed)) {
      const requestId = record.resetRequestId ?? "";
      facts.set(record.pairId, toFacts(listed.find((run) => requestId !== "" && (run.display_title ?? "").includes(requestId))));
    } else {
      facts.set(record.pairId, listed);
    }
  }
  return facts;
}

export async function reconcile(deps: ReconcileDeps, trigger: Trigger, report?: JobReport): Promise<ReconcileResult> {
  const started = deps.clock();
  const startStats = deps.github.stats();
  try {
    return await reconcileOnce(deps, trigger, report);
  } catch (error) {
    const stats = deps.github.stats();
    deps.logger.info(`reconcile ${JSON.stringify({ trigger, ok: false, pairs: {}, dispatches: 0, githubRequests: stats.requests - startStats.requests, notModified: stats.notModified - startStats.notModified, rateLimitRemaining: stats.rateLimitRemaining, durationMs: deps.clock().getTime() - started.getTime(), runId: report?.runId, error: (error as Error).message })}`);
    throw error;
  }
}

async function reconcileOnce(deps: ReconcileDeps, trigger: Trigger, report?: JobReport): Promise<ReconcileResult> {
  const { config, github, store, logger } = deps;
  const started = deps.clock();
  const startStats = github.stats();
  const newRequestId = deps.newRequestId ?? randomUUID;
  const errors: string[] = [];
  const results = new Map<string, PairResult>();

  const stored = new Map((await store.listPairs()).map((s) => [s.record.pairId, s]));
  const view = await lookAtLab(github);
  let runPairs = new Map<string, string>();
  if (report) {
    // The caller must learn whether its report was recorded: an unreadable run is an error, not a no-op.
    if ("error" in view) throw new GitHubError("read of runners and jobs", null, view.error);
    runPairs = await pairsOfRun(deps, report, view, started);
  }
  if ("error" in view) errors.push(`pairs ${config.pairs.map((p) => p.id).join(", ")} left alone: ${view.error}`);
  // What each pair is told about finished jobs: the reported run's, and (timer) any found unreported.
  const jobReports = new Map<string, { runId: number; at: string }>();
  if (trigger === "timer" && !("error" in view)) {
    try {
      for (const [pairId, found] of await unreportedJobs(deps, stored, view, started)) jobReports.set(pairId, found);
    } catch (error) {
      // Not knowing of a lost report makes no reset unsafe: note it and go on.
      errors.push(`looking for unreported jobs: ${(error as Error).message}`);
    }
  }
  if (report) for (const [pairId, at] of runPairs) jobReports.set(pairId, { runId: report.runId, at });
  const resetRuns = await followResets(github, stored, config.pairs);
  for (const [pairId, facts] of resetRuns) if ("unknown" in facts) errors.push(`pair ${pairId}: reset run not followed: ${facts.unknown}`);

  const inputFor = (pair: Pair, record: PairRecord | null, observation: PairObservation, requestId: string, resetRun?: ResetRunFacts) => {
    return {
      pair,
      record,
      observation,
      resetRun,
      jobReport: jobReports.get(pair.id),
      trigger,
      now: deps.clock(),
      requestId,
      freshForMinutes: config.freshForMinutes,
      resetTimeoutMinutes: config.resetTimeoutMinutes,
      maxResetAttempts: config.maxResetAttempts,
      retryBackoffMinutes: config.retryBackoffMinutes,
    };
  };

  const save = async (pair: Pair, current: StoredPair | null, outcome: Outcome): Promise<string | null> => {
    const etag = current === null ? await store.createPair(outcome.record) : await store.replacePair(outcome.record, current.etag);
    await appendEvents(deps, trigger, outcome.record, outcome.events.map((e) => ({ ...e, pairId: pair.id, at: outcome.record.updatedAt, trigger })));
    if (outcome.cancelRunId !== undefined) {
      try {
        await github.cancelRun(outcome.cancelRunId);
        logger.warn(`pair ${pair.id}: cancelled reset run ${outcome.cancelRunId}, which did not complete in time`);
      } catch (error) {
        errors.push(`pair ${pair.id}: ${(error as Error).message}; cancel run ${outcome.cancelRunId} by hand so it cannot restore the VM later`);
      }
    }
    return etag;
  };

  const record = (pair: Pair, outcome: Outcome, error?: string) => {
    const r = outcome.record;
    results.set(pair.id, {
      id: pair.id,
      state: r.state,
      decision: outcome.decision,
      jobSinceReset: r.jobSinceReset,
      resetRequestId: r.resetRequestId,
      resetRunId: r.resetRunId,
      lastError: r.lastError,
      ...(error ? { error } : {}),
    });
    if (error) errors.push(`pair ${pair.id}: ${error}`);
    if (outcome.decision === "reset-failed" || outcome.decision === "gave-up") logger.error(`pair ${pair.id}: ${outcome.record.reason}`);
  };

  // Phase 1: decide and write each pair; a dispatch decision written is a claim.
  const claims: { pair: Pair; before: StoredPair | null; resetRun: ResetRunFacts | undefined; claimEtag: string; outcome: Outcome }[] = [];
  for (const pair of config.pairs) {
    let current = stored.get(pair.id) ?? null;
    let resetRun = resetRuns.get(pair.id);
    const observation = observePair(pair, view);
    for (let attempt = 0; ; attempt++) {
      const outcome = decide(inputFor(pair, current?.record ?? null, observation, newRequestId(), resetRun));
      if (!outcome.changed) {
        record(pair, outcome);
        break;
      }
      try {
        const etag = await save(pair, current, outcome);
        if (outcome.dispatch) claims.push({ pair, before: current, resetRun, claimEtag: etag!, outcome });
        record(pair, outcome);
        break;
      } catch (error) {
        if (!(error instanceof StoreConflictError) || attempt >= MAX_CONFLICT_RETRIES) {
          record(pair, { ...outcome, record: current?.record ?? outcome.record, dispatch: false }, (error as Error).message);
          break;
        }
        // Someone else wrote the pair: decide again from what they wrote. Their reset run, if any,
        // is theirs to follow, so its facts are not reused.
        try {
          current = await store.getPair(pair.id);
        } catch (readError) {
          record(pair, { ...outcome, record: current?.record ?? outcome.record, dispatch: false }, (readError as Error).message);
          break;
        }
        resetRun = undefined;
      }
    }
  }

  // Phase 2: look again now that the claims are held; a job may have started since the first look.
  let dispatches = 0;
  if (claims.length > 0) {
    let recheck = await lookAtLab(github);
    let lookedAt = performance.now();
    if ("error" in recheck) errors.push(recheck.error);
    for (const claim of claims) {
      const { pair } = claim;
      const requestId = claim.outcome.record.resetRequestId!;
      // Dispatches are spaced (GitHub asks ≥ 1 s between writes): a look grows stale on a long list.
      if (performance.now() - lookedAt > STALE_LOOK_MS) {
        recheck = await lookAtLab(github);
        lookedAt = performance.now();
        if ("error" in recheck) errors.push(recheck.error);
      }
      // A write to the claimed record since (a webhook's job start, a job report) means news: the
      // next trigger decides with it; this one does not dispatch on an older picture.
      let written: StoredPair | null | "unreadable";
      try {
        written = await store.getPair(pair.id);
      } catch {
        written = "unreadable";
      }
      const unchanged = written !== "unreadable" && written?.etag === claim.claimEtag;
      // Same record and reset-run facts as the first decision; only GitHub's runners and jobs are new.
      const again = decide(inputFor(pair, claim.before?.record ?? null, observePair(pair, recheck), requestId, claim.resetRun));
      if (!again.dispatch || !unchanged) {
        // Released for news in the record: back to the state before the claim, the news merged in.
        const back: Outcome = again.dispatch ? { ...again, decision: "deferred-busy", dispatch: false, record: claim.before?.record ?? newPairRecord(pair.id, deps.clock()) } : again;
        const why = again.dispatch ? "the pair's record changed while it was claimed" : again.record.reason;
        await releaseClaim(deps, trigger, pair, requestId, claim.claimEtag, claim.outcome.record, back, why, record);
        continue;
      }
      dispatches++;
      const result = await github.dispatchReset(pair, requestId);
      const dispatched = result.outcome === "dispatched";
      logger.info(`pair ${pair.id}: reset ${dispatched ? "dispatched" : `dispatch ${result.outcome}`} (trigger ${trigger}, request ${requestId}${dispatched && result.runId ? `, run ${result.runId}` : ""})`);
      const updated = await patchClaim(deps, pair.id, requestId, claim.claimEtag, claim.outcome.record, (r) => {
        if (result.outcome === "dispatched") return { ...r, resetRunId: result.runId };
        if (result.outcome === "rejected") return failedRecord(r, `GitHub refused the dispatch: ${result.error}`, deps.clock(), config);
        return { ...r, lastError: `dispatch answer unknown, looking for the run by request id: ${result.error}` };
      });
      const after = updated?.record ?? claim.outcome.record;
      const dispatchEvent: PairEvent = {
        pairId: pair.id,
        at: deps.clock().toISOString(),
        kind: "dispatch",
        trigger,
        from: "resetting",
        to: after.state,
        reason: result.outcome === "dispatched" ? "reset workflow dispatched" : `dispatch ${result.outcome}: ${result.error}`,
        resetRequestId: requestId,
        resetRunId: after.resetRunId,
      };
      await appendEvents(deps, trigger, after, [dispatchEvent]);
      record(pair, { ...claim.outcome, record: after }, result.outcome === "dispatched" ? undefined : result.error);
    }
  }

  const pairs = config.pairs.map((p) => results.get(p.id)!);
  const stats = github.stats();
  const summary: ReconcileResult = {
    trigger,
    ok: errors.length === 0,
    errors,
    pairs,
    runPairs: [...runPairs.keys()],
    dispatches,
    githubRequests: stats.requests - startStats.requests,
    notModified: stats.notModified - startStats.notModified,
    rateLimitRemaining: stats.rateLimitRemaining,
    durationMs: deps.clock().getTime() - started.getTime(),
  };
  const byState: Record<string, number> = {};
  for (const p of pairs) byState[p.state] = (byState[p.state] ?? 0) + 1;
  logger.info(
    `reconcile ${JSON.stringify({ trigger, ok: summary.ok, pairs: byState, dispatches, githubRequests: summary.githubRequests, notModified: summary.notModified, rateLimitRemaining: summary.rateLimitRemaining, durationMs: summary.durationMs, runId: report?.runId })}`,
  );
  for (const error of errors) logger.error(`reconcile (trigger ${trigger}): ${error}`);
  return summary;
}

/**
 * The second look says no: put the pair back as the second look decided, keeping what others
 * wrote about its jobs meanwhile, as long as the claim is still ours (re-read on conflicts).
 */
async function releaseClaim(
  deps: ReconcileDeps,
  trigger: Trigger,
  pair: Pair,
  requestId: string,
  claimEtag: string,
  claimed: PairRecord,
  again: Outcome,
  why: string,
  record: (pair: Pair, outcome: Outcome, error?: string) => void,
) {
  const reason = `claim released before dispatch: ${why.replace(/^claim released before dispatch: /, "")}`;
  const released = await patchClaim(deps, pair.id, requestId, claimEtag, claimed, (current) => {
    const theirs = current.lastJobAt !== null && (again.record.lastJobAt ?? "") < current.lastJobAt;
    const jobSinceReset = again.record.jobSinceReset || current.jobSinceReset;
    return {
      ...again.record,
      // A job reported meanwhile makes a clean pair dirty, as decide would.
      state: jobSinceReset && again.record.state === "clean" ? "dirty" : again.record.state,
      jobSinceReset,
      lastJobRunId: theirs ? current.lastJobRunId : again.record.lastJobRunId,
      lastJobAt: theirs ? current.lastJobAt : again.record.lastJobAt,
      busyUntil: current.busyUntil,
      busyRunId: current.busyRunId,
      // The claim counted an attempt that never happened.
      attempts: Math.max(0, current.attempts - 1),
      reason,
    };
  });
  if (released === null) {
    // Left as a claim without a dispatch: it times out into `failed` and is retried, never dispatched twice.
    record(pair, { ...again, record: claimed, dispatch: false }, `could not release claim ${requestId}`);
    return;
  }
  if (!released.applied) {
    record(pair, { ...again, record: released.record, dispatch: false });
    return;
  }
  await appendEvents(deps, trigger, released.record, [
    { pairId: pair.id, at: released.record.updatedAt, kind: "state", trigger, from: "resetting", to: released.record.state, reason, resetRequestId: requestId, resetRunId: null },
  ]);
  deps.logger.warn(`pair ${pair.id}: not reset, ${reason}`);
  record(pair, { ...again, record: released.record });
}

/** Applies `change` to the pair while it still carries our request id, re-reading on conflicts. */
async function patchClaim(
  deps: ReconcileDeps,
  pairId: string,
  requestId: string,
  etag: string,
  claimed: PairRecord,
  change: (r: PairRecord) => PairRecord,
): Promise<{ record: PairRecord; applied: boolean } | null> {
  let current: StoredPair | null = { record: claimed, etag };
  for (let attempt = 0; attempt <= MAX_CONFLICT_RETRIES && current; attempt++) {
    if (current.record.resetRequestId !== requestId || current.record.state !== "resetting") return { record: current.record, applied: false };
    const next = { ...change(current.record), updatedAt: deps.clock().toISOString() };
    try {
      await deps.store.replacePair(next, current.etag);
      return { record: next, applied: true };
    } catch (error) {
      if (!(error instanceof StoreConflictError)) {
        deps.logger.error(`pair ${pairId}: Table Storage update of claim ${requestId} failed: ${(error as Error).message}`);
        return null;
      }
      current = await deps.store.getPair(pairId).catch(() => null);
    }
  }
  return null;
}

async function appendEvents(deps: ReconcileDeps, trigger: Trigger, record: PairRecord, events: PairEvent[]) {
  if (events.length === 0) return;
  try {
    await deps.store.appendEvents(events);
  } catch (error) {
    // The pair record is the truth; a lost history line must not undo a decision already stored.
    deps.logger.error(`pair ${record.pairId}: event not recorded (trigger ${trigger}): ${(error as Error).message}`);
  }
}
