/**
 * One contract per store, run against every implementation: Table Storage on Azurite, and the
 * in-memory store the simulator and property tests use. Pair records, job facts, and reconcile coverage.
 */
import { describe, expect, it, inject } from "vitest";
import { MemoryStore } from "../shared/storage/memory.js";
import { newPairRecord, type PairEvent } from "../shared/lab/pair-record.js";
import type { StorageConnection } from "../shared/storage/connection.js";
import { MemoryCoverageStore, TableCoverageStore, type Coverage, type CoverageStore } from "../shared/storage/coverage.js";
import { factKey, MemoryFactStore, TableFactStore, type FactStore, type JobFact } from "../shared/storage/facts.js";
import { StoreConflictError, type PairStore } from "../shared/storage/tables.js";
import { openTestStore, uniqueTablePrefix } from "./support/store.js";

const now = new Date("2026-11-27T12:00:00.000Z");

const implementations: [string, (lab?: { prefix: string; lab: string }) => Promise<PairStore>][] = [
  ["TableStore on Azurite", (lab) => openTestStore(lab?.prefix ?? uniqueTablePrefix(), lab?.lab)],
  ["MemoryStore", () => Promise.resolve(new MemoryStore())],
];

describe.each(implementations)("PairStore: %s", (_, open) => {
  it("round-trips a record, nulls and large run ids included", async () => {
    const store = await open();
    const record = { ...newPairRecord("vm-25-26", now), resetRunId: 12_345_678_901, lastError: null };
    await store.createPair(record);
    const stored = await store.getPair("vm-25-26");
    expect(stored?.record).toEqual(record);
    expect(await store.listPairs()).toHaveLength(1);
    expect(await store.getPair("vm-42-43")).toBeNull();
  });

  it("refuses to create a record twice (409 → conflict)", async () => {
    const store = await open();
    await store.createPair(newPairRecord("vm-25-26", now));
    await expect(store.createPair(newPairRecord("vm-25-26", now))).rejects.toBeInstanceOf(StoreConflictError);
  });

  it("replaces only with the current ETag (412 → conflict), and clears fields set to null", async () => {
    const store = await open();
    const first = await store.createPair({ ...newPairRecord("vm-25-26", now), lastError: "boom" });
    const second = await store.replacePair({ ...newPairRecord("vm-25-26", now), state: "resetting", lastError: null }, first);
    await expect(store.replacePair({ ...newPairRecord("vm-25-26", now), state: "clean" }, first)).rejects.toBeInstanceOf(StoreConflictError);
    const stored = await store.getPair("vm-25-26");
    expect(stored?.record.state).toBe("resetting");
    expect(stored?.record.lastError).toBeNull();
    expect(stored?.etag).toBe(second);
  });

  it("lets exactly one of many concurrent replaces with the same ETag win", async () => {
    const store = await open();
    const etag = await store.createPair(newPairRecord("vm-25-26", now));
    const results = await Promise.allSettled(
      Array.from({ length: 10 }, (_, i) => store.replacePair({ ...newPairRecord("vm-25-26", now), attempts: i + 1 }, etag)),
    );
    expect(results.filter((r) => r.status === "fulfilled")).toHaveLength(1);
    expect(results.every((r) => r.status === "fulfilled" || r.reason instanceof StoreConflictError)).toBe(true);
  });

  it("a replace of a record that does not exist is a conflict", async () => {
    const store = await open();
    await expect(store.replacePair(newPairRecord("vm-25-26", now), 'W/"nope"')).rejects.toBeInstanceOf(StoreConflictError);
  });

  it("lists a pair's events newest first, keeping the order of events of one instant", async () => {
    const store = await open();
    const event = (at: string, to: PairEvent["to"]): PairEvent => ({
      pairId: "vm-25-26", at, kind: "state", trigger: "timer", from: null, to, reason: "test", resetRequestId: null, resetRunId: null,
    });
    await store.appendEvents([event("2026-11-27T10:00:00.000Z", "dirty"), event("2026-11-27T11:00:00.000Z", "resetting"), event("2026-11-27T12:00:00.000Z", "clean")]);
    await store.appendEvents([event("2026-11-27T12:00:00.000Z", "busy")]);
    const events = await store.listEvents("vm-25-26");
    expect(events.map((e) => e.to)).toEqual(["busy", "clean", "resetting", "dirty"]);
    expect(await store.listEvents("vm-25-26", 1)).toHaveLength(1);
    expect(await store.listEvents("vm-42-43")).toEqual([]);
  });
});

describe("TableStore on Azurite", () => {
  it("keeps each lab's pairs apart in a shared table", async () => {
    const prefix = uniqueTablePrefix();
    const a = await openTestStore(prefix, "owner.a");
    const b = await openTestStore(prefix, "owner.b");
    await a.createPair(newPairRecord("vm-01-02", now));
    expect(await b.listPairs()).toEqual([]);
  });
});

const connection = (): StorageConnection => ({ kind: "connectionString", connectionString: inject("azuriteConnectionString") });
const LAB = "microsoft.netperf";

/** Two handles on one store: two instances of the app on one table, or two callers in one process's memory. */
type Open<T> = (options?: { lab?: string; prefix?: string }) => Promise<[T, T]>;

const factStores: [string, Open<FactStore>][] = [
  [
    "TableFactStore on Azurite",
    async ({ lab = LAB, prefix = uniqueTablePrefix() } = {}) => [
      await TableFactStore.open({ connection: connection(), tablePrefix: prefix, lab }),
      await TableFactStore.open({ connection: connection(), tablePrefix: prefix, lab }),
    ],
  ],
  [
    "MemoryFactStore",
    () => {
      const store = new MemoryFactStore();
      return Promise.resolve([store, store]);
    },
  ],
];

const fact = (jobId: number | null, recordedAt: string, extra: Partial<JobFact> = {}): JobFact => ({
  phase: "ended",
  jobId,
  runId: 4000 + (jobId ?? 0),
  runnerName: "VM-25-26",
  runnerId: 17,
  at: "2026-11-27T09:00:00.000Z",
  githubAt: "2026-11-27T08:59:58.000Z",
  source: "webhook",
  recordedAt,
  ...extra,
});
const keysOf = (stored: { key: string }[]) => stored.map((s) => s.key).sort();

describe.each(factStores)("FactStore: %s", (_, open) => {
  it("records a fact once: true the first time, false for every repeat, whoever repeats it", async () => {
    const [a, b] = await open();
    const started = fact(1, "2026-11-27T10:00:00.000Z", { phase: "started" });
    expect(await a.record([started])).toEqual([true]);
    expect(await a.record([started])).toEqual([false]);
    // A repeat from another instance, with another arrival time, is the same fact.
    expect(await b.record([{ ...started, recordedAt: "2026-11-27T10:05:00.000Z" }])).toEqual([false]);
    // The job's end is another fact; a batch answers fact by fact.
    expect(await b.record([fact(1, "2026-11-27T10:06:00.000Z"), started])).toEqual([true, false]);
    const stored = await a.listSince(new Date(0));
    expect(stored.map((s) => s.fact).sort((x, y) => x.phase.localeCompare(y.phase))).toEqual([fact(1, "2026-11-27T10:06:00.000Z"), started]);
    expect(keysOf(stored)).toEqual(["job-1-ended", "job-1-started"]);
  });

  it("lets exactly one of concurrent records of the same fact be new", async () => {
    const [a, b] = await open();
    const answers = await Promise.all(Array.from({ length: 8 }, (_, i) => (i % 2 === 0 ? a : b).record([fact(9, `2026-11-27T10:00:0${i}.000Z`)])));
    expect(answers.flat().filter(Boolean)).toHaveLength(1);
    expect(await a.listSince(new Date(0))).toHaveLength(1);
  });

  it("reads a fact written without GitHub's own time back with githubAt null", async () => {
    const [a] = await open();
    const bare: JobFact = { ...fact(3, "2026-11-27T10:00:00.000Z") };
    delete bare.githubAt;
    await a.record([bare]);
    expect((await a.listSince(new Date(0))).map((s) => s.fact)).toEqual([{ ...bare, githubAt: null }]);
  });

  it("keys a fact without a job id by its run and runner, runner names compared case-insensitively", async () => {
    const [a] = await open();
    const named = fact(null, "2026-11-27T10:00:00.000Z", { runId: 9001, runnerName: "VM-05-10", runnerId: null, source: "job-completed", githubAt: null });
    expect(await a.record([named])).toEqual([true]);
    expect(await a.record([{ ...named, runnerName: "vm-05-10" }])).toEqual([false]);
    expect(await a.record([{ ...named, runnerName: "VM-42-43" }, { ...named, runId: 9002 }])).toEqual([true, true]);
    const stored = await a.listSince(new Date(0));
    expect(stored).toContainEqual({ key: factKey(named), fact: named });
    expect(factKey(named)).toMatch(/^run-9001-[0-9a-f]{16}-ended$/);
    expect(stored).toHaveLength(3);
  });

  it("lists the facts recorded at or after a time, by when they were recorded, not when the job ran", async () => {
    const [a] = await open();
    await a.record([
      fact(1, "2026-11-27T10:00:00.000Z", { at: "2026-11-27T11:59:00.000Z" }),
      fact(2, "2026-11-27T11:00:00.000Z"),
      fact(3, "2026-11-27T12:00:00.000Z", { at: "2026-11-26T12:00:00.000Z" }),
    ]);
    expect(keysOf(await a.listSince(new Date("2026-11-27T11:00:00.000Z")))).toEqual(["job-2-ended", "job-3-ended"]);
    expect(keysOf(await a.listSince(new Date("2026-11-27T11:00:00.001Z")))).toEqual(["job-3-ended"]);
    expect(await a.listSince(new Date("2026-11-27T12:00:00.001Z"))).toEqual([]);
    expect(keysOf(await a.listSince(new Date(0)))).toHaveLength(3);
  });

  it("lists by when facts were recorded, whatever order they were recorded in", async () => {
    const [a] = await open();
    await a.record([fact(1, "2026-11-27T12:00:00.000Z"), fact(2, "2026-11-27T10:00:00.000Z")]);
    await a.record([fact(3, "2026-11-27T11:00:00.000Z"), fact(4, "2026-11-27T11:00:00.000Z")]);
    expect(keysOf(await a.listSince(new Date("2026-11-27T11:00:00.000Z")))).toEqual(["job-1-ended", "job-3-ended", "job-4-ended"]);
    expect(await a.prune(new Date("2026-11-27T11:00:00.000Z"))).toBe(1);
    expect(keysOf(await a.listSince(new Date(0)))).toEqual(["job-1-ended", "job-3-ended", "job-4-ended"]);
  });

  it("prunes the facts recorded before a time, more than a hundred at once included, and keeps the rest", async () => {
    const [a, b] = await open();
    const old = Array.from({ length: 230 }, (_, i) => fact(i + 1, `2026-11-25T10:${String(i % 60).padStart(2, "0")}:00.000Z`));
    const kept = [fact(1001, "2026-11-27T10:00:00.000Z"), fact(1002, "2026-11-27T11:00:00.000Z", { phase: "started" })];
    expect((await a.record([...old, ...kept])).every(Boolean)).toBe(true);
    expect(await b.prune(new Date("2026-11-27T10:00:00.000Z"))).toBe(230);
    expect(keysOf(await a.listSince(new Date(0)))).toEqual(["job-1001-ended", "job-1002-started"]);
    expect(await a.prune(new Date("2026-11-27T10:00:00.000Z"))).toBe(0);
    // A pruned fact may be recorded again (a redelivery days later is news again).
    expect(await a.record([old[0]!])).toEqual([true]);
  });
});

describe("TableFactStore on Azurite", () => {
  it("keeps each lab's facts apart in a shared table, for listing and for pruning", async () => {
    const prefix = uniqueTablePrefix();
    const [a] = await factStores[0]![1]({ prefix, lab: "owner.a" });
    const [b] = await factStores[0]![1]({ prefix, lab: "owner.b" });
    expect(await a.record([fact(1, "2026-11-25T10:00:00.000Z")])).toEqual([true]);
    expect(await b.record([fact(1, "2026-11-25T10:00:00.000Z")])).toEqual([true]);
    expect(await a.prune(new Date("2026-11-27T00:00:00.000Z"))).toBe(1);
    expect(await a.listSince(new Date(0))).toEqual([]);
    expect(keysOf(await b.listSince(new Date(0)))).toEqual(["job-1-ended"]);
  });
});

const coverageStores: [string, Open<CoverageStore>][] = [
  [
    "TableCoverageStore on Azurite",
    async ({ lab = LAB, prefix = uniqueTablePrefix() } = {}) => [
      await TableCoverageStore.open({ connection: connection(), tablePrefix: prefix, lab }),
      await TableCoverageStore.open({ connection: connection(), tablePrefix: prefix, lab }),
    ],
  ],
  [
    "MemoryCoverageStore",
    () => {
      const store = new MemoryCoverageStore();
      return Promise.resolve([store, store]);
    },
  ],
];

const at = (minute: number) => new Date(Date.UTC(2026, 10, 27, 12, minute)).toISOString();
const noRetry = { eventsRetryDue: null, timerRetryDue: null };

describe.each(coverageStores)("CoverageStore: %s", (_, open) => {
  it("starts with nothing covered", async () => {
    const [a] = await open();
    expect(await a.read()).toEqual({ ...noRetry, events: null, timer: null });
  });

  it("only moves forward, field by field", async () => {
    const [a, b] = await open();
    await a.advance({ events: at(10), timer: null });
    expect(await b.read()).toEqual({ ...noRetry, events: at(10), timer: null });
    await b.advance({ events: at(5), timer: at(3) });
    expect(await a.read()).toEqual({ ...noRetry, events: at(10), timer: at(3) });
    await a.advance({ events: null, timer: at(1) });
    expect(await a.read()).toEqual({ ...noRetry, events: at(10), timer: at(3) });
    await a.advance({ events: at(11), timer: at(4) });
    expect(await b.read()).toEqual({ ...noRetry, events: at(11), timer: at(4) });
  });

  it("keeps the retry times beside the coverage: a partial advance moves only what it names", async () => {
    const [a, b] = await open();
    await a.advance({ events: at(10), timer: at(9) });
    await b.advance({ eventsRetryDue: at(12) });
    expect(await a.read()).toEqual({ events: at(10), timer: at(9), eventsRetryDue: at(12), timerRetryDue: null });
    await a.advance({ eventsRetryDue: at(11), timerRetryDue: at(14) });
    expect(await b.read()).toEqual({ events: at(10), timer: at(9), eventsRetryDue: at(12), timerRetryDue: at(14) });
  });

  it("ends at the latest of two instances' concurrent advances", async () => {
    const [a, b] = await open();
    await Promise.all([a.advance({ events: at(20), timer: at(2) }), b.advance({ events: at(21), timer: at(1) })]);
    expect(await a.read()).toEqual({ ...noRetry, events: at(21), timer: at(2) });
  });

  it("ends at the latest, field by field, of many concurrent advances from two instances", async () => {
    const [a, b] = await open();
    // Each instance serves a burst: the latest events time and the latest timer time come from different advances.
    const advances: Partial<Coverage>[] = Array.from({ length: 8 }, (_, i) => ({ events: at(30 + ((i * 5) % 8)), timer: i % 3 === 0 ? at(40 - i) : null }));
    await Promise.all(advances.map((to, i) => (i % 2 === 0 ? a : b).advance(to)));
    expect(await b.read()).toEqual({ ...noRetry, events: at(37), timer: at(40) });
  });
});
