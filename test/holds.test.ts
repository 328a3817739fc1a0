/**
 * Holds: POST/DELETE /api/pairs/{id}/hold through the local host over the test lab (its memory
 * queue served by `lab.settle()`), and what a hold does to the reconcile: no reset, routing closed.
 */
import { afterEach, describe, expect, it } from "vitest";
import { functionDefinitions } from "../functions/definitions.js";
import { holdPair, releasePair } from "../shared/admin/holds.js";
import type { LabConfig } from "../shared/lab/config.js";
import { decide, type DecideInput } from "../shared/lab/decide.js";
import { newPairRecord } from "../shared/lab/pair-record.js";
import { startLocalHost, type LocalHost } from "../shared/local/host.js";
import { silentLogger } from "../shared/logger.js";
import type { ReconcileMessage } from "../shared/storage/queue.js";
import { beforeRequest, finishReset, perfRun, seedConfig, startTestLab, vmRunnerName, type TestLab } from "./support/lab.js";
import { ContestedStore } from "./support/store.js";

let lab: TestLab | undefined;
let host: LocalHost | undefined;
afterEach(async () => {
  await host?.close();
  await lab?.close();
  host = lab = undefined;
});

const routed: LabConfig = { ...seedConfig, routingLabels: ["lab"] };
const stored = async (l: TestLab, id: string) => (await l.runtime.store.getPair(id))?.record;
const dispatchesOf = (l: TestLab, id: string) => l.github.dispatches.filter((d) => d.inputs.pair === id && d.runId !== null);
const labelsOf = (l: TestLab, runnerName: string) => l.github.getRunner(runnerName)!.labels.map((x) => x.name);

async function serve(config: LabConfig = routed) {
  lab = await startTestLab({ config });
  const runtime = lab.runtime;
  host = await startLocalHost({ definitions: functionDefinitions(() => Promise.resolve(runtime), runtime.settings), port: 0, logger: silentLogger });
  return { lab, url: host.url };
}

const hold = (url: string, id: string, body: unknown, headers: Record<string, string> = {}) =>
  fetch(`${url}/api/pairs/${id}/hold`, { method: "POST", headers: { "content-type": "application/json", ...headers }, body: typeof body === "string" ? body : JSON.stringify(body) });
const release = (url: string, id: string) => fetch(`${url}/api/pairs/${id}/hold`, { method: "DELETE" });

/** Every pair reset and clean, `lab` on every VM runner. */
async function cleanLab(l: TestLab) {
  await l.timer();
  for (const d of l.github.dispatches) if (d.runId !== null) finishReset(l, d.runId);
  l.advance(10);
  await l.timer();
  l.github.dispatches.length = 0;
  l.advance(1);
}

describe("POST and DELETE /api/pairs/{id}/hold", () => {
  it("holds a pair with who and why from the request, queues a reconcile, and releases it", async () => {
    const { lab, url } = await serve();
    const answer = await hold(url, "vm-42-43", { reason: "firmware update" }, { "x-ms-client-principal-name": "alice@example.com" });
    expect(answer.status).toBe(200);
    expect(await answer.json()).toMatchObject({ pair: { id: "vm-42-43", holdBy: "alice@example.com", holdReason: "firmware update", holdSince: lab.now.value.toISOString() }, reconcile: "queued" });
    expect(await stored(lab, "vm-42-43")).toMatchObject({ holdBy: "alice@example.com", holdReason: "firmware update", holdSince: lab.now.value.toISOString() });
    expect(lab.queue.length).toBe(1);
    const events = await lab.runtime.store.listEvents("vm-42-43");
    expect(events.map((e) => [e.kind, e.trigger, e.reason])).toEqual([["hold", "admin", "held by alice@example.com: firmware update"]]);

    lab.advance(1);
    const released = await release(url, "vm-42-43");
    expect(released.status).toBe(200);
    expect(await released.json()).toMatchObject({ pair: { id: "vm-42-43", holdBy: null, holdReason: null, holdSince: null } });
    expect(await stored(lab, "vm-42-43")).toMatchObject({ holdBy: null, holdReason: null, holdSince: null });
    expect((await lab.runtime.store.listEvents("vm-42-43"))[0]).toMatchObject({ kind: "hold", reason: expect.stringMatching(/^released by admin \(held by alice@example.com since/) });
  });

  it("names the holder admin without a signed-in principal, and keeps holdSince when the hold is renewed", async () => {
    const { lab, url } = await serve();
    await hold(url, "vm-25-26", { reason: "re-taking the checkpoint" });
    const since = lab.now.value.toISOString();
    lab.advance(5);
    await hold(url, "vm-25-26", { reason: "re-taking the checkpoint, take 2" });
    expect(await stored(lab, "vm-25-26")).toMatchObject({ holdBy: "admin", holdReason: "re-taking the checkpoint, take 2", holdSince: since });
  });

  it("answers 404 for a pair not in the config and 400 without a reason", async () => {
    const { lab, url } = await serve();
    const unknown = await hold(url, "vm-99-98", { reason: "x" });
    expect(unknown.status).toBe(404);
    expect(((await unknown.json()) as { error: string }).error).toMatch(/No pair "vm-99-98" in the lab config; pairs: vm-25-26/);
    expect((await release(url, "vm-99-98")).status).toBe(404);
    for (const body of [{}, { reason: "  " }, { reason: 5 }, "not json", ""]) {
      const answer = await hold(url, "vm-25-26", body);
      expect(answer.status, JSON.stringify(body)).toBe(400);
      expect(((await answer.json()) as { error: string }).error).toMatch(/reason/);
    }
    expect(await lab.runtime.store.listPairs()).toEqual([]);
    expect(lab.queue.length).toBe(0);
  });

  it("holds on the record another writer changed first, answers 503 when it keeps changing, and queues a release that changes nothing", async () => {
    const now = new Date("2026-12-01T10:00:00Z");
    const sent: ReconcileMessage[] = [];
    const over = async (store: ContestedStore) => {
      await store.createPair(newPairRecord("vm-42-43", now));
      return { config: seedConfig, store, clock: () => now, queue: { send: (m: ReconcileMessage) => Promise.resolve(void sent.push(m)) } };
    };
    const request = { pairId: "vm-42-43", principal: "bob", body: JSON.stringify({ reason: "cabling" }) };
    const once = await over(new ContestedStore(1));
    expect((await holdPair(once, request, silentLogger)).body).toMatchObject({ pair: { reason: "another writer's change", holdBy: "bob" }, changed: true });
    expect((await once.store.listEvents("vm-42-43")).map((e) => e.reason)).toEqual(["held by bob: cabling"]);

    const always = await over(new ContestedStore(Infinity));
    expect(await holdPair(always, request, silentLogger)).toEqual({ status: 503, body: { error: "pair vm-42-43 kept changing under reconciles; retry." }, headers: { "retry-after": "5" } });
    expect((await always.store.getPair("vm-42-43"))?.record.holdBy).toBeNull();
    expect(sent).toHaveLength(1);

    expect((await releasePair(always, request, silentLogger)).body).toMatchObject({ pair: { id: "vm-42-43", holdBy: null }, changed: false, reconcile: "queued" });
    expect(await always.store.listEvents("vm-42-43")).toEqual([]);
    expect(sent).toEqual([{ trigger: "admin" }, { trigger: "admin" }]);
  });
});

describe("a held pair", () => {
  it("is not reset even when dirty and idle; released, it is reset by the normal rules", async () => {
    const { lab, url } = await serve(seedConfig.routingLabels.length === 0 ? seedConfig : { ...seedConfig, routingLabels: [] });
    expect((await hold(url, "vm-05-10", { reason: "maintenance" })).status).toBe(200);
    lab.advance(1);
    const result = await lab.settle();
    expect(result?.pairs.find((p) => p.id === "vm-05-10")).toMatchObject({ state: "dirty", decision: "held" });
    expect(dispatchesOf(lab, "vm-05-10")).toEqual([]);
    expect(dispatchesOf(lab, "vm-25-26")).toHaveLength(1);
    lab.advance(60);
    expect((await lab.timer()).pairs.find((p) => p.id === "vm-05-10")).toMatchObject({ decision: "held" });
    expect(dispatchesOf(lab, "vm-05-10")).toEqual([]);

    lab.advance(1);
    expect((await release(url, "vm-05-10")).status).toBe(200);
    lab.advance(1);
    const after = await lab.settle();
    expect(after?.pairs.find((p) => p.id === "vm-05-10")).toMatchObject({ state: "resetting", decision: "reset-dispatched" });
    expect(dispatchesOf(lab, "vm-05-10")).toHaveLength(1);
  });

  it("has its routing closed while held, and opened again once released (clean and idle)", async () => {
    const { lab, url } = await serve();
    await cleanLab(lab);
    const vm = vmRunnerName("vm-42-43");
    expect(labelsOf(lab, vm)).toContain("lab");
    await hold(url, "vm-42-43", { reason: "firmware update" });
    lab.advance(1);
    const result = await lab.settle();
    expect(result?.pairs.find((p) => p.id === "vm-42-43")).toMatchObject({ state: "clean", decision: "held" });
    expect(labelsOf(lab, vm)).not.toContain("lab");
    expect(await stored(lab, "vm-42-43")).toMatchObject({ routing: "closed", holdBy: "admin" });
    expect((await lab.runtime.store.listEvents("vm-42-43"))[0]).toMatchObject({ kind: "routing", reason: "routing closed (held by admin): removed lab on VM-42-43" });
    // Still held: the next reconciles leave it closed and do not reset it.
    lab.advance(120);
    await lab.timer();
    expect(labelsOf(lab, vm)).not.toContain("lab");
    expect(dispatchesOf(lab, "vm-42-43")).toEqual([]);

    await release(url, "vm-42-43");
    // Closed from the release on for lab-reset's own reasons: the routing alert counts from here, not from the hold.
    expect(await stored(lab, "vm-42-43")).toMatchObject({ routing: "closed", routingSince: lab.now.value.toISOString(), holdBy: null });
    lab.advance(1);
    await lab.settle();
    expect(labelsOf(lab, vm)).toContain("lab");
    expect(await stored(lab, "vm-42-43")).toMatchObject({ routing: "open", holdBy: null });
  });

  it("a hold placed between the claim and the second look releases the claim: no reset is dispatched, and the hold is kept", async () => {
    lab = await startTestLab({ config: routed });
    await cleanLab(lab);
    const perf = perfRun(lab, [vmRunnerName("vm-11-12")], "completed");
    let held: number | undefined;
    // The trigger's own lookup, the first look, then the second look: hold just before the second.
    const runnerLists = beforeRequest(lab, { path: /\/actions\/runners$/ }, 3, async () => {
      held = (await holdPair(lab!.runtime, { pairId: "vm-11-12", principal: "bob", body: JSON.stringify({ reason: "cabling" }) }, silentLogger)).status;
    });
    const { result } = await lab.jobCompleted(JSON.stringify({ repository: "microsoft/netperf", runId: perf.id }));
    expect(runnerLists()).toBeGreaterThanOrEqual(3);
    expect(held).toBe(200);
    expect(dispatchesOf(lab, "vm-11-12")).toEqual([]);
    expect(result?.pairs.find((p) => p.id === "vm-11-12")).toMatchObject({ decision: "held" });
    expect(await stored(lab, "vm-11-12")).toMatchObject({ holdBy: "bob", holdReason: "cabling" });
    expect((await stored(lab, "vm-11-12"))?.state).not.toBe("resetting");
  });
});

describe("decide and holds", () => {
  const pair = seedConfig.pairs[0]!;
  const now = new Date("2026-11-27T12:00:00.000Z");
  const input = (patch: Partial<DecideInput["record"] & object>): DecideInput => ({
    pair,
    record: { ...newPairRecord(pair.id, now), ...patch },
    observation: {
      ok: true,
      vmRunners: [{ name: "VM-25-26", online: true, busy: false }],
      hostRunners: [[{ name: "RR1-NETPERF-26", online: true, busy: false }], [{ name: "RR1-NETPERF-25", online: true, busy: false }]],
      jobRunId: null,
    },
    trigger: "timer",
    now,
    requestId: "r1",
    freshForMinutes: 60,
    resetTimeoutMinutes: 30,
    maxResetAttempts: 5,
    retryBackoffMinutes: 15,
  });

  it.each([
    ["dirty and idle", { state: "dirty" as const }],
    ["failed, past its backoff", { state: "failed" as const, attempts: 1, retryAfter: "2026-11-27T11:00:00.000Z" }],
    ["clean but stale (a periodic reset is due)", { state: "clean" as const, jobSinceReset: false, resetCompletedAt: "2026-11-27T08:00:00.000Z" }],
    ["asked for by an admin", { state: "dirty" as const, resetRequestedAt: "2026-11-27T11:59:00.000Z", resetRequestedBy: "carol" }],
  ])("a held pair %s gets no reset (decision held)", (_, patch) => {
    expect(decide(input(patch)).dispatch).toBe(true);
    const held = decide(input({ ...patch, holdBy: "alice", holdReason: "x", holdSince: "2026-11-27T11:00:00.000Z" }));
    expect(held).toMatchObject({ decision: "held", dispatch: false });
    expect(held.record.holdBy).toBe("alice");
  });

  it("a held pair's state still follows GitHub (busy while a job runs)", () => {
    const busy = decide({ ...input({ state: "clean", jobSinceReset: false, resetCompletedAt: "2026-11-27T11:30:00.000Z", holdBy: "alice" }), observation: { ...(input({}).observation as Extract<DecideInput["observation"], { ok: true }>), jobRunId: 9 } });
    expect(busy).toMatchObject({ decision: "deferred-busy", dispatch: false, record: { state: "busy" } });
  });
});
