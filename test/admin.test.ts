/**
 * The admin routes (shared/admin/routes.ts) against the seed lab: a pair's history, the dry run,
 * "reset this pair now" and the status page. The rules are checked by calling the handlers over
 * the test lab (its memory queue served by `lab.settle()`); the HTTP shapes through a local host
 * over the same lab, its queue a real Azurite queue that the host's queue function serves.
 */
import { randomBytes } from "node:crypto";
import { afterEach, describe, expect, inject, it } from "vitest";
import { functionDefinitions } from "../functions/definitions.js";
import { MAX_EVENTS, pairEvents, plan, resetNow, statusPage } from "../shared/admin/routes.js";
import { STATUS_PAGE_CSP } from "../shared/admin/status-page.js";
import { newPairRecord, type PairEvent, type PairRecord } from "../shared/lab/pair-record.js";
import { startLocalHost, type LocalHost } from "../shared/local/host.js";
import { silentLogger } from "../shared/logger.js";
import type { PlannedPair } from "../shared/reconcile/plan.js";
import { CoalescedSends, StorageReconcileQueue, type ReconcileMessage } from "../shared/storage/queue.js";
import { beforeRequest, finishReset, hostRunnerName, perfRun, seedConfig, startTestLab, vmRunnerName, type TestLab } from "./support/lab.js";
import { ContestedStore } from "./support/store.js";

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- answers are checked by the assertions
const json = async (response: Response | Promise<Response>): Promise<any> => (await response).json();

let lab: TestLab | undefined;
let host: LocalHost | undefined;
afterEach(async () => {
  await host?.close();
  await lab?.close();
  host = lab = undefined;
});

const PAIRS = ["vm-25-26", "vm-05-10", "vm-42-43", "vm-11-12"];
const report = (runId: number) => JSON.stringify({ repository: "microsoft/netperf", runId });
const stored = async (l: TestLab, id: string) => (await l.runtime.store.getPair(id))?.record;
const dispatchesOf = (l: TestLab, id: string) => l.github.dispatches.filter((d) => d.inputs.pair === id);
const decisionOf = (result: { pairs: { id: string; decision: string }[] } | null, id: string) => result?.pairs.find((p) => p.id === id)?.decision;

/** The dry run's answer, by pair. */
async function planned(l: TestLab): Promise<Map<string, PlannedPair>> {
  const answer = await plan(l.runtime, silentLogger);
  expect(answer.status).toBe(200);
  return new Map((answer.body as { pairs: PlannedPair[] }).pairs.map((p) => [p.id, p]));
}

/** Every pair reset a few minutes ago: clean, idle and fresh. */
async function cleanLab(l: TestLab) {
  await l.timer();
  for (const d of l.github.dispatches) if (d.runId !== null) finishReset(l, d.runId);
  l.advance(10);
  await l.timer();
  for (const id of PAIRS) expect((await stored(l, id))?.state).toBe("clean");
  l.advance(1);
}

/** Writes fields onto a pair's record as another writer would (a state the lab would take long to reach). */
async function patchRecord(l: TestLab, id: string, patch: Partial<PairRecord>) {
  const current = await l.runtime.store.getPair(id);
  await l.runtime.store.replacePair({ ...current!.record, ...patch }, current!.etag);
}

/** Everything the app writes or sends: records (with ETags), events, facts, coverage, the queue, and GitHub's side. */
async function everythingWritten(l: TestLab) {
  const { store, facts, coverage } = l.runtime;
  return {
    pairs: await store.listPairs(),
    events: await Promise.all(PAIRS.map((id) => store.listEvents(id, MAX_EVENTS))),
    facts: await facts.listSince(new Date(0)),
    coverage: await coverage.read(),
    queued: l.queue.length,
    dispatches: structuredClone(l.github.dispatches),
    labelCalls: l.github.labelCalls.length,
    githubWrites: l.github.requests.filter((r) => r.method !== "GET"),
  };
}

describe("GET /api/pairs/{id}/events", () => {
  it("answers the pair's events newest first, each with at, kind, trigger, from, to, reason and the reset's ids, at most `limit`", async () => {
    lab = await startTestLab();
    await lab.timer();
    const dispatch = dispatchesOf(lab, "vm-25-26")[0]!;
    finishReset(lab, dispatch.runId!);
    lab.advance(10);
    await lab.timer();

    const all = await pairEvents(lab.runtime, "vm-25-26", null, silentLogger);
    expect(all.status).toBe(200);
    const { pair, events } = all.body as { pair: string; events: Omit<PairEvent, "pairId">[] };
    expect(pair).toBe("vm-25-26");
    // Routing events (the VM runner's labels closed for the reset, opened once clean) come between, as the config's routingLabels ask.
    const changes = events.filter((e) => e.kind !== "routing");
    expect(changes.map((e) => `${e.kind}:${e.from}->${e.to}:${e.trigger}`)).toEqual(["state:resetting->clean:timer", "dispatch:resetting->resetting:timer", "state:null->resetting:timer"]);
    for (const event of events) expect(Object.keys(event).sort()).toEqual(["at", "from", "held", "kind", "reason", "resetRequestId", "resetRunId", "routing", "to", "trigger"]);
    expect(changes[0]).toMatchObject({ at: lab.now.value.toISOString(), reason: `reset run ${dispatch.runId} succeeded`, resetRequestId: dispatch.inputs.request_id, resetRunId: dispatch.runId });
    expect(changes[2]).toMatchObject({ reason: "reset requested (the VM ran a job or its state is unknown)", resetRequestId: dispatch.inputs.request_id, resetRunId: null });
    expect(events.map((e) => e.at)).toEqual(events.map((e) => e.at).sort().reverse());

    const two = await pairEvents(lab.runtime, "vm-25-26", "2", silentLogger);
    expect((two.body as { events: unknown[] }).events).toEqual(events.slice(0, 2));
    // Pair ids are matched as the config spells them, whatever the case asked.
    expect((await pairEvents(lab.runtime, "VM-25-26", "1", silentLogger)).body).toEqual({ pair: "vm-25-26", events: events.slice(0, 1) });
  });

  it("answers 404 naming the configured pairs for an unknown pair, and 400 for a limit that is not a whole number from 1 to 500", async () => {
    lab = await startTestLab();
    expect(await pairEvents(lab.runtime, "vm-99-98", null, silentLogger)).toEqual({
      status: 404,
      body: { error: `No pair "vm-99-98" in the lab config; pairs: ${PAIRS.join(", ")}.` },
    });
    for (const limit of ["0", "-1", "abc", "2.5", "501", ""]) {
      const answer = await pairEvents(lab.runtime, "vm-25-26", limit, silentLogger);
      expect({ limit, status: answer.status, error: (answer.body as { error: string }).error }).toEqual({ limit, status: 400, error: `limit must be a whole number from 1 to 500, not ${JSON.stringify(limit)}.` });
    }
    expect((await pairEvents(lab.runtime, "vm-25-26", "500", silentLogger)).status).toBe(200);
  });
});

describe("GET /api/plan", () => {
  it("answers what the next timer reconcile decides, pair by pair, and writes and dispatches nothing", async () => {
    lab = await startTestLab();
    await cleanLab(lab);
    // vm-25-26 runs a job; vm-05-10 ran one whose report never came (the timer's backstop finds it);
    // one of vm-42-43's hosts is offline; vm-11-12 is clean and was reset minutes ago.
    perfRun(lab, [vmRunnerName("vm-25-26")]);
    perfRun(lab, [vmRunnerName("vm-05-10")], "completed");
    lab.github.setRunner(hostRunnerName("child=rr1-netperf-42\\localadminuser"), { status: "offline" });
    lab.advance(1);

    const before = await everythingWritten(lab);
    const answer = await plan(lab.runtime, silentLogger);
    expect(answer.status).toBe(200);
    const { pairs } = answer.body as { pairs: PlannedPair[] };
    expect(answer.body).not.toHaveProperty("errors");
    expect(pairs.map((p) => [p.id, p.state, p.decision])).toEqual([
      ["vm-25-26", "busy", "deferred-busy"],
      ["vm-05-10", "resetting", "reset-dispatched"],
      ["vm-42-43", "offline", "skipped-offline"],
      ["vm-11-12", "clean", "skipped-fresh"],
    ]);
    expect(pairs[0]!.reason).toMatch(/^run \d+ has a job on the VM$/);
    expect(pairs[2]!.reason).toBe("host runner RR1-NETPERF-42 is offline");
    // Asking again is as harmless: still nothing written, queued, dispatched or labelled.
    await plan(lab.runtime, silentLogger);
    expect(await everythingWritten(lab)).toEqual(before);

    // The timer, on the same state, decides exactly that.
    const timer = await lab.timer();
    expect(timer.pairs.map((p) => [p.id, p.state, p.decision])).toEqual(pairs.map((p) => [p.id, p.state, p.decision]));
    expect(dispatchesOf(lab, "vm-05-10")).toHaveLength(2);
  });

  it("plans a periodic reset of clean pairs once freshForMinutes have passed, as the timer then does", async () => {
    lab = await startTestLab();
    await cleanLab(lab);
    expect([...(await planned(lab)).values()].map((p) => p.decision)).toEqual(Array(4).fill("skipped-fresh"));
    lab.advance(lab.config.freshForMinutes);
    const due = await planned(lab);
    expect([...due.values()].map((p) => p.decision)).toEqual(Array(4).fill("reset-dispatched"));
    expect(due.get("vm-11-12")!.reason).toBe(`reset requested (periodic reset: last reset over ${lab.config.freshForMinutes} minutes ago)`);
    expect(lab.github.dispatches).toHaveLength(4);
    const timer = await lab.timer();
    expect(timer.pairs.map((p) => p.decision)).toEqual(Array(4).fill("reset-dispatched"));
  });
});

describe("POST /api/pairs/{id}/reset", () => {
  it("records the request (202), queues a reconcile, and the pair is reset though clean and fresh", async () => {
    lab = await startTestLab();
    await cleanLab(lab);
    expect((await planned(lab)).get("vm-42-43")!.decision).toBe("skipped-fresh");
    const at = lab.now.value.toISOString();

    const answer = await resetNow(lab.runtime, "vm-42-43", "mara@contoso.com", silentLogger);
    expect(answer).toEqual({ status: 202, body: { pair: "vm-42-43", state: "clean", resetRequestedAt: at, resetRequestedBy: "mara@contoso.com", reconcile: "queued" } });
    expect(lab.queue.length).toBe(1);
    expect(await stored(lab, "vm-42-43")).toMatchObject({ state: "clean", resetRequestedAt: at, resetRequestedBy: "mara@contoso.com" });
    // The dry run shows the request honoured; nothing is dispatched until the queue is served.
    expect((await planned(lab)).get("vm-42-43")).toMatchObject({ decision: "reset-dispatched", reason: "reset requested (an admin asked for it (mara@contoso.com))" });
    expect(dispatchesOf(lab, "vm-42-43")).toHaveLength(1);

    const result = await lab.settle();
    expect(result?.pairs.map((p) => [p.id, p.decision])).toEqual([["vm-25-26", "not-needed"], ["vm-05-10", "not-needed"], ["vm-42-43", "reset-dispatched"], ["vm-11-12", "not-needed"]]);
    const dispatches = dispatchesOf(lab, "vm-42-43");
    expect(dispatches).toHaveLength(2);
    expect(await stored(lab, "vm-42-43")).toMatchObject({ state: "resetting", resetRequestedAt: null, resetRequestId: dispatches[1]!.inputs.request_id, resetRunId: dispatches[1]!.runId, attempts: 1 });
    const [dispatched, claimed] = (await lab.runtime.store.listEvents("vm-42-43")).filter((e) => e.kind !== "routing");
    expect(claimed).toMatchObject({ kind: "state", from: "clean", to: "resetting", reason: "reset requested (an admin asked for it (mara@contoso.com))" });
    expect(dispatched).toMatchObject({ kind: "dispatch", resetRunId: dispatches[1]!.runId });
    expect(lab.github.dispatches).toHaveLength(5);
  });

  it("resets a failed pair at once, inside its backoff, and starts its attempts over", async () => {
    lab = await startTestLab();
    await cleanLab(lab);
    const perf = perfRun(lab, [vmRunnerName("vm-42-43")], "completed");
    await lab.jobCompleted(report(perf.id));
    finishReset(lab, dispatchesOf(lab, "vm-42-43")[1]!.runId!, "failure");
    lab.advance(1);
    await lab.timer();
    const failed = await stored(lab, "vm-42-43");
    expect(failed).toMatchObject({ state: "failed", attempts: 1 });
    lab.advance(1);
    expect(Date.parse(failed!.retryAfter!)).toBeGreaterThan(lab.now.value.getTime());
    expect((await planned(lab)).get("vm-42-43")!.decision).toBe("retry-later");

    expect((await resetNow(lab.runtime, "vm-42-43", "admin", silentLogger)).status).toBe(202);
    expect(decisionOf(await lab.settle(), "vm-42-43")).toBe("reset-dispatched");
    expect(dispatchesOf(lab, "vm-42-43")).toHaveLength(3);
    expect(await stored(lab, "vm-42-43")).toMatchObject({ state: "resetting", attempts: 1, retryAfter: null, resetRequestedAt: null });
  });

  it("resets a pair that gave up (attempts at maxResetAttempts)", async () => {
    lab = await startTestLab();
    await cleanLab(lab);
    const max = lab.config.maxResetAttempts;
    await patchRecord(lab, "vm-42-43", { state: "failed", attempts: max, retryAfter: lab.now.value.toISOString(), lastError: "reset run 7 ended with conclusion \"failure\"", reason: `gave up after ${max} failed resets` });
    lab.advance(1);
    expect((await planned(lab)).get("vm-42-43")!.decision).toBe("gave-up");

    expect((await resetNow(lab.runtime, "vm-42-43", "admin", silentLogger)).status).toBe(202);
    expect(decisionOf(await lab.settle(), "vm-42-43")).toBe("reset-dispatched");
    expect(dispatchesOf(lab, "vm-42-43")).toHaveLength(2);
    expect(await stored(lab, "vm-42-43")).toMatchObject({ state: "resetting", attempts: 1, retryAfter: null });
  });

  it("never resets a pair whose VM runs a job: the request waits, and is dispatched once when the job ends", async () => {
    lab = await startTestLab();
    await cleanLab(lab);
    const perf = perfRun(lab, [vmRunnerName("vm-42-43")]);

    expect((await resetNow(lab.runtime, "vm-42-43", "mara", silentLogger)).status).toBe(202);
    expect(decisionOf(await lab.settle(), "vm-42-43")).toBe("deferred-busy");
    lab.advance(1);
    expect(decisionOf(await lab.timer(), "vm-42-43")).toBe("deferred-busy");
    expect(dispatchesOf(lab, "vm-42-43")).toHaveLength(1);
    expect(await stored(lab, "vm-42-43")).toMatchObject({ state: "busy", resetRequestedBy: "mara", resetRequestedAt: expect.any(String) });

    lab.advance(1);
    lab.github.setRun(perf.id, { status: "completed", conclusion: "success" });
    const { result } = await lab.jobCompleted(report(perf.id));
    expect(decisionOf(result, "vm-42-43")).toBe("reset-dispatched");
    expect(dispatchesOf(lab, "vm-42-43")).toHaveLength(2);
    expect(await stored(lab, "vm-42-43")).toMatchObject({ state: "resetting", resetRequestedAt: null, attempts: 1 });
    lab.advance(1);
    expect(decisionOf(await lab.timer(), "vm-42-43")).toBe("already-resetting");
    expect(dispatchesOf(lab, "vm-42-43")).toHaveLength(2);
  });

  it("keeps the request when the VM takes a job between the decision and the dispatch, and resets once it is idle", async () => {
    lab = await startTestLab();
    await cleanLab(lab);
    expect((await resetNow(lab.runtime, "vm-42-43", "mara", silentLogger)).status).toBe(202);
    // The reconcile lists runners twice: the first look, then the second look after the claim.
    let perf: { id: number } | undefined;
    beforeRequest(lab, { path: /\/actions\/runners/ }, 2, () => {
      perf = perfRun(lab!, [vmRunnerName("vm-42-43")]);
    });
    expect(decisionOf(await lab.settle(), "vm-42-43")).toBe("deferred-busy");
    expect(perf).toBeDefined();
    expect(dispatchesOf(lab, "vm-42-43")).toHaveLength(1);
    expect(await stored(lab, "vm-42-43")).toMatchObject({ resetRequestedBy: "mara", resetRequestedAt: expect.any(String) });

    lab.advance(1);
    lab.github.setRun(perf!.id, { status: "completed", conclusion: "success" });
    expect(decisionOf((await lab.jobCompleted(report(perf!.id))).result, "vm-42-43")).toBe("reset-dispatched");
    expect(dispatchesOf(lab, "vm-42-43")).toHaveLength(2);
    expect(await stored(lab, "vm-42-43")).toMatchObject({ state: "resetting", resetRequestedAt: null, attempts: 1 });
  });

  it("refuses (409) a pair whose reset is in flight, and queues nothing", async () => {
    lab = await startTestLab();
    await lab.timer();
    const before = await lab.runtime.store.getPair("vm-42-43");
    expect(before?.record.state).toBe("resetting");
    const answer = await resetNow(lab.runtime, "vm-42-43", "admin", silentLogger);
    expect(answer.status).toBe(409);
    expect((answer.body as { error: string }).error).toBe(`Pair vm-42-43 is being reset already (request ${before!.record.resetRequestId}, run ${before!.record.resetRunId}); wait for that reset to end.`);
    expect(lab.queue.length).toBe(0);
    expect(await lab.runtime.store.getPair("vm-42-43")).toEqual(before);
  });

  it("refuses (409) a held pair with who holds it and why, and queues nothing", async () => {
    lab = await startTestLab();
    await cleanLab(lab);
    await patchRecord(lab, "vm-42-43", { holdBy: "mara", holdReason: "firmware update (LAB-311)", holdSince: lab.now.value.toISOString() });
    const before = await lab.runtime.store.getPair("vm-42-43");
    const answer = await resetNow(lab.runtime, "vm-42-43", "admin", silentLogger);
    expect(answer).toEqual({ status: 409, body: { error: "Pair vm-42-43 is held by mara (firmware update (LAB-311)); release it first.", conflict: "held" } });
    expect(lab.queue.length).toBe(0);
    expect(await lab.runtime.store.getPair("vm-42-43")).toEqual(before);
  });

  it("asks again on the record another writer changed first, and answers 503 when the record keeps changing", async () => {
    const now = new Date("2026-12-01T10:00:00Z");
    const sent: ReconcileMessage[] = [];
    const over = async (store: ContestedStore) => {
      await store.createPair(newPairRecord("vm-42-43", now));
      return { config: seedConfig, store, clock: () => now, queue: { send: (m: ReconcileMessage) => Promise.resolve(void sent.push(m)) } };
    };
    const once = await over(new ContestedStore(1));
    expect((await resetNow(once, "vm-42-43", "mara", silentLogger)).status).toBe(202);
    expect((await once.store.getPair("vm-42-43"))?.record).toMatchObject({ reason: "another writer's change", resetRequestedBy: "mara" });
    expect(await once.store.listEvents("vm-42-43")).toHaveLength(1);

    const always = await over(new ContestedStore(Infinity));
    expect(await resetNow(always, "vm-42-43", "mara", silentLogger)).toEqual({ status: 503, body: { error: "Pair vm-42-43's record kept changing; retry." } });
    expect((await always.store.getPair("vm-42-43"))?.record.resetRequestedBy).toBeNull();
    expect(await always.store.listEvents("vm-42-43")).toEqual([]);
    expect(sent).toEqual([{ trigger: "admin" }]);
  });

  it("answers 404 for a pair not in the config, and writes nothing", async () => {
    lab = await startTestLab();
    const answer = await resetNow(lab.runtime, "vm-99-98", "admin", silentLogger);
    expect(answer).toEqual({ status: 404, body: { error: `No pair "vm-99-98" in the lab config; pairs: ${PAIRS.join(", ")}.` } });
    expect(await lab.runtime.store.listPairs()).toEqual([]);
    expect(lab.queue.length).toBe(0);
  });
});

// --- through a local host -------------------------------------------------------------------------

/** The test lab behind a local host, its triggers handing over through a real Azurite queue that the host polls. */
async function serve(options: { rootRedirect?: string } = {}) {
  lab = await startTestLab();
  const runtime = lab.runtime;
  const connectionString = inject("azuriteConnectionString");
  const queueName = `q${randomBytes(6).toString("hex")}`;
  const queue = new CoalescedSends(await StorageReconcileQueue.open({ kind: "connectionString", connectionString }, queueName));
  // Every message the routes queue, as they send it.
  const sent: ReconcileMessage[] = [];
  runtime.queue = { send: (message, options) => (sent.push(message), queue.send(message, options)), now: () => queue.now() };
  const definitions = functionDefinitions(() => Promise.resolve(runtime), { resetSchedule: "0 0 */6 * * *", reconcileQueue: queueName });
  host = await startLocalHost({ definitions, port: 0, logger: silentLogger, queueConnectionString: connectionString, ...options });
  return { lab, url: host.url, sent };
}

/** Polls until `check` passes: the queue function runs within about a second of a message. */
async function eventually<T>(read: () => Promise<T>, check: (value: T) => boolean, ms = 15_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await read();
    if (check(value) || Date.now() > deadline) return value;
    await new Promise((r) => setTimeout(r, 100));
  }
}

type PairView = { id: string; state: string; resetRequestedBy: string | null; resetRequestedAt: string | null; resetRunId: number | null };
const pairsOf = async (url: string): Promise<PairView[]> => (await json(fetch(`${url}/api/pairs`))).pairs;
const runTimer = async (url: string) => expect((await fetch(`${url}/admin/functions/scheduledReset`, { method: "POST" })).status).toBe(202);

describe("admin routes over HTTP (local host, Azurite queue)", () => {
  it("GET /api/pairs/{id}/events?limit= answers JSON newest first; 404 for an unknown pair, 400 for a bad limit", async () => {
    const { lab, url } = await serve();
    await runTimer(url);
    await eventually(() => pairsOf(url), (pairs) => pairs.every((p) => p.state === "resetting" && p.resetRunId !== null));
    const runId = dispatchesOf(lab, "vm-25-26")[0]!.runId!;
    finishReset(lab, runId);
    lab.advance(10);
    await runTimer(url);
    await eventually(() => pairsOf(url), (pairs) => pairs.find((p) => p.id === "vm-25-26")?.state === "clean");

    const response = await fetch(`${url}/api/pairs/vm-25-26/events?limit=2`);
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toMatch(/^application\/json/);
    const body = await json(response);
    const all = (await json(fetch(`${url}/api/pairs/vm-25-26/events`))).events as { kind: string; to: string; at: string }[];
    expect(body).toEqual({ pair: "vm-25-26", events: all.slice(0, 2) });
    expect(all.filter((e) => e.kind !== "routing").map((e) => `${e.kind}:${e.to}`)).toEqual(["state:clean", "dispatch:resetting", "state:resetting"]);
    expect(all.find((e) => e.kind === "state")).toEqual({ at: lab.now.value.toISOString(), kind: "state", trigger: "timer", from: "resetting", to: "clean", reason: `reset run ${runId} succeeded`, resetRequestId: expect.any(String), resetRunId: runId, routing: null, held: false });
    expect(all.map((e) => e.at)).toEqual(all.map((e) => e.at).sort().reverse());

    const unknown = await fetch(`${url}/api/pairs/vm-99-98/events`);
    expect(unknown.status).toBe(404);
    expect((await json(unknown)).error).toMatch(/^No pair "vm-99-98" in the lab config; pairs: vm-25-26, /);
    for (const limit of ["0", "x", "501"]) {
      const bad = await fetch(`${url}/api/pairs/vm-25-26/events?limit=${limit}`);
      expect(bad.status).toBe(400);
      expect((await json(bad)).error).toBe(`limit must be a whole number from 1 to 500, not "${limit}".`);
    }
  });

  it("GET /api/plan answers { pairs: [{ id, state, decision, reason }] } and queues nothing", async () => {
    const { lab, url, sent } = await serve();
    const response = await fetch(`${url}/api/plan`);
    expect(response.status).toBe(200);
    const body = await json(response);
    expect(body.pairs.map((p: PlannedPair) => [p.id, p.state, p.decision])).toEqual(PAIRS.map((id) => [id, "resetting", "reset-dispatched"]));
    expect(body.pairs[0]).toEqual({ id: "vm-25-26", state: "resetting", decision: "reset-dispatched", reason: "reset requested (the VM ran a job or its state is unknown)" });
    expect(sent).toEqual([]);
    expect(lab.github.dispatches).toEqual([]);
    expect(await lab.runtime.store.listPairs()).toEqual([]);
  });

  it("POST /api/pairs/{id}/reset answers 202 naming the signed-in requester, and the host's queue function resets the pair", async () => {
    const { lab, url, sent } = await serve();
    await runTimer(url);
    await eventually(() => pairsOf(url), (pairs) => pairs.every((p) => p.resetRunId !== null));
    for (const d of lab.github.dispatches) finishReset(lab, d.runId!);
    lab.advance(10);
    await runTimer(url);
    await eventually(() => pairsOf(url), (pairs) => pairs.every((p) => p.state === "clean"));
    lab.advance(1);
    sent.length = 0;

    const response = await fetch(`${url}/api/pairs/vm-42-43/reset`, { method: "POST", headers: { "x-ms-client-principal-name": "mara@contoso.com" } });
    expect(response.status).toBe(202);
    expect(await json(response)).toEqual({ pair: "vm-42-43", state: "clean", resetRequestedAt: lab.now.value.toISOString(), resetRequestedBy: "mara@contoso.com", reconcile: "queued" });
    const cleanedBy = dispatchesOf(lab, "vm-42-43")[0]!.runId;
    const resetAgain = (p: PairView | undefined) => p?.state === "resetting" && p.resetRunId !== null && p.resetRunId !== cleanedBy;
    const after = await eventually(() => pairsOf(url), (pairs) => resetAgain(pairs.find((p) => p.id === "vm-42-43")));
    expect(after.map((p) => [p.id, p.state])).toEqual([["vm-25-26", "clean"], ["vm-05-10", "clean"], ["vm-42-43", "resetting"], ["vm-11-12", "clean"]]);
    expect(dispatchesOf(lab, "vm-42-43")).toHaveLength(2);
    expect(sent).toHaveLength(1);

    const again = await fetch(`${url}/api/pairs/vm-42-43/reset`, { method: "POST" });
    expect(again.status).toBe(409);
    expect((await json(again)).error).toMatch(/^Pair vm-42-43 is being reset already \(request [\w-]+/);
    expect(sent).toHaveLength(1);

    // A pair held through its route is refused, with who holds it and why.
    const hold = await fetch(`${url}/api/pairs/vm-25-26/hold`, { method: "POST", headers: { "x-ms-client-principal-name": "mara@contoso.com" }, body: JSON.stringify({ reason: "firmware update" }) });
    expect(hold.status).toBe(200);
    const held = await fetch(`${url}/api/pairs/vm-25-26/reset`, { method: "POST" });
    expect(held.status).toBe(409);
    expect(await json(held)).toEqual({ error: "Pair vm-25-26 is held by mara@contoso.com (firmware update); release it first.", conflict: "held" });
    expect(sent).toHaveLength(2);

    // Without App Service authentication no one is named: "admin".
    expect((await json(fetch(`${url}/api/pairs/vm-11-12/reset`, { method: "POST" }))).resetRequestedBy).toBe("admin");
    await eventually(() => pairsOf(url), (pairs) => pairs.find((p) => p.id === "vm-11-12")?.state === "resetting");
    const unknown = await fetch(`${url}/api/pairs/vm-99-98/reset`, { method: "POST" });
    expect(unknown.status).toBe(404);
    expect((await json(unknown)).error).toMatch(/^No pair "vm-99-98"/);
    expect((await fetch(`${url}/api/pairs/vm-42-43/reset`)).status).toBe(405);
  });

  it("GET /api/status answers the HTML page with its CSP, no referrer, and one data-pair row per pair; / redirects to it", async () => {
    const { lab, url } = await serve({ rootRedirect: "/api/status" });
    const response = await fetch(`${url}/api/status`);
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toBe("text/html; charset=utf-8");
    expect(response.headers.get("content-security-policy")).toBe(STATUS_PAGE_CSP);
    expect(response.headers.get("referrer-policy")).toBe("no-referrer");
    const html = await response.text();
    expect(html).toMatch(/^<!doctype html>/i);
    expect([...html.matchAll(/<tr[^>]* data-pair="([^"]*)"/g)].map((m) => m[1])).toEqual(PAIRS);
    // The handler's page is the route's page.
    expect(html).toBe((await statusPage(lab.runtime, silentLogger)).html);

    const root = await fetch(`${url}/`, { redirect: "manual" });
    expect(root.status).toBe(302);
    expect(root.headers.get("location")).toBe("/api/status");
    const followed = await fetch(`${url}/`);
    expect(followed.url).toBe(`${url}/api/status`);
    expect(followed.headers.get("content-type")).toBe("text/html; charset=utf-8");
  });
});
