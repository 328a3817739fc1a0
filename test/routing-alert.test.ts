/**
 * The lab never stalls silently: a pair out of routing for routingAlertMinutes while not busy
 * logs `lab-reset alert pair-out-of-routing:` at every reconcile, and a quiet lab gets a look at
 * the moment the threshold passes. The rule, pure; then the test lab (GitHub stand-in, Azurite,
 * the memory queue served by `lab.settle()`) on the test's clock.
 */
import { afterEach, describe, expect, it } from "vitest";
import { holdPair } from "../shared/admin/holds.js";
import { parseLabConfig, type LabConfig } from "../shared/lab/config.js";
import type { PairObservation } from "../shared/lab/decide.js";
import { outOfRouting, outOfRoutingMessage, type OutOfRoutingFacts } from "../shared/lab/routing-alert.js";
import { silentLogger, type Logger } from "../shared/logger.js";
import { finishReset, perfRun, reportReset, seedConfig, startTestLab, vmRunnerName, type TestLab } from "./support/lab.js";

let lab: TestLab | undefined;
afterEach(async () => {
  await lab?.close();
  lab = undefined;
});

const now = new Date("2026-11-27T12:00:00.000Z");
const ago = (minutes: number) => new Date(now.getTime() - minutes * 60_000).toISOString();
type AlertConfig = Pick<LabConfig, "routingLabels" | "routingAlertMinutes">;
const config: AlertConfig = { routingLabels: ["lab"], routingAlertMinutes: 90 };

describe("the routing alert rule, pure", () => {
  const idle: PairObservation = {
    ok: true,
    vmRunners: [{ name: "VM-25-26", online: true, busy: false }],
    hostRunners: [[{ name: "RR1-NETPERF-26", online: true, busy: false }], [{ name: "RR1-NETPERF-25", online: true, busy: false }]],
    jobRunId: null,
  };
  const facts = (patch: Partial<OutOfRoutingFacts> = {}, record: Partial<NonNullable<OutOfRoutingFacts["record"]>> = {}): OutOfRoutingFacts => ({
    record: { routing: "closed", routingSince: ago(100), lastJobAt: null, holdBy: null, ...record },
    state: "failed",
    decision: "retry-later",
    observation: idle,
    now,
    ...patch,
  });
  const verdict = (f: OutOfRoutingFacts, c: AlertConfig) => {
    const stall = outOfRouting(f, c);
    return stall === null ? "not counted" : stall.stalled ? `stalled ${stall.minutes} min` : `due ${stall.dueAt.toISOString()}`;
  };

  it.each<[string, string, OutOfRoutingFacts, AlertConfig?]>([
    ["a failed pair closed for 100 minutes", "stalled 100 min", facts()],
    ["a resetting pair closed for 100 minutes (resets keep failing)", "stalled 100 min", facts({ state: "resetting", decision: "already-resetting" })],
    ["a pair closed exactly routingAlertMinutes", "stalled 90 min", facts({}, { routingSince: ago(90) })],
    ["a pair closed for 89 minutes", `due ${new Date(now.getTime() + 60_000).toISOString()}`, facts({}, { routingSince: ago(89) })],
    ["an offline pair closed for 120 minutes", "stalled 120 min", facts({ state: "offline", decision: "skipped-offline", observation: { ...idle, vmRunners: [{ name: "VM-25-26", online: false, busy: false }] } }, { routingSince: ago(120) })],
    ["a clean pair whose label was not added back (a refused POST)", "stalled 100 min", facts({ state: "clean", decision: "not-needed" })],
    ["a job ended 30 minutes ago on a pair closed for 200: counted from the job's end", `due ${new Date(now.getTime() + 60 * 60_000).toISOString()}`, facts({ state: "resetting" }, { routingSince: ago(200), lastJobAt: ago(30) })],
    ["a recorded start whose end is recorded too", "stalled 100 min", facts({ jobStart: { runId: 9, at: ago(150), heldUntil: null } })],
    ["no routing labels configured", "not counted", facts(), { routingLabels: [], routingAlertMinutes: 90 }],
    ["routing open", "not counted", facts({}, { routing: "open" })],
    ["routing null: never recorded since routing labels were configured, however long dirty", "not counted", facts({ state: "dirty" }, { routing: null, routingSince: null })],
    ["no record read", "not counted", facts({ record: null })],
    ["held by an admin (closed on purpose)", "not counted", facts({}, { holdBy: "alice" })],
    ["busy as decided", "not counted", facts({ state: "busy", decision: "deferred-busy" })],
    ["released as busy by the second look", "not counted", facts({ state: "dirty", decision: "deferred-busy" })],
    ["a job on the VM runner on GitHub", "not counted", facts({ state: "resetting", observation: { ...idle, jobRunId: 7 } })],
    ["the VM runner reports busy", "not counted", facts({ state: "resetting", observation: { ...idle, vmRunners: [{ name: "VM-25-26", online: true, busy: true }] } })],
    ["a recorded start still holding the VM", "not counted", facts({ jobStart: { runId: 9, at: ago(5), heldUntil: new Date(now.getTime() + 10 * 60_000).toISOString() } })],
    ["GitHub could not be read (busy unknown)", "not counted", facts({ observation: { ok: false, error: "503" } })],
  ])("%s: %s", (_, expected, f, c) => {
    expect(verdict(f, c ?? config)).toBe(expected);
  });

  it("says which pair, for how long, why, and what to do", () => {
    const failed = outOfRoutingMessage("vm-25-26", { minutes: 95 }, { state: "failed", lastError: 'reset run 7 ended with conclusion "failure"', reason: "…", routingError: null });
    expect(failed).toBe(
      'pair vm-25-26 has been out of routing for 95 minutes while not busy (state failed; last error: reset run 7 ended with conclusion "failure"); ' +
        "perf jobs that need it queue. What to do: lab-reset status shows why; fix the cause, then lab-reset reset vm-25-26; " +
        "if lab-reset itself cannot recover, run lab-reset routing restore while the app is stopped",
    );
    const offline = outOfRoutingMessage("vm-11-12", { minutes: 90 }, { state: "offline", lastError: null, reason: "VM runner VM-11-12 is offline", routingError: "adding routing label lab to VM runner VM-11-12: 403" });
    expect(offline).toMatch(/\(state offline; last error: none \(VM runner VM-11-12 is offline\); routing error: adding routing label lab to VM runner VM-11-12: 403\)/);
  });

  it("routingAlertMinutes is a whole number of minutes, at least 1, default 90", () => {
    const base = { github: { owner: "o", repo: "r" }, resetWorkflow: { workflow: "lab-reset.yml", ref: "main" }, pairs: seedConfig.pairs };
    expect(parseLabConfig(base).routingAlertMinutes).toBe(90);
    expect(parseLabConfig({ ...base, routingAlertMinutes: 240 }).routingAlertMinutes).toBe(240);
    expect(() => parseLabConfig({ ...base, routingAlertMinutes: 0 })).toThrow(/\$\.routingAlertMinutes/);
    expect(() => parseLabConfig({ ...base, routingAlertMinutes: 1.5 })).toThrow(/\$\.routingAlertMinutes/);
  });
});

// Periodic resets would reopen and close pairs on their own: a day is longer than any test here.
const routed: LabConfig = { ...seedConfig, routingLabels: ["lab"], routingAlertMinutes: 90, freshForMinutes: 24 * 60 };

function logged() {
  const lines: string[] = [];
  const push = (m: string) => void lines.push(m);
  const logger: Logger = { info: push, warn: push, error: push };
  return { logger, lines };
}

/** A lab whose log and queue sends (their delays, in minutes) the test reads. */
async function start() {
  const { logger, lines } = logged();
  const l = await startTestLab({ config: routed, settings: { GITHUB_WEBHOOK_SECRET: "routing-alert-test" }, logger });
  const delays: number[] = [];
  l.queue.onSend = (ms) => void delays.push(ms / 60_000);
  const alerts = () => lines.filter((line) => line.startsWith("lab-reset alert pair-out-of-routing:"));
  return { l, alerts, delays };
}

const dispatchesOf = (l: TestLab, id: string) => l.github.dispatches.filter((d) => d.inputs.pair === id && d.runId !== null);
const lastReset = (l: TestLab, id: string) => dispatchesOf(l, id).at(-1)!.runId!;
const stored = async (l: TestLab, id: string) => (await l.runtime.store.getPair(id))?.record;

/** Every pair reset once and clean, `lab` back on every VM runner. */
async function cleanLab(l: TestLab) {
  await l.timer();
  for (const d of l.github.dispatches) if (d.runId !== null) finishReset(l, d.runId);
  l.advance(10);
  expect((await l.timer()).pairs.every((p) => p.state === "clean")).toBe(true);
  l.advance(1);
}

describe("pair-out-of-routing alert", () => {
  it("alerts for a pair whose reset keeps failing once it has been out of routing routingAlertMinutes, not before, from a look queued for that moment", async () => {
    const { l, alerts } = await start();
    lab = l;
    const t0 = l.now.value.getTime();
    await l.timer(); // every pair leaves routing (no reset recorded) and is reset
    l.advance(10);
    // Each reset's report: three pairs clean and open, vm-25-26 failed.
    for (const d of l.github.dispatches) await reportReset(l, d.runId!, d.inputs.pair === "vm-25-26" ? "failure" : "success");
    expect(await stored(l, "vm-25-26")).toMatchObject({ state: "failed", routing: "closed", routingSince: new Date(t0).toISOString() });

    l.advance(50); // t0 + 60: a reconcile before the threshold retries the reset; it fails again
    await l.timer();
    l.advance(5);
    await reportReset(l, lastReset(l, "vm-25-26"), "failure");
    expect(await stored(l, "vm-25-26")).toMatchObject({ state: "failed", attempts: 2 });
    // The last reconcile asks for one look, due when vm-25-26 would stall.
    expect(l.queue.dueLooks()).toContain(new Date(t0 + 90 * 60_000).toISOString());
    l.advance(24); // t0 + 89: nothing is due yet
    await l.settle();
    expect(alerts()).toEqual([]);

    const reconciles = l.trigger.outcomes.filter((o) => o.served === "reconciled").length;
    l.advance(1); // t0 + 90: the look arrives, with no other trigger
    await l.settle();
    expect(l.trigger.outcomes.filter((o) => o.served === "reconciled")).toHaveLength(reconciles + 1);
    expect(alerts()).toEqual([expect.stringMatching(/^lab-reset alert pair-out-of-routing: pair vm-25-26 has been out of routing for 90 minutes while not busy \(state failed; last error: reset run \d+ ended with conclusion "failure".*lab-reset reset vm-25-26/)]);
    // One line per reconcile while it lasts; the alert rule notifies once.
    l.advance(10);
    await l.timer();
    expect(alerts()).toHaveLength(2);
    expect(alerts()[1]).toMatch(/pair vm-25-26 has been out of routing for 100 minutes while not busy \(state resetting;/);
  });

  it("alerts for a pair whose VM runner stays offline, at the due time of a quiet lab", async () => {
    const { l, alerts } = await start();
    lab = l;
    await cleanLab(l);
    l.github.setRunner(vmRunnerName("vm-11-12"), { status: "offline" });
    await l.timer();
    expect(await stored(l, "vm-11-12")).toMatchObject({ state: "offline", routing: "closed" });
    l.advance(89);
    await l.settle();
    expect(alerts()).toEqual([]);
    l.advance(1);
    await l.settle();
    expect(alerts()).toEqual([expect.stringMatching(/pair vm-11-12 has been out of routing for 90 minutes while not busy \(state offline; last error: none \(VM runner VM-11-12 is offline\)\)/)]);
  });

  it("does not alert for a pair busy with a long job, nor when it ends: the count starts at the job's end", async () => {
    const { l, alerts, delays } = await start();
    lab = l;
    await cleanLab(l);
    const perf = perfRun(l, [vmRunnerName("vm-05-10")]);
    expect((await l.timer()).pairs.find((p) => p.id === "vm-05-10")).toMatchObject({ state: "busy" });
    for (let minutes = 0; minutes < 180; minutes += 30) {
      l.advance(30);
      await l.settle(); // any look due (the resets' time limits)
    }
    expect(await stored(l, "vm-05-10")).toMatchObject({ state: "busy", routing: "closed" });
    // Busy: nothing is counted, so no look is queued beyond the resets' time limits (30 minutes).
    expect(delays.filter((d) => d > 31)).toEqual([]);
    l.github.setRun(perf.id, { status: "completed", conclusion: "success" });
    l.advance(1);
    const ended = await l.timer();
    expect(ended.pairs.find((p) => p.id === "vm-05-10")).toMatchObject({ state: "resetting" });
    l.advance(5);
    await reportReset(l, lastReset(l, "vm-05-10"));
    expect(await stored(l, "vm-05-10")).toMatchObject({ state: "clean", routing: "open" });
    expect(alerts()).toEqual([]);
  });

  it("does not alert for a held pair, however long its routing stays closed, and queues no look for it", async () => {
    const { l, alerts, delays } = await start();
    lab = l;
    await cleanLab(l);
    const answer = await holdPair(l.runtime, { pairId: "vm-42-43", principal: "alice@example.com", body: JSON.stringify({ reason: "re-taking the checkpoint" }) }, silentLogger);
    expect(answer.status).toBe(200);
    await l.settle();
    expect(await stored(l, "vm-42-43")).toMatchObject({ routing: "closed", holdBy: "alice@example.com" });
    for (let hours = 1; hours <= 4; hours++) {
      l.advance(60);
      await l.timer();
    }
    expect(alerts()).toEqual([]);
    expect(delays.filter((d) => d > 31)).toEqual([]);
  });
});
