import { describe, expect, it } from "vitest";
import { newPairRecord, type PairEvent } from "../shared/pair-record.js";
import { StoreConflictError } from "../shared/store.js";
import { openTestStore } from "./support/store.js";

const now = new Date("2026-11-27T12:00:00.000Z");

describe("TableStore on Azurite", () => {
  it("round-trips a record, nulls included", async () => {
    const store = await openTestStore();
    const record = { ...newPairRecord("vm-25-26", now), resetRunId: 12_345_678_901, lastError: null };
    await store.createPair(record);
    const stored = await store.getPair("vm-25-26");
    expect(stored?.record).toEqual(record);
    expect(await store.listPairs()).toHaveLength(1);
    expect(await store.getPair("vm-42-43")).toBeNull();
  });

  it("refuses to create a record twice (409 → conflict)", async () => {
    const store = await openTestStore();
    await store.createPair(newPairRecord("vm-25-26", now));
    await expect(store.createPair(newPairRecord("vm-25-26", now))).rejects.toBeInstanceOf(StoreConflictError);
  });

  it("replaces only with the current ETag (412 → conflict), and clears fields set to null", async () => {
    const store = await openTestStore();
    const first = await store.createPair({ ...newPairRecord("vm-25-26", now), lastError: "boom" });
    const second = await store.replacePair({ ...newPairRecord("vm-25-26", now), state: "resetting", lastError: null }, first);
    await expect(store.replacePair({ ...newPairRecord("vm-25-26", now), state: "clean" }, first)).rejects.toBeInstanceOf(StoreConflictError);
    const stored = await store.getPair("vm-25-26");
    expect(stored?.record.state).toBe("resetting");
    expect(stored?.record.lastError).toBeNull();
    expect(stored?.etag).toBe(second);
  });

  it("keeps each lab's pairs apart in a shared table", async () => {
    const a = await openTestStore("sharedlabs", "owner.a");
    const b = await openTestStore("sharedlabs", "owner.b");
    await a.createPair(newPairRecord("vm-01-02", now));
    expect(await b.listPairs()).toEqual([]);
  });

  it("lists a pair's events newest first", async () => {
    const store = await openTestStore();
    const event = (at: string, to: PairEvent["to"]): PairEvent => ({
      pairId: "vm-25-26", at, kind: "state", trigger: "timer", from: null, to, reason: "test", resetRequestId: null, resetRunId: null,
    });
    await store.appendEvents([event("2026-11-27T10:00:00.000Z", "dirty"), event("2026-11-27T11:00:00.000Z", "resetting"), event("2026-11-27T12:00:00.000Z", "clean")]);
    const events = await store.listEvents("vm-25-26");
    expect(events.map((e) => e.to)).toEqual(["clean", "resetting", "dirty"]);
    expect(await store.listEvents("vm-25-26", 1)).toHaveLength(1);
  });
});
