/**
 * Follow the resets in flight: what GitHub shows of each pair's reset run.
 */
import type { Pair } from "../lab/config.js";
import type { ResetRunFacts } from "../lab/decide.js";
import { GitHubError, type Job, type LabGitHub, type Run } from "../github/client.js";
import type { PairRecord, Trigger } from "../lab/pair-record.js";
import type { StoredFact } from "../storage/facts.js";
import type { StoredPair } from "../storage/tables.js";
import { Lru } from "../lru.js";
import { lower, type LabLook } from "./observe.js";

/**
 * A reset is judged by the jobs on the pair's host runners alone (lab-reset.yml: a check, then a
 * restore, per host): the run's last job (telling lab-reset the reset ended) may still run, or
 * fail, after the VMs are restored, and must not turn a good reset into a failed one. Success if
 * every host job succeeded. The run itself is read only when its jobs cannot tell: every listed
 * host job completed, but not all are listed (a job that waits on `needs` may not be yet), or none is.
 */
function judgeByHostJobs(jobs: Job[], run: Run | null, runId: number, pair: Pair): ResetRunFacts | "read the run" {
  const hostLabels = new Set(pair.hosts.map((h) => lower(h.runnerLabel)));
  const hostJobs = jobs.filter((job) => job.labels.some((l) => hostLabels.has(lower(l))));
  const url = run?.html_url ?? jobs.find((j) => j.html_url)?.html_url?.replace(/\/job\/\d+$/, "") ?? `run ${runId}`;
  const base = { found: true as const, runId, url };
  const perHost = pair.hosts.map((h) => hostJobs.filter((job) => job.labels.some((l) => lower(l) === lower(h.runnerLabel))));
  const running = hostJobs.some((job) => job.status !== "completed");
  if (run === null && !running && !perHost.every((list) => list.length >= 2)) return "read the run";
  const allListed = run?.status === "completed" || perHost.every((list) => list.length >= 2);
  const done = allListed && hostJobs.length > 0 && !running;
  if (!done) {
    // A completed run without host jobs never restored anything: judge it by the run, as GitHub saw it.
    if (run?.status === "completed" && hostJobs.length === 0) return { ...base, status: "completed", conclusion: run.conclusion === "success" ? "no host job ran" : run.conclusion, completedAt: run.updated_at };
    return { ...base, status: run?.status ?? "in_progress", conclusion: null, completedAt: null };
  }
  const failed = hostJobs.find((job) => job.conclusion !== "success");
  return { ...base, status: "completed", conclusion: failed ? failed.conclusion : "success", completedAt: hostJobs.map((job) => job.completed_at ?? "").reduce((a, b) => (a > b ? a : b)) };
}

/** A numbered reset run: its jobs first, the run only if they cannot tell (see judgeByHostJobs). */
async function judgeRun(github: LabGitHub, runId: number, pair: Pair): Promise<ResetRunFacts> {
  let jobs: Job[];
  try {
    jobs = await github.listRunJobs(runId);
  } catch (error) {
    if (error instanceof GitHubError && error.status === 404) return { found: false };
    throw error;
  }
  const verdict = judgeByHostJobs(jobs, null, runId, pair);
  if (verdict !== "read the run") return verdict;
  const run = await github.getRun(runId);
  if (run === null) return { found: false };
  return judgeByHostJobs(jobs, run, runId, pair) as ResetRunFacts;
}

/** When this process last read each reset in flight (by request id): a later read is needed only for news. */
const lastFollowed = new WeakMap<LabGitHub, Lru<string, number>>();
/** Facts are stamped by the instance that recorded them; clocks of instances differ by less than this. */
const CLOCK_MARGIN_MS = 2_000;
const MAX_FOLLOWED = 1_000;

/** Notes that the reset `requestId` was read from GitHub (or dispatched) at `at`. */
export function markFollowed(github: LabGitHub, requestId: string, at: Date): void {
  let map = lastFollowed.get(github);
  if (map === undefined) lastFollowed.set(github, (map = new Lru<string, number>(MAX_FOLLOWED)));
  map.set(requestId, at.getTime());
}

export interface FollowContext {
  trigger: Trigger;
  now: Date;
  resetTimeoutMinutes: number;
  /** This reconcile's facts and first look: a host job's end recorded since the last read is news. */
  facts: StoredFact[];
  lab: LabLook;
}

/**
 * Whether a reset in flight is worth a read now. GitHub is asked only when its answer can have
 * changed a decision: the run is not found yet; the timer's look, or a job-completed call; the reset is past its time
 * limit; or, since this process last read it, a job of the run or of one of the pair's hosts
 * ended (a reset step, the run's report), or a job ran on the pair's VM. Otherwise the decision waits ("already resetting") at no cost.
 */
export function worthFollowing(github: LabGitHub, record: PairRecord, pair: Pair | undefined, context: FollowContext): boolean {
  // A job-completed call is news of a run's end: the reset workflow's own report makes one.
  if (context.trigger === "timer" || context.trigger === "job-completed" || record.resetRunId === null || record.resetRequestId === null || pair === undefined) return true;
  const last = lastFollowed.get(github)?.get(record.resetRequestId);
  if (last === undefined) return true;
  const dispatchedAt = Date.parse(record.resetDispatchedAt ?? "");
  if (!(context.now.getTime() < dispatchedAt + context.resetTimeoutMinutes * 60_000)) return true;
  if ("error" in context.lab) return true;
  const view = context.lab;
  const namesOf = (label: string) => (view.byLabel.get(lower(label)) ?? []).map((r) => lower(r.name));
  const hosts = new Set(pair.hosts.flatMap((h) => namesOf(h.runnerLabel)));
  const vms = new Set(namesOf(pair.vmRunnerLabel));
  const since = new Date(last - CLOCK_MARGIN_MS).toISOString();
  // News: a job of the run, or of a host, ended; or a job ran on the VM (it is back from its restore).
  return context.facts.some(({ fact }) => fact.recordedAt >= since && (fact.runId === record.resetRunId || (fact.phase === "ended" && hosts.has(lower(fact.runnerName))) || vms.has(lower(fact.runnerName))));
}

/** What GitHub shows of each reset in flight worth a read: by run id when known, else by request id in the run's title. */
export async function followResets(github: LabGitHub, stored: Map<string, StoredPair>, pairs: Pair[], context: FollowContext): Promise<Map<string, ResetRunFacts>> {
  const facts = new Map<string, ResetRunFacts>();
  const resetting = [...stored.values()].map((s) => s.record).filter((r) => r.state === "resetting" && worthFollowing(github, r, pairs.find((p) => p.id === r.pairId), context));
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
    const pair = pairs.find((p) => p.id === record.pairId);
    try {
      if (record.resetRunId !== null && pair) facts.set(record.pairId, await judgeRun(github, record.resetRunId, pair));
      else if (Array.isArray(listed)) {
        const run = listed.find((r) => record.resetRequestId !== null && (r.display_title ?? "").includes(record.resetRequestId));
        facts.set(record.pairId, run && pair ? (judgeByHostJobs(await github.listRunJobs(run.id), run, run.id, pair) as ResetRunFacts) : { found: false });
      } else {
        facts.set(record.pairId, listed);
        continue;
      }
      if (record.resetRequestId !== null) markFollowed(github, record.resetRequestId, context.now);
    } catch (error) {
      facts.set(record.pairId, { unknown: (error as Error).message });
    }
  }
  return facts;
}
