/**
 * One reconcile: observe (the record, the recorded job facts, GitHub), decide each pair with the
 * pure `decide`, claim, then act. Triggers only record facts and say "look now"; running the
 * reconcile twice in a row changes nothing the second time.
 *
 * Acting on a reset is two-phase: claim the pair with an ETag-conditional write (only one
 * reconcile can win it), take the VM out of routing, look at GitHub and the facts again, and only
 * then dispatch. Routing is opened last, for pairs clean and idle (shared/reconcile/routing.ts);
 * then a pair out of routing too long while not busy is alerted on (shared/reconcile/routing-alert.ts).
 */
import { randomUUID } from "node:crypto";
import type { LabConfig, Pair } from "../lab/config.js";
import type { DecideInput, ResetRunFacts } from "../lab/decide.js";
import type { Trigger } from "../lab/pair-record.js";
import type { LabGitHub } from "../github/client.js";
import type { Logger } from "../logger.js";
import type { FactStore } from "../storage/facts.js";
import { jobNewsOf, type HistoryStore } from "../storage/history.js";
import { noteRunners } from "./runners.js";
import type { PairStore, StoredPair } from "../storage/tables.js";
import { dispatchClaims } from "./act.js";
import { unreportedJobs } from "./backstop.js";
import { decideAndWrite, type Claim } from "./claim.js";
import { followResets } from "./follow.js";
import { FactWindow, jobFactsByPair, type PairJobFacts } from "./job-facts.js";
import { CrossCheck, lookAtLab, observePair, pairByRunnerName, type LabLook } from "./observe.js";
import { RoutingPass } from "./routing.js";
import { alertOutOfRouting } from "./routing-alert.js";
import { earliest, nextLookFor } from "../lab/looks.js";
import { Tally, type ReconcileResult } from "./tally.js";

export type { PairResult, ReconcileResult } from "./tally.js";

export interface ReconcileDeps {
  config: LabConfig;
  github: LabGitHub;
  store: PairStore;
  facts: FactStore;
  /** The lab's history (which runner is which pair's); absent in the dry run, which writes nothing. */
  history?: Pick<HistoryStore, "recordRunners" | "recordJobs" | "prune">;
  clock: () => Date;
  logger: Logger;
  newRequestId?: () => string;
}

export { FACT_WINDOW_MS } from "./job-facts.js";

/** Everything the decisions are made from, read once at the start. */
export interface Observed {
  at: Date;
  stored: Map<string, StoredPair>;
  facts: FactWindow;
  lab: LabLook;
  jobs: Map<string, PairJobFacts>;
  resetRuns: Map<string, ResetRunFacts>;
}

export async function observe(deps: ReconcileDeps, trigger: Trigger, tally: Tally): Promise<Observed> {
  const at = deps.clock();
  const stored = new Map((await deps.store.listPairs()).map((s) => [s.record.pairId, s]));
  const facts = await FactWindow.read(deps.facts, at);
  // The cross-check of busy flags is taken where a decision needs it (act.ts, routing.ts), and by the timer, the backstop.
  const lab = await lookAtLab(deps.github, { activeJobs: trigger === "timer" });
  let jobs = new Map<string, PairJobFacts>();
  if ("error" in lab) {
    tally.errors.push(`pairs ${deps.config.pairs.map((p) => p.id).join(", ")} left alone: ${lab.error}`);
  } else {
    await noteRunners(deps, lab);
    const pairOfRunner = pairByRunnerName(deps.config.pairs, lab);
    jobs = jobFactsByPair(facts.facts, pairOfRunner);
    if (trigger === "timer") await addUnreportedJobs(deps, stored, pairOfRunner, at, jobs, tally);
  }
  const resetRuns = await followResets(deps.github, stored, deps.config.pairs, { trigger, now: at, resetTimeoutMinutes: deps.config.resetTimeoutMinutes, facts: facts.facts, lab });
  for (const [pairId, run] of resetRuns) if ("unknown" in run) tally.errors.push(`pair ${pairId}: reset run not followed: ${run.unknown}`);
  return { at, stored, facts, lab, jobs, resetRuns };
}

async function addUnreportedJobs(deps: ReconcileDeps, stored: Map<string, StoredPair>, pairOfRunner: Map<string, Pair>, at: Date, jobs: Map<string, PairJobFacts>, tally: Tally) {
  try {
    const { reports, endedJobIds, labJobs } = await unreportedJobs(deps, stored, pairOfRunner, at);
    if (labJobs.length > 0) await deps.history?.recordJobs(labJobs.map(jobNewsOf)).catch((error: unknown) => deps.logger.warn(`history: jobs the timer found not recorded: ${(error as Error).message}`));
    for (const [pairId, found] of reports) {
      const known = jobs.get(pairId);
      if (!known?.jobReport || known.jobReport.at < found.at) jobs.set(pairId, { ...known, jobReport: found });
    }
    for (const [pairId, known] of jobs) {
      const start = known.jobStart;
      if (start && start.heldUntil !== null && start.jobId != null && endedJobIds.has(start.jobId)) jobs.set(pairId, { ...known, jobStart: { ...start, heldUntil: null } });
    }
  } catch (error) {
    // Not knowing of a lost report makes no reset unsafe: note it and go on.
    tally.errors.push(`looking for unreported jobs: ${(error as Error).message}`);
  }
}

export function inputFor(deps: ReconcileDeps, trigger: Trigger, pair: Pair, seen: Observed): DecideInput {
  const { config } = deps;
  return {
    pair,
    record: seen.stored.get(pair.id)?.record ?? null,
    observation: observePair(pair, seen.lab),
    resetRun: seen.resetRuns.get(pair.id),
    ...seen.jobs.get(pair.id),
    trigger,
    now: deps.clock(),
    requestId: "",
    freshForMinutes: config.freshForMinutes,
    resetTimeoutMinutes: config.resetTimeoutMinutes,
    maxResetAttempts: config.maxResetAttempts,
    retryBackoffMinutes: config.retryBackoffMinutes,
  };
}

export async function reconcile(deps: ReconcileDeps, trigger: Trigger): Promise<ReconcileResult> {
  const startStats = deps.github.stats();
  const started = deps.clock();
  const tally = new Tally(deps.logger);
  try {
    const seen = await observe(deps, trigger, tally);
    const subjects = deps.config.pairs.map((pair) => ({ pair, input: inputFor(deps, trigger, pair, seen) }));
    const claims: Claim[] = [];
    for (const { pair, input } of subjects) {
      const claim = await decideAndWrite(deps, trigger, input, seen.stored.get(pair.id) ?? null, tally, deps.newRequestId ?? randomUUID);
      if (claim) claims.push(claim);
    }
    const crossCheck = new CrossCheck(deps.github);
    const routing = new RoutingPass(deps, trigger, seen.lab, tally, crossCheck);
    // Out of routing before the second look: no job can be assigned between the check and the restore.
    await routing.close(subjects);
    await dispatchClaims(deps, trigger, claims, crossCheck, seen.facts, tally);
    await routing.open(subjects, seen.facts);
    const stallDue = alertOutOfRouting(deps, subjects, routing, tally);
    const looks = subjects.map(({ pair, input }) => nextLookFor({ record: tally.records.get(pair.id) ?? input.record, ...(input.jobStart ? { jobStart: input.jobStart } : {}), now: deps.clock(), resetTimeoutMinutes: deps.config.resetTimeoutMinutes }));
    return summarize(deps, trigger, tally, startStats, started, earliest(stallDue, ...looks));
  } catch (error) {
    tally.errors.push((error as Error).message);
    summarize(deps, trigger, tally, startStats, started, null);
    throw error;
  }
}

function summarize(deps: ReconcileDeps, trigger: Trigger, tally: Tally, startStats: ReturnType<LabGitHub["stats"]>, started: Date, nextLook: Date | null): ReconcileResult {
  const stats = deps.github.stats();
  const pairs = deps.config.pairs.flatMap((p) => tally.results.get(p.id) ?? []);
  const result: ReconcileResult = {
    trigger,
    ok: tally.errors.length === 0,
    errors: tally.errors,
    pairs,
    dispatches: tally.dispatches,
    githubRequests: stats.requests - startStats.requests,
    notModified: stats.notModified - startStats.notModified,
    rateLimitRemaining: stats.rateLimitRemaining,
    durationMs: deps.clock().getTime() - started.getTime(),
    nextLookAt: nextLook?.toISOString() ?? null,
  };
  const byState: Record<string, number> = {};
  for (const p of pairs) byState[p.state] = (byState[p.state] ?? 0) + 1;
  const { ok, dispatches, githubRequests, notModified, rateLimitRemaining, durationMs, nextLookAt } = result;
  // Charged: the requests that cost rate limit (a 304 does not).
  const charged = githubRequests - notModified;
  deps.logger.info(`reconcile ${JSON.stringify({ trigger, ok, pairs: byState, dispatches, githubRequests, charged, notModified, rateLimitRemaining, durationMs, nextLookAt })}`);
  for (const error of tally.errors) deps.logger.error(`reconcile (trigger ${trigger}): ${error}`);
  return result;
}
