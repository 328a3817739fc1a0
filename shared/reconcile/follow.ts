/**
 * Follow the resets in flight: what GitHub shows of each pair's reset run.
 */
import type { Pair } from "../lab/config.js";
import type { ResetRunFacts } from "../lab/decide.js";
import type { LabGitHub, Run } from "../github/client.js";
import type { StoredPair } from "../storage/tables.js";
import { lower } from "./observe.js";

/**
 * A reset is judged by the jobs on the pair's host runners alone (lab-reset.yml: a check, then a
 * restore, per host): the run's last job (telling lab-reset the reset ended) may still run, or
 * fail, after the VMs are restored, and must not turn a good reset into a failed one. Success if
 * every host job succeeded.
 */
async function judgeByHostJobs(github: LabGitHub, run: Run, pair: Pair): Promise<ResetRunFacts> {
  const hostLabels = new Set(pair.hosts.map((h) => lower(h.runnerLabel)));
  const hostJobs = (await github.listRunJobs(run.id)).filter((job) => job.labels.some((l) => hostLabels.has(lower(l))));
  const base = { found: true as const, runId: run.id, url: run.html_url };
  // Still running: done only once each host's check and restore have both completed (a job that
  // waits on `needs` may not be listed yet, so "every listed job completed" is not enough).
  const perHost = pair.hosts.map((h) => hostJobs.filter((job) => job.labels.some((l) => lower(l) === lower(h.runnerLabel))));
  const allListed = run.status === "completed" || perHost.every((jobs) => jobs.length >= 2);
  const done = allListed && hostJobs.length > 0 && hostJobs.every((job) => job.status === "completed");
  if (!done) {
    // A completed run without host jobs never restored anything: judge it by the run, as GitHub saw it.
    if (run.status === "completed" && hostJobs.length === 0) return { ...base, status: "completed", conclusion: run.conclusion === "success" ? "no host job ran" : run.conclusion, completedAt: run.updated_at };
    return { ...base, status: run.status ?? "unknown", conclusion: null, completedAt: null };
  }
  const failed = hostJobs.find((job) => job.conclusion !== "success");
  return { ...base, status: "completed", conclusion: failed ? failed.conclusion : "success", completedAt: hostJobs.map((job) => job.completed_at ?? "").reduce((a, b) => (a > b ? a : b)) };
}

/** What GitHub shows of each reset in flight: by run id when known, else by request id in the run's title. */
export async function followResets(github: LabGitHub, stored: Map<string, StoredPair>, pairs: Pair[]): Promise<Map<string, ResetRunFacts>> {
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
    const pair = pairs.find((p) => p.id === record.pairId);
    try {
      let run: Run | null | undefined;
      if (record.resetRunId !== null) run = await github.getRun(record.resetRunId);
      else if (Array.isArray(listed)) run = listed.find((r) => record.resetRequestId !== null && (r.display_title ?? "").includes(record.resetRequestId));
      else {
        facts.set(record.pairId, listed);
        continue;
      }
      facts.set(record.pairId, run && pair ? await judgeByHostJobs(github, run, pair) : { found: false });
    } catch (error) {
      facts.set(record.pairId, { unknown: (error as Error).message });
    }
  }
  return facts;
}
