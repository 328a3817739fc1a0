/**
 * The advice (shared/report/advise.ts, replay.ts): what the replay takes from the recorded rows,
 * the changes it makes to the lab, and (the item 5) that it can be trusted: a simulated
 * lab's recorded day, replayed, gives back the day's queue waits, and with a pair added, the
 * queue waits of the larger lab simulated directly.
 */
import { describe, expect, it } from "vitest";
import { loadLabConfigFile, type LabConfig } from "../shared/lab/config.js";
import { advise, changedLab, ChangeError, MIN_JOBS, simulatedFigures } from "../shared/report/advise.js";
import { percentile } from "../shared/report/percentile.js";
import { readWorkload, type Workload } from "../shared/report/read.js";
import { replayProfile } from "../shared/report/replay.js";
import { RESET_STEP_DEFAULTS } from "../shared/sim/lab.js";
import { simulate } from "../shared/sim/simulate.js";
import { burstyProfile, type Profile } from "../shared/sim/workload.js";
import { MemoryHistoryStore, type JobRow, type ResetRow, type RunnerRow } from "../shared/storage/history.js";
import { MemoryStore } from "../shared/storage/memory.js";

const base = loadLabConfigFile("lab.config.json");
const FROM = "2026-11-23T00:00:00.000Z";
const TO = "2026-11-25T00:00:00.000Z";
const at = (minutes: number) => new Date(Date.parse(FROM) + minutes * 60_000).toISOString();

let nextJob = 1;
function job(runId: number, pairId: string, labels: string[], queued: number | null, started: number, completed: number | null): Workload["jobs"][number] {
  return { jobId: nextJob++, runId, pairId, labels, runnerName: pairId.toUpperCase(), queuedAt: queued === null ? null : at(queued), startedAt: at(started), completedAt: completed === null ? null : at(completed), conclusion: completed === null ? null : "success", touchedAt: at(started) } satisfies JobRow & { pairId: string };
}
const vm = (pairId: string, labels: string[], touched = 0): RunnerRow => ({ runnerName: pairId.toUpperCase(), pairId, role: "vm", labels, touchedAt: at(touched) });
const reset = (pairId: string, dispatched: number, endedSeconds: number, startedSeconds?: number, outcome: ResetRow["outcome"] = "ok"): ResetRow => ({
  requestId: `${pairId}-${dispatched}`,
  pairId,
  runId: null,
  dispatchedAt: at(dispatched),
  startedAt: startedSeconds === undefined ? null : at(dispatched + startedSeconds / 60),
  endedAt: at(dispatched + endedSeconds / 60),
  outcome,
  touchedAt: at(dispatched),
});

const WINDOWS = ["self-hosted", "lab", "os-windows-2022"];
const LINUX = ["self-hosted", "lab", "os-linux"];
const runners = [
  vm("vm-25-26", ["self-hosted", "Windows", "X64", "os-windows-2022", "vm-25-26", "lab"]),
  vm("vm-05-10", ["self-hosted", "Windows", "X64", "os-windows-2022", "vm-05-10"]),
  vm("vm-42-43", ["self-hosted", "Windows", "X64", "os-windows-2022", "vm-42-43", "lab"]),
  // Renamed: the newer row is the runner now; this one has no os- label, so GitHub's OS names it.
  vm("vm-11-12", ["self-hosted", "Linux", "X64", "os-linux", "vm-11-12", "lab"], 0),
  vm("vm-11-12", ["self-hosted", "Linux", "ARM64", "vm-11-12", "lab"], 60),
];

function workloadOf(jobs: Workload["jobs"], resets: ResetRow[] = [], config: LabConfig = base): Workload {
  return { from: FROM, to: TO, config, jobs, resets, runners };
}

describe("the replay of a recorded window", () => {
  it("queues a run's jobs together at their queue time, each as long as it ran, with its labels; a later-queued job of the run arrives then", () => {
    const replay = replayProfile(
      workloadOf([
        job(1, "vm-25-26", WINDOWS, 10, 12, 40),
        job(1, "vm-11-12", LINUX, 10, 10, 25.5),
        // Queued by the run after the first jobs ended (`needs:`).
        job(1, "vm-25-26", WINDOWS, 41, 41, 50),
        // No queue time seen: it arrives at its start. Still running at the window's end: until then.
        job(2, "vm-42-43", ["self-hosted", "lab", "vm-42-43"], null, 2870, null),
        // Queued before the window: arrives as it opens.
        job(3, "vm-05-10", WINDOWS, -30, 5, 20),
      ]),
    );
    expect(replay.profile.workload(1, 2)).toEqual([
      { atMinutes: 0, jobs: [{ labels: WINDOWS, minutes: 15 }] },
      { atMinutes: 10, jobs: [{ labels: WINDOWS, minutes: 28 }, { labels: LINUX, minutes: 15.5 }] },
      { atMinutes: 41, jobs: [{ labels: WINDOWS, minutes: 9 }] },
      { atMinutes: 2870, jobs: [{ labels: ["self-hosted", "lab", "vm-42-43"], minutes: 10 }] },
    ]);
    expect(replay).toMatchObject({ jobs: 5, days: 2, start: new Date(FROM) });
  });

  it("gives each simulated VM the labels its runner last had, the routing label put back, and its OS label", () => {
    const { profile, vmRunners } = replayProfile(workloadOf([]));
    const labelsOf = (id: string) => profile.vmLabels!(base.pairs.find((p) => p.id === id)!);
    expect(labelsOf("vm-25-26")).toEqual(["self-hosted", "Windows", "X64", "os-windows-2022", "vm-25-26", "lab"]);
    // Recorded while out of routing: the simulated app takes `lab` off and puts it back itself.
    expect(labelsOf("vm-05-10")).toEqual(["self-hosted", "Windows", "X64", "os-windows-2022", "vm-05-10", "lab"]);
    expect(labelsOf("vm-11-12")).toEqual(["self-hosted", "Linux", "ARM64", "vm-11-12", "lab"]);
    expect([...vmRunners].map(([id, r]) => [id, r.osLabel])).toEqual([
      ["vm-25-26", "os-windows-2022"],
      ["vm-05-10", "os-windows-2022"],
      ["vm-42-43", "os-windows-2022"],
      ["vm-11-12", "linux"],
    ]);
  });

  it("replays another routing label as the simulator's lab, on jobs and runners alike", () => {
    const config = { ...base, routingLabels: ["perf"] };
    const workload = { ...workloadOf([job(1, "vm-25-26", ["self-hosted", "perf", "os-windows-2022"], 0, 0, 5)], [], config), runners: [vm("vm-25-26", ["self-hosted", "Windows", "os-windows-2022", "vm-25-26", "perf"])] };
    const { profile } = replayProfile(workload);
    expect(profile.workload(1, 2)[0]!.jobs[0]!.labels).toEqual(WINDOWS);
    expect(profile.vmLabels!(base.pairs[0]!)).toEqual(["self-hosted", "Windows", "os-windows-2022", "vm-25-26", "lab"]);
  });

  it("makes a reset's restore as long as the recorded resets, less the simulated steps around it", () => {
    // From the dispatch: pickup 20 s, check 15 s, next step 5 s before the restores; from the first host job's start: 20 s.
    const resets = [reset("vm-25-26", 60, 400), reset("vm-05-10", 120, 410), reset("vm-42-43", 180, 320, 20), reset("vm-11-12", 240, 2000, undefined, "failed")];
    expect(replayProfile(workloadOf([], resets))).toMatchObject({ resetMinutesPerHost: 6, resetMinutesFrom: "measured" });
    expect(replayProfile(workloadOf([], resets.slice(3)))).toMatchObject({ resetMinutesPerHost: 6, resetMinutesFrom: "default" });
  });
});

describe("the proposed lab", () => {
  const replay = replayProfile(workloadOf([]));

  it("adds pairs like the first pair of the OS, under new ids and labels, and says so in words", () => {
    const { replay: proposed, words } = changedLab(replay, { addPairs: 2, os: "OS-WINDOWS-2022", remove: ["vm-42-43"] });
    expect(words).toBe("+2 pairs like vm-25-26 (os-windows-2022), without vm-42-43");
    expect(proposed.profile.config.pairs.map((p) => p.id)).toEqual(["vm-25-26", "vm-05-10", "vm-11-12", "vm-added-1", "vm-added-2"]);
    const added = proposed.profile.config.pairs[3]!;
    expect(added).toEqual({
      id: "vm-added-1",
      vmRunnerLabel: "vm-added-1",
      hosts: [
        { runnerLabel: "parent=vm-added-1-parent\\localadminuser", vmName: "netperf-windows-2022-client" },
        { runnerLabel: "child=vm-added-1-child\\localadminuser", vmName: "netperf-windows-2022-server" },
      ],
    });
    expect(proposed.profile.vmLabels!(added)).toEqual(["self-hosted", "Windows", "X64", "os-windows-2022", "vm-added-1", "lab"]);
    // The lab as it is stays as it was.
    expect(replay.profile.config.pairs).toHaveLength(4);
  });

  it("refuses, in one line naming what there is, a pair or an OS the lab lacks, an OS left unsaid, and no pair left", () => {
    const refusal = (change: Parameters<typeof changedLab>[1]) => {
      try {
        changedLab(replay, change);
      } catch (error) {
        expect(error).toBeInstanceOf(ChangeError);
        return (error as Error).message;
      }
      return "accepted";
    };
    expect(refusal({ remove: ["vm-99"] })).toBe("no pair vm-99 in the lab; its pairs are vm-25-26, vm-05-10, vm-42-43, vm-11-12");
    expect(refusal({ addPairs: 1, os: "os-macos" })).toBe("no pair's VM runs os-macos; the lab's VMs run os-windows-2022 (3 pairs), linux (1 pair)");
    expect(refusal({ addPairs: 1 })).toBe("say which OS the added pairs run with --os; the lab's VMs run os-windows-2022 (3 pairs), linux (1 pair)");
    expect(refusal({ remove: base.pairs.map((p) => p.id) })).toBe("removing every pair leaves no lab to simulate; keep at least one, or add pairs");
  });

  it("says so when no VM of the proposed lab can take some recorded jobs", async () => {
    const jobs = Array.from({ length: MIN_JOBS }, (_, i) => job(i + 1, "vm-11-12", ["self-hosted", "lab", "vm-11-12"], i * 60, i * 60, i * 60 + 10));
    const advice = await advise(workloadOf(jobs), { remove: ["vm-11-12"] });
    expect(advice).toMatchObject({ tooFewJobs: false, current: { jobsNotStarted: 0 }, proposed: { change: "without vm-11-12", jobsNotStarted: MIN_JOBS } });
    expect(advice.tooFewJobs === false && advice.notes).toEqual([
      "no reset ended ok in the window: resets simulated with the simulator's 6 min restore per host",
      "no VM of the proposed lab carries every label of lab, self-hosted, vm-11-12: those jobs never start there",
    ]);
  }, 30_000);

  it("says there is too little to say anything below 20 jobs or a day, and simulates nothing", async () => {
    const jobs = Array.from({ length: MIN_JOBS - 1 }, (_, i) => job(i + 1, "vm-25-26", WINDOWS, i * 60, i * 60, i * 60 + 10));
    expect(await advise(workloadOf(jobs), {})).toEqual({
      workload: { jobs: 19, days: 2, from: FROM, to: TO },
      tooFewJobs: true,
      message: "19 perf jobs in 2 days: too few to say anything (at least 20 jobs over 1 day are needed); ask for more --days, or wait for more history",
    });
    const halfDay = { ...workloadOf([...jobs, ...jobs]), to: at(720) };
    expect(await advise(halfDay, {})).toMatchObject({ tooFewJobs: true, message: expect.stringMatching(/^38 perf jobs in 0\.5 days: too few/) });
  });
});

/**
 * The trust test. A simulated day of the busy 16-pair lab (this app on the simulator,
 * the recommended set-up) writes its history; the advice reads it back as GET /api/workload
 * would and replays it:
 * (a) with no change, its queue wait p95 is the day's own (the simulator's own figure) within 10 %;
 * (b) with one Windows pair added, it is that of the larger lab simulated directly within 15 %;
 * and with no change each label set's p95 is the day's within 15 %.
 *
 * For (b) the larger lab runs the original profile's own workload generator, the same seeded
 * arrivals, with a pair more in its config: the ground truth the advice never sees. Replaying the
 * recorded arrivals through a larger config would check only the cloning, since that is what the
 * advice itself does. So (b) checks the whole way: what the history keeps of each job (queue
 * time, labels, duration), of the runners (labels) and of the resets (duration), and how the
 * advice clones a pair, against the larger lab itself. A busy day (about 270 jobs, queues that
 * build in every burst) rather than the seed lab's week: with 4 pairs and a few long queues the
 * seed lab's p95 moves by 10-20 % with the simulator's seed alone, so 15 % would test the dice.
 */
describe("the advice can be trusted (a simulated day of the busy lab, replayed)", () => {
  it("reproduces the day's queue wait p95 within 10 %, and the larger lab's within 15 %", async () => {
    const profile = burstyProfile(base);
    const days = 1;
    const store = new MemoryStore();
    let history: MemoryHistoryStore | undefined;
    const day = await simulate({ profile, policy: "lab-reset", seed: 1, days, store, history: (clock) => (history = new MemoryHistoryStore(clock)) });
    const workload = await readWorkload({ config: profile.config, store, history: history!, clock: () => new Date(day.end) }, days);
    expect(workload.jobs).toHaveLength(day.metrics.perfJobsStarted);

    const advice = await advise(workload, { addPairs: 1, os: "os-windows-2022" });
    if (advice.tooFewJobs) throw new Error(advice.message);
    const larger = await simulate({ profile: withPairLike(profile, "os-windows-2022"), policy: "lab-reset", seed: 1, days });

    const p95 = (minutes: number[]) => percentile(minutes, 95) * 60;
    const off = (replayed: number, actual: number) => Math.abs(replayed / actual - 1);
    const measured = { a: off(advice.current.queueWaitP95Seconds, p95(day.metrics.queueWaitMinutes)), b: off(advice.proposed!.queueWaitP95Seconds, p95(larger.metrics.queueWaitMinutes)) };
    console.log(`advice trust: (a) replay p95 ${advice.current.queueWaitP95Seconds} s vs the day's ${Math.round(p95(day.metrics.queueWaitMinutes))} s: ${(100 * measured.a).toFixed(1)} % off; (b) +1 pair p95 ${advice.proposed!.queueWaitP95Seconds} s vs the larger lab's ${Math.round(p95(larger.metrics.queueWaitMinutes))} s: ${(100 * measured.b).toFixed(1)} % off`);
    expect(measured.a).toBeLessThan(0.1);
    expect(measured.b).toBeLessThan(0.15);
    // Per runs-on label set too (those with jobs enough for a p95): a replay that lost the jobs'
    // or the runners' labels pools the queues, and the overall p95 alone may not show it.
    const byLabels = simulatedFigures(day, workload.jobs.length).byLabels.filter((b) => b.jobs >= 50);
    expect(byLabels.length).toBe(2);
    for (const set of byLabels) {
      const replayed = advice.current.byLabels.find((b) => b.labels === set.labels);
      console.log(`advice trust: ${set.labels}: replay p95 ${replayed?.p95Seconds} s vs the day's ${set.p95Seconds} s`);
      expect(off(replayed?.p95Seconds ?? 0, set.p95Seconds), set.labels).toBeLessThan(0.15);
    }
    // The lab the advice replays is the lab that ran: as busy, and reset as often.
    expect(advice.current.utilization).toBeCloseTo(advice.recorded.utilization, 2);
    expect(off(advice.current.resetsPerDay, day.metrics.pairResets / days)).toBeLessThan(0.1);
    // Its restores as long as the day's (the seconds the app takes to see a reset end are left in):
    // queue waits alone would let a tenth too long pass.
    expect(advice.resetMinutesFrom).toBe("measured");
    expect(Math.abs(advice.resetMinutesPerHost - RESET_STEP_DEFAULTS.resetMinutesPerHost)).toBeLessThan(0.1);
    expect(advice.proposed!.change).toBe("+1 pair like vm-101-102 (os-windows-2022)");
  }, 300_000);
});

/** The profile with one more pair whose VM runs `os`, named as the advice names it, on the same workload generator. */
function withPairLike(profile: Profile, os: string): Profile {
  const like = profile.config.pairs.find((p) => profile.osLabel(p) === os)!;
  const added = { id: "vm-added-1", vmRunnerLabel: "vm-added-1", hosts: like.hosts.map((h) => ({ ...h, runnerLabel: `${h.runnerLabel.split("=")[0]}=vm-added-1-${h.runnerLabel.split("=")[0]}\\localadminuser` })) };
  return { ...profile, config: { ...profile.config, pairs: [...profile.config.pairs, added] }, osLabel: (pair) => (pair.id === added.id ? os : profile.osLabel(pair)) };
}
