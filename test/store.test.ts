/** One contract, every PairStore: Table Storage on Azurite, and the in-memory store the simulator uses. */
import { describe, expect, it } from "vitest";
import { MemoryStore } from "../shared/storage/memory.js";
import { newPairRecord, type PairEvent } from "../shared/lab/pair-record.js";
import { StoreConflictError, type PairStore } from "../shared/storage/tables.js";
import { openTestStore, uniqueTablePrefix } from "./support/store.js";

const now = new Date("2026-11-27T12:00:00.000Z");

const implementations: [string, (lab?: { prefix: string; lab: string }) => Promise<PairStore>][] = [
  ["TableStore on Azurite", (lab) => openTestStore(lab?.prefix ?? uniqueTablePrefix(), lab?.lab)],
  ["MemoryStore", () => Promise.resolve(new MemoryStore())],
];

describe.each(implementations)("%s", (_, open) => {
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
