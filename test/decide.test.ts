import { describe, expect, it } from "vitest";
import { decide, type DecideInput, type PairObservation, type RunnerFacts } from "../shared/lab/decide.js";
import { newPairRecord, type PairRecord } from "../shared/lab/pair-record.js";
import { seedConfig } from "./support/lab.js";

const pair = seedConfig.pairs.find((p) => p.id === "vm-42-43")!;
const now = new Date("2026-11-27T12:00:00.000Z");
const ago = (minutes: number) => new Date(now.getTime() - minutes * 60_000).toISOString();

const runner = (name: string, over: Partial<RunnerFacts> = {}): RunnerFacts => ({ name, online: true, busy: false, ...over });
const idle = (over: Partial<Extract<PairObservation, { ok: true }>> = {}): PairObservation => ({
  ok: true,
  vmRunners: [runner("VM-42-43")],
  hostRunners: [[runner("RR1-NETPERF-42")], [runner("RR1-NETPERF-43")]],
  jobRunId: null,
  ...over,
});
const record = (over: Partial<PairRecord> = {}): PairRecord => ({ ...newPairRecord(pair.id, new Date(ago(600))), ...over });
const clean = (completedMinutesAgo: number) =>
  record({ state: "clean", jobSinceReset: false, resetCompletedAt: ago(completedMinutesAgo), resetRequestId: "old", resetDispatchedAt: ago(completedMinutesAgo + 5) });
const resetting = (dispatchedMinutesAgo: number, over: Partial<PairRecord> = {}) =>
  record({ state: "resetting", resetRequestId: "req-1", resetDispatchedAt: ago(dispatchedMinutesAgo), attempts: 1, ...over });

function run(over: Partial<DecideInput>) {
  return decide({
    pair,
    record: null,
    observation: idle(),
    trigger: "timer",
    now,
    requestId: "req-new",
    freshForMinutes: 60,
    resetTimeoutMinutes: 30,
    maxResetAttempts: 3,
    retryBackoffMinutes: 15,
    ...over,
  });
}

describe("decide", () => {
  it("resets a pair with no stored history (it counts as dirty)", () => {
    const out = run({ record: null, trigger: "job-completed" });
    expect(out).toMatchObject({ decision: "reset-dispatched", dispatch: true, record: { state: "resetting", resetRequestId: "req-new", attempts: 1 } });
  });

  it("does not reset a pair whose VM runner reports busy", () => {
    const out = run({ record: record(), observation: idle({ vmRunners: [runner("VM-42-43", { busy: true })] }) });
    expect(out).toMatchObject({ decision: "deferred-busy", dispatch: false, record: { state: "busy", jobSinceReset: true } });
  });

  it("does not reset a pair whose VM has an unfinished job while the busy flag still says idle", () => {
    const out = run({ record: clean(600), observation: idle({ jobRunId: 77 }) });
    expect(out).toMatchObject({ decision: "deferred-busy", dispatch: false, record: { state: "busy", lastJobRunId: 77, lastJobAt: now.toISOString() } });
  });

  it("keeps a pair busy that a webhook reported starting a job, while GitHub still shows the VM idle", () => {
    const marked = record({ state: "busy", jobSinceReset: true, busyUntil: ago(-10), busyRunId: 5 });
    expect(run({ record: marked, trigger: "timer" })).toMatchObject({ decision: "deferred-busy", dispatch: false });
    // Another run's end does not release it (the VM may have moved on to run 5's job)...
    expect(run({ record: marked, trigger: "webhook", jobReport: { runId: 4, at: ago(0) } }).decision).toBe("deferred-busy");
    // ...that job's own end does; so does the hold running out.
    expect(run({ record: marked, trigger: "webhook", jobReport: { runId: 5, at: ago(0) } }).decision).toBe("reset-dispatched");
    expect(run({ record: { ...marked, busyUntil: ago(1) }, trigger: "timer" }).decision).toBe("reset-dispatched");
  });

  it.each([
    ["the VM runner is missing", idle({ vmRunners: [] }), /no runner has label vm-42-43/],
    ["the VM runner is offline", idle({ vmRunners: [runner("VM-42-43", { online: false })] }), /VM runner VM-42-43 is offline/],
    ["a host runner is missing", idle({ hostRunners: [[runner("RR1-NETPERF-42")], []] }), /no host runner has label parent=rr1-netperf-43/],
    ["a host runner is offline", idle({ hostRunners: [[runner("RR1-NETPERF-42", { online: false })], [runner("RR1-NETPERF-43")]] }), /RR1-NETPERF-42 is offline/],
    ["a host runner is busy", idle({ hostRunners: [[runner("RR1-NETPERF-42")], [runner("RR1-NETPERF-43", { busy: true })]] }), /RR1-NETPERF-43 is busy/],
  ])("records offline and does not reset when %s", (_, observation, reason) => {
    const out = run({ record: record(), observation });
    expect(out.decision).toBe("skipped-offline");
    expect(out.dispatch).toBe(false);
    expect(out.record.state).toBe("offline");
    expect(out.record.reason).toMatch(reason);
  });

  it("fails closed when GitHub could not be read: no dispatch, state kept, error recorded", () => {
    const out = run({ record: record({ state: "dirty" }), observation: { ok: false, error: "GitHub GET runners failed with 500" } });
    expect(out).toMatchObject({ decision: "deferred-unknown", dispatch: false, record: { state: "dirty", lastError: "GitHub GET runners failed with 500" } });
  });

  it("never dispatches while a reset is in flight, even for a busy-looking or dirty pair", () => {
    const out = run({ record: resetting(5), resetRun: { found: true, runId: 9, status: "in_progress", conclusion: null, completedAt: null, url: "u" } });
    expect(out).toMatchObject({ decision: "already-resetting", dispatch: false, record: { state: "resetting", resetRunId: 9 } });
    expect(run({ record: resetting(5) }).decision).toBe("already-resetting");
    expect(run({ record: resetting(500), resetRun: { unknown: "timeout" } }).decision).toBe("already-resetting");
  });

  it("marks a pair clean when its reset run succeeded", () => {
    const out = run({ record: resetting(10, { resetRunId: 9 }), resetRun: { found: true, runId: 9, status: "completed", conclusion: "success", completedAt: ago(2), url: "u" }, trigger: "job-completed" });
    expect(out).toMatchObject({ decision: "not-needed", record: { state: "clean", jobSinceReset: false, attempts: 0, resetCompletedAt: ago(2), lastError: null } });
    expect(out.events).toEqual([expect.objectContaining({ kind: "state", from: "resetting", to: "clean" })]);
  });

  it("keeps a pair dirty when a job ended on it after the reset was dispatched", () => {
    const out = run({
      record: resetting(10, { resetRunId: 9, lastJobAt: ago(1) }),
      resetRun: { found: true, runId: 9, status: "completed", conclusion: "success", completedAt: ago(3), url: "u" },
    });
    expect(out.record.jobSinceReset).toBe(true);
    expect(out.decision).toBe("reset-dispatched");
  });

  it("marks a pair failed when its reset run concluded otherwise, and waits for the next trigger", () => {
    const out = run({ record: resetting(10, { resetRunId: 9 }), resetRun: { found: true, runId: 9, status: "completed", conclusion: "failure", completedAt: ago(1), url: "https://x/runs/9" } });
    expect(out).toMatchObject({ decision: "reset-failed", dispatch: false, record: { state: "failed" } });
    expect(out.record.lastError).toMatch(/reset run 9 ended with conclusion "failure".*https:\/\/x\/runs\/9/);
  });

  it("marks a pair failed when no reset completes within resetTimeoutMinutes", () => {
    const inFlight = { found: true as const, runId: 9, status: "queued", conclusion: null, completedAt: null, url: "u" };
    expect(run({ record: resetting(29, { resetRunId: 9 }), resetRun: inFlight }).decision).toBe("already-resetting");
    const out = run({ record: resetting(31, { resetRunId: 9 }), resetRun: inFlight });
    expect(out).toMatchObject({ decision: "reset-failed", record: { state: "failed" }, cancelRunId: 9 });
    expect(out.record.lastError).toMatch(/did not complete within 30 minutes/);
  });

  it("recovers a claim whose dispatch never produced a run (crash between claim and dispatch)", () => {
    const out = run({ record: resetting(31), resetRun: { found: false } });
    expect(out).toMatchObject({ decision: "reset-failed", record: { state: "failed" } });
    expect(out.record.lastError).toMatch(/no reset run for request req-1/);
    expect(run({ record: resetting(10), resetRun: { found: false } }).decision).toBe("already-resetting");
  });

  it("retries a failed pair at the first trigger after its backoff", () => {
    const failed = record({ state: "failed", attempts: 1, lastError: "boom", retryAfter: ago(-5) });
    expect(run({ record: failed, trigger: "job-completed" })).toMatchObject({ decision: "retry-later", dispatch: false });
    const out = run({ record: { ...failed, retryAfter: ago(1) }, trigger: "job-completed" });
    expect(out).toMatchObject({ decision: "reset-dispatched", record: { state: "resetting", attempts: 2 } });
  });

  it("doubles the backoff after each failed reset, up to a day", () => {
    const failedAfter = (attempts: number) =>
      run({ record: resetting(10, { resetRunId: 9, attempts }), resetRun: { found: true, runId: 9, status: "completed", conclusion: "failure", completedAt: ago(1), url: "u" } }).record.retryAfter;
    const minutesAhead = (iso: string | null) => (Date.parse(iso!) - now.getTime()) / 60_000;
    expect([1, 2, 3, 12].map((a) => minutesAhead(failedAfter(a)))).toEqual([15, 30, 60, 1440]);
  });

  it("gives up after maxResetAttempts failed resets in a row and says so, whatever triggers it", () => {
    const exhausted = record({ state: "failed", attempts: 3, lastError: "reset run 9 ended with conclusion \"failure\"", retryAfter: ago(60) });
    for (const trigger of ["timer", "job-completed"] as const) {
      const out = run({ record: exhausted, trigger });
      expect(out).toMatchObject({ decision: "gave-up", dispatch: false, record: { state: "failed" } });
      expect(out.record.reason).toMatch(/gave up after 3 failed resets .*delete the pair's record/);
    }
    // A job on it meanwhile does not restart the attempts either.
    expect(run({ record: { ...exhausted, state: "dirty" }, trigger: "job-completed" }).decision).toBe("gave-up");
  });

  it("a clean pair that was offline for a while is clean again, not reset for it", () => {
    const offline = record({ state: "offline", jobSinceReset: false, resetCompletedAt: ago(20), resetDispatchedAt: ago(26), resetRequestId: "r" });
    expect(run({ record: offline, trigger: "job-completed" })).toMatchObject({ decision: "not-needed", dispatch: false, record: { state: "clean" } });
    expect(run({ record: offline, trigger: "timer" })).toMatchObject({ decision: "skipped-fresh", record: { state: "clean" } });
    // One that ran a job before going offline is still dirty.
    expect(run({ record: { ...offline, jobSinceReset: true }, trigger: "job-completed" }).decision).toBe("reset-dispatched");
  });

  it("the timer skips a clean pair reset less than freshForMinutes ago", () => {
    expect(run({ record: clean(59) }).decision).toBe("skipped-fresh");
    expect(run({ record: clean(61) })).toMatchObject({ decision: "reset-dispatched", dispatch: true });
  });

  it("a job-completed trigger leaves a clean pair without jobs alone", () => {
    const out = run({ record: clean(600), trigger: "job-completed" });
    expect(out).toMatchObject({ decision: "not-needed", dispatch: false, changed: false });
  });

  it("a reported job makes a fresh clean pair dirty and resets it", () => {
    const out = run({ record: clean(5), trigger: "job-completed", jobReport: { runId: 55, at: ago(1) } });
    expect(out).toMatchObject({ decision: "reset-dispatched", record: { lastJobRunId: 55, jobSinceReset: true } });
    expect(out.events.map((e) => e.to)).toEqual(["dirty", "resetting"]);
  });

  it("a busy pair found idle later is reset by that trigger", () => {
    const out = run({ record: record({ state: "busy", jobSinceReset: true }), trigger: "timer" });
    expect(out.events.map((e) => `${e.from}->${e.to}`)).toEqual(["busy->dirty", "dirty->resetting"]);
    expect(out.dispatch).toBe(true);
  });

  it("changes nothing when run twice on the same facts", () => {
    const first = run({ record: record(), observation: idle({ vmRunners: [runner("VM-42-43", { busy: true })] }) });
    const second = run({ record: first.record, observation: idle({ vmRunners: [runner("VM-42-43", { busy: true })] }) });
    expect(second.changed).toBe(false);
    expect(second.record).toBe(first.record);
  });
});
