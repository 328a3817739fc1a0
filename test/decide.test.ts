import { describe, expect, it } from "vitest";
import { decide, type DecideInput, type PairObservation, type RunnerFacts } from "../shared/lab/decide.js";
import { newPairRecord, type PairRecord } from "../shared/lab/pair-record.js";
import { BUSY_HOLD_MINUTES, jobFactsByPair } from "../shared/reconcile/job-facts.js";
import { factKey, type JobFact, type StoredFact } from "../shared/storage/facts.js";
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

  it("keeps a pair busy while a recorded job start holds it, though GitHub still shows the VM idle", () => {
    const started = { runId: 5, at: ago(2), heldUntil: ago(-13) };
    const out = run({ record: clean(600), jobStart: started, trigger: "timer" });
    expect(out).toMatchObject({ decision: "deferred-busy", dispatch: false, record: { state: "busy", jobSinceReset: true, lastJobRunId: 5, lastJobAt: ago(2) } });
    expect(out.record.reason).toMatch(/run 5 started a job on the VM \(webhook\)/);
    // Whatever the trigger: a job-completed call for another run does not release it either.
    expect(run({ record: out.record, jobStart: started, jobReport: { runId: 4, at: ago(3) }, trigger: "job-completed" }).decision).toBe("deferred-busy");
  });

  it("releases a recorded job start once its end is recorded, or once the hold runs out", () => {
    const busy = record({ state: "busy", jobSinceReset: true, lastJobRunId: 5, lastJobAt: ago(2) });
    // The end recorded: job-facts folds the start to heldUntil null.
    expect(run({ record: busy, jobStart: { runId: 5, at: ago(2), heldUntil: null }, jobReport: { runId: 5, at: ago(1) }, trigger: "webhook" })).toMatchObject({ decision: "reset-dispatched", dispatch: true });
    // No end recorded, but the hold is over: GitHub's view decides again.
    expect(run({ record: busy, jobStart: { runId: 5, at: ago(16), heldUntil: ago(1) }, trigger: "timer" })).toMatchObject({ decision: "reset-dispatched", dispatch: true });
    // The hold ends at heldUntil, not after it.
    expect(run({ record: busy, jobStart: { runId: 5, at: ago(15), heldUntil: ago(0) }, trigger: "timer" }).decision).toBe("reset-dispatched");
  });

  it("a job start recorded before the last reset request does not make a clean pair dirty", () => {
    const fresh = clean(5); // reset requested 10 minutes ago, completed 5 minutes ago
    for (const at of [ago(11), ago(10)]) {
      const out = run({ record: fresh, jobStart: { runId: 5, at, heldUntil: null }, trigger: "job-completed" });
      expect(out).toMatchObject({ decision: "not-needed", dispatch: false, changed: false, record: { state: "clean", jobSinceReset: false } });
    }
    // One recorded after the request makes it dirty, and it is reset.
    const after = run({ record: fresh, jobStart: { runId: 6, at: ago(9), heldUntil: null }, trigger: "job-completed" });
    expect(after).toMatchObject({ decision: "reset-dispatched", record: { lastJobRunId: 6, jobSinceReset: true } });
    expect(after.events.map((e) => e.to)).toEqual(["dirty", "resetting"]);
  });

  it("a job start recorded before the last reset request still holds the pair busy while no end of it is recorded", () => {
    const out = run({ record: clean(5), jobStart: { runId: 5, at: ago(11), heldUntil: ago(-4) }, trigger: "timer" });
    expect(out).toMatchObject({ decision: "deferred-busy", dispatch: false, record: { state: "busy" } });
  });

  it("ignores a job end recorded at or before the last reset request: that reset cleans it", () => {
    const fresh = clean(5); // reset requested 10 minutes ago
    for (const at of [ago(12), ago(10)]) {
      expect(run({ record: fresh, jobReport: { runId: 55, at }, trigger: "job-completed" })).toMatchObject({ decision: "not-needed", changed: false, record: { jobSinceReset: false, lastJobRunId: null } });
      expect(run({ record: fresh, jobReport: { runId: 55, at }, trigger: "timer" }).decision).toBe("skipped-fresh");
    }
    // While the reset is in flight, an end before its request leaves the pair clean once it succeeds...
    const succeeded = { found: true as const, runId: 9, status: "completed", conclusion: "success", completedAt: ago(2), url: "u" };
    const inFlight = resetting(10, { resetRunId: 9, jobSinceReset: false });
    expect(run({ record: inFlight, resetRun: succeeded, jobReport: { runId: 55, at: ago(11) }, trigger: "job-completed" })).toMatchObject({ decision: "not-needed", record: { state: "clean", jobSinceReset: false } });
    // ...and one after it makes the pair dirty again, reset at once.
    expect(run({ record: inFlight, resetRun: succeeded, jobReport: { runId: 55, at: ago(9) }, trigger: "job-completed" })).toMatchObject({ decision: "reset-dispatched", record: { lastJobRunId: 55, jobSinceReset: true } });
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
      expect(out.record.reason).toMatch(/gave up after 3 failed resets .*ask for a reset \(lab-reset reset <pair>/);
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

describe("recorded job facts, as decide gets them", () => {
  const pairOfRunner = new Map([["vm-42-43", pair]]);
  const fact = (phase: JobFact["phase"], jobId: number | null, runId: number, at: string, runnerName = "VM-42-43"): StoredFact => {
    const f: JobFact = { phase, jobId, runId, runnerName, runnerId: null, at, source: "webhook", recordedAt: now.toISOString() };
    return { key: factKey(f), fact: f };
  };
  const folded = (...facts: StoredFact[]) => jobFactsByPair(facts, pairOfRunner).get(pair.id);
  const holdFrom = (at: string) => new Date(Date.parse(at) + BUSY_HOLD_MINUTES * 60_000).toISOString();

  it("holds a pair busy for 15 minutes from a recorded job start with no recorded end", () => {
    expect(BUSY_HOLD_MINUTES).toBe(15);
    expect(folded(fact("started", 50, 5, ago(2)))).toEqual({ jobStart: { runId: 5, jobId: 50, at: ago(2), heldUntil: holdFrom(ago(2)) } });
  });

  it("an end of an earlier job does not release a later start (the VM may run the new job); the job's own end or a later end does", () => {
    const start = fact("started", 50, 5, ago(2));
    expect(folded(start, fact("ended", 40, 4, ago(3)))).toEqual({ jobReport: { runId: 4, at: ago(3) }, jobStart: { runId: 5, jobId: 50, at: ago(2), heldUntil: holdFrom(ago(2)) } });
    expect(folded(start, fact("ended", 50, 5, ago(1)))).toEqual({ jobReport: { runId: 5, at: ago(1) }, jobStart: { runId: 5, jobId: 50, at: ago(2), heldUntil: null } });
    // Its own end, even stamped before its start by another clock.
    expect(folded(start, fact("ended", 50, 5, ago(2.5)))?.jobStart?.heldUntil).toBeNull();
    // One VM runs one job at a time: an end after the start means the started job is over.
    expect(folded(start, fact("ended", null, 6, ago(0)))?.jobStart?.heldUntil).toBeNull();
  });

  it("reports the latest job end on the pair's VM, whatever order the facts were recorded in", () => {
    expect(folded(fact("ended", 61, 6, ago(1)), fact("ended", 40, 4, ago(30)))?.jobReport).toEqual({ runId: 6, at: ago(1) });
  });

  it("maps facts to pairs by VM runner name, case-insensitively, and ignores other runners", () => {
    expect(folded(fact("ended", 61, 6, ago(1), "vm-42-43"))?.jobReport).toEqual({ runId: 6, at: ago(1) });
    expect(jobFactsByPair([fact("started", 70, 7, ago(1), "GitHub Actions 12"), fact("ended", 71, 7, ago(1), "WIN-B9SEU47NHOT")], pairOfRunner).size).toBe(0);
  });

  it("a start folded in holds the pair in decide, and its recorded end lets decide reset it", () => {
    const start = fact("started", 50, 5, ago(2));
    expect(run({ record: clean(600), ...folded(start) }).decision).toBe("deferred-busy");
    expect(run({ record: clean(600), ...folded(start, fact("ended", 50, 5, ago(1))) }).decision).toBe("reset-dispatched");
  });
});

describe("decide: the routing the pair should have with its new record", () => {
  it.each<[string, Partial<DecideInput>, string]>([
    ["clean, idle and fresh: open", { record: clean(10), trigger: "webhook" }, "open"],
    ["a reset just claimed: closed", { record: record({ state: "dirty", jobSinceReset: true }) }, "closed: the pair is resetting"],
    ["a job GitHub lists on the VM: closed", { record: clean(10), observation: idle({ jobRunId: 7 }) }, "closed: the pair is busy: run 7 has a job on the VM"],
    ["the busy flag: closed", { record: clean(10), observation: idle({ vmRunners: [runner("VM-42-43", { busy: true })] }) }, "closed: the pair is busy: the VM runner reports busy"],
    ["a recorded start still holding it: closed", { record: clean(10), trigger: "webhook", jobStart: { runId: 5, at: ago(2), heldUntil: ago(-13) } }, "closed: the pair is busy: run 5 started a job on the VM (webhook)"],
    ["held: closed, whatever else", { record: { ...clean(10), holdBy: "alice" }, trigger: "webhook" }, "closed: held by alice"],
    ["the VM runner offline: closed", { record: clean(10), trigger: "webhook", observation: idle({ vmRunners: [runner("VM-42-43", { online: false })] }) }, "closed: the VM runner is offline"],
    ["GitHub unread: closed", { record: clean(10), observation: { ok: false, error: "503" } }, "closed: GitHub could not be read"],
    ["a failed reset waiting out its backoff: closed", { record: record({ state: "failed", attempts: 1, retryAfter: ago(-10) }) }, "closed: the pair is failed"],
  ])("%s", (_, input, expected) => {
    const { routing } = run(input);
    const said = routing.open ? "open" : `closed: ${routing.why}`;
    expect(said.startsWith(expected)).toBe(true);
  });
});

