import { describe, expect, it } from "vitest";
import { earliest, nextLookFor } from "../shared/lab/looks.js";

const now = new Date("2026-12-07T10:00:00.000Z");
const at = (minutes: number) => new Date(now.getTime() + minutes * 60_000).toISOString();
const base = { now, resetTimeoutMinutes: 60 };

describe("nextLookFor: a look is due only for what no delivery announces", () => {
  it.each([
    ["a clean pair", { record: { state: "clean" as const, resetDispatchedAt: at(-30), routing: "open" as const, routingSince: at(-20) } }, null],
    ["no record", { record: null }, null],
    ["a reset in flight: at its time limit", { record: { state: "resetting" as const, resetDispatchedAt: at(-10) } }, at(50)],
    ["a reset past its limit: none (this look judged it)", { record: { state: "resetting" as const, resetDispatchedAt: at(-90) } }, null],
    ["a start whose hold ran out: none", { record: { state: "busy" as const, resetDispatchedAt: null }, jobStart: { runId: 1, at: at(-20), heldUntil: at(-5) } }, null],
    ["a job start without its end: when its hold runs out", { record: { state: "busy" as const, resetDispatchedAt: null }, jobStart: { runId: 1, at: at(-5), heldUntil: at(10) } }, at(10)],
    ["a start whose end is recorded: none", { record: { state: "dirty" as const, resetDispatchedAt: null }, jobStart: { runId: 1, at: at(-5), heldUntil: null } }, null],
    ["routing just opened: when the busy flag would show a job it took", { record: { state: "clean" as const, resetDispatchedAt: at(-10), routing: "open" as const, routingSince: at(-0.5) } }, at(1)],
    ["routing just opened, and a job start recorded since: none", { record: { state: "busy" as const, resetDispatchedAt: at(-10), routing: "open" as const, routingSince: at(-1) }, jobStart: { runId: 1, at: at(-0.5), heldUntil: null } }, null],
  ])("%s", (_, facts, expected) => {
    const due = nextLookFor({ ...base, ...facts, record: facts.record === null ? null : { routing: null, routingSince: null, ...facts.record } });
    // Just after the due moment, so that the look sees it passed.
    expect(due === null ? null : new Date(due.getTime() - 5_000).toISOString()).toBe(expected);
  });

  it("takes the earliest reason of a pair, and of the lab", () => {
    const due = nextLookFor({ ...base, record: { state: "resetting", resetDispatchedAt: at(-10), routing: "closed", routingSince: at(-10) }, jobStart: { runId: 1, at: at(-5), heldUntil: at(3) } });
    expect(due?.toISOString()).toBe(new Date(Date.parse(at(3)) + 5_000).toISOString());
    expect(earliest(null, new Date(at(5)), null, new Date(at(2)))?.toISOString()).toBe(at(2));
    expect(earliest(null, null)).toBeNull();
  });
});
