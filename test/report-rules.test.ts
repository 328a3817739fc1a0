/** The report's rules on hand-made history: kills, holds, routing, offline time and a pair's first record. */
import { describe, expect, it } from "vitest";
import type { Pair } from "../shared/lab/config.js";
import { newPairRecord, type PairEvent, type PairState } from "../shared/lab/pair-record.js";
import { buildReport } from "../shared/report/report.js";
import { recentReport } from "../shared/report/read.js";
import type { JobRow, LabHistory, ResetRow } from "../shared/storage/history.js";

const pair: Pair = { id: "vm-1-2", vmRunnerLabel: "vm-1-2", hosts: [{ runnerLabel: "parent=h1\\u", vmName: "a" }, { runnerLabel: "child=h2\\u", vmName: "b" }] };
const t = (hhmm: string) => `2026-12-01T${hhmm}:00.000Z`;
const from = new Date(t("10:00"));
const to = new Date(t("12:00"));
const runners: LabHistory["runners"] = [
  { runnerName: "VM-1-2", pairId: pair.id, role: "vm", labels: ["self-hosted", "lab"], touchedAt: t("09:00") },
  { runnerName: "H1", pairId: pair.id, role: "host", labels: ["parent=h1\\u"], touchedAt: t("09:00") },
];
const job = (id: number, startedAt: string, completedAt: string | null, conclusion = "success"): JobRow => ({
  jobId: id, runId: id, labels: ["self-hosted", "lab"], runnerName: "VM-1-2", queuedAt: startedAt, startedAt, completedAt, conclusion, touchedAt: startedAt,
});
const reset = (id: string, dispatchedAt: string, endedAt: string | null, outcome: "ok" | "failed" | null = "ok"): ResetRow => ({
  requestId: id, pairId: pair.id, runId: null, dispatchedAt, startedAt: null, endedAt, outcome, touchedAt: dispatchedAt,
});
const event = (at: string, from: PairState | null, to: PairState, extra: Partial<PairEvent> = {}): PairEvent => ({
  pairId: pair.id, at, kind: "state", trigger: "timer", from, to, reason: "", resetRequestId: null, resetRunId: null, ...extra,
});
const build = (history: Partial<LabHistory>, events: PairEvent[], state: PairState = "clean") =>
  buildReport({ from, to, pairs: [pair], history: { jobs: [], resets: [], runners, ...history }, events: new Map([[pair.id, events]]), records: new Map([[pair.id, { ...newPairRecord(pair.id, to), state }]]) });

describe("the capacity report's rules", () => {
  it("counts a job that failed while its pair was being reset as killed by the reset, and its start as dirty", () => {
    const report = build({ jobs: [job(1, t("10:30"), t("10:50"), "cancelled")], resets: [reset("r", t("10:40"), t("10:55"))] }, [event(t("09:00"), "resetting", "clean")]);
    expect(report.jobs).toEqual({ count: 1, dirtyStarts: 0, killedByReset: 1 });
    const late = build({ jobs: [job(1, t("10:42"), t("10:50"), "failure")], resets: [reset("r", t("10:40"), t("10:55"))] }, []);
    expect(late.jobs).toEqual({ count: 1, dirtyStarts: 1, killedByReset: 1 });
    // A successful job is not killed, whatever ran meanwhile.
    expect(build({ jobs: [job(1, t("10:30"), t("10:50"))], resets: [reset("r", t("10:40"), t("10:55"))] }, []).jobs.killedByReset).toBe(0);
  });

  it("counts idle time with routing closed or a hold as out of routing, offline as offline", () => {
    const report = build({}, [
      event(t("10:30"), "clean", "clean", { kind: "routing", routing: "closed" }),
      event(t("11:00"), "clean", "clean", { kind: "routing", routing: "open" }),
      event(t("11:15"), "clean", "clean", { kind: "hold", held: true }),
      event(t("11:30"), "clean", "offline", { held: false }),
    ]);
    const [p] = report.pairs;
    expect(p!.cleanIdleShare).toBeCloseTo(45 / 120, 9);
    expect(p!.outOfRoutingIdleShare).toBeCloseTo(45 / 120, 9);
    expect(p!.offlineShare).toBeCloseTo(30 / 120, 9);
  });

  it("measures a pair from its first record: the time before it is no one's share", () => {
    const report = build({ jobs: [job(1, t("11:10"), t("11:40"))] }, [event(t("11:00"), null, "clean")]);
    const [p] = report.pairs;
    expect(p!.recordedSeconds).toBe(3600);
    expect(p!.busyShare).toBeCloseTo(0.5, 9);
    expect(p!.cleanIdleShare).toBeCloseTo(0.5, 9);
  });

  it("opens the window in the record's state when no event falls inside it, and a first job on a never-reset pair is a dirty start", () => {
    const quiet = build({}, [], "dirty");
    expect(quiet.pairs[0]).toMatchObject({ outOfRoutingIdleShare: 1, recordedSeconds: 7200 });
    const first = build({ jobs: [job(1, t("11:00"), t("11:10"))] }, [], "dirty");
    expect(first.jobs.dirtyStarts).toBe(1);
  });

  it("counts only perf jobs: a host job of a reset run is not one", () => {
    const host: JobRow = { ...job(9, t("10:20"), t("10:30")), runnerName: "H1" };
    expect(build({ jobs: [host] }, []).jobs.count).toBe(0);
  });
});

describe("a pair's first record", () => {
  it("does not count a start before the pair had any record, and counts one after a first record that said dirty", () => {
    const before = build({ jobs: [job(1, t("10:30"), t("10:40"))] }, [event(t("10:31"), null, "busy")]);
    expect(before.jobs.dirtyStarts).toBe(0);
    const after = build({ jobs: [job(1, t("10:30"), t("10:40"))] }, [event(t("10:20"), null, "dirty")]);
    expect(after.jobs.dirtyStarts).toBe(1);
  });
});

describe("the status page's report", () => {
  it("is read from storage at most once per five minutes of the app's clock, and again after a failed read", async () => {
    const clock = { now: new Date("2026-12-01T12:00:00.000Z") };
    let reads = 0;
    let fail = false;
    const history = { read: () => (reads++, fail ? Promise.reject(new Error("503")) : Promise.resolve({ jobs: [], resets: [], runners })) };
    const store = { listPairs: () => Promise.resolve([]), listEventsSince: () => Promise.resolve([]) };
    const runtime = { config: { pairs: [pair] }, store, history, clock: () => clock.now };
    await recentReport(runtime, 7);
    await recentReport(runtime, 7);
    expect(reads).toBe(1);
    await recentReport(runtime, 1);
    expect(reads).toBe(2);
    clock.now = new Date("2026-12-01T12:05:00.000Z");
    fail = true;
    await expect(recentReport(runtime, 7)).rejects.toThrow("503");
    fail = false;
    await recentReport(runtime, 7);
    expect(reads).toBe(4);
  });
});
