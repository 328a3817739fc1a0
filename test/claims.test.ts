import { describe, expect, it } from "vitest";
import { busyAfterSecondLook, releasedRecord } from "../shared/lab/claims.js";
import type { Outcome } from "../shared/lab/decide.js";
import { newPairRecord, type PairRecord } from "../shared/lab/pair-record.js";

const at = (m: number) => new Date(Date.UTC(2026, 11, 7, 12, m)).toISOString();
const record = (over: Partial<PairRecord>): PairRecord => ({ ...newPairRecord("vm-42-43", new Date(at(0))), ...over });
const outcome = (r: PairRecord): Outcome => ({ decision: "reset-dispatched", record: r, changed: true, dispatch: true, events: [], routing: { open: false, why: "the pair is resetting" } });

describe("a claim the second look releases", () => {
  it.each<[string, PairRecord, PairRecord, Partial<PairRecord>]>([
    ["clean as decided, nothing recorded since", record({ state: "resetting", attempts: 1, jobSinceReset: false }), record({ state: "clean", jobSinceReset: false, attempts: 0 }), { state: "clean", attempts: 0 }],
    ["a job recorded meanwhile makes the clean pair dirty", record({ state: "resetting", attempts: 1, jobSinceReset: true, lastJobRunId: 9, lastJobAt: at(5) }), record({ state: "clean", jobSinceReset: false, lastJobAt: at(1) }), { state: "dirty", jobSinceReset: true, lastJobRunId: 9, lastJobAt: at(5) }],
    ["the attempt that never happened is not counted", record({ state: "resetting", attempts: 2 }), record({ state: "dirty", attempts: 2 }), { attempts: 1 }],
    ["an admin's hold and the routing pass's fields are kept", record({ state: "resetting", attempts: 1, holdBy: "alice", holdReason: "checkpoint", holdSince: at(3), routing: "closed", routingSince: at(2), routingError: "403" }), record({ state: "busy" }), { state: "busy", holdBy: "alice", holdReason: "checkpoint", holdSince: at(3), routing: "closed", routingSince: at(2), routingError: "403" }],
  ])("%s", (_, current, again, expected) => {
    expect(releasedRecord(current, again, "claim released before dispatch: busy")).toMatchObject({ ...expected, reason: "claim released before dispatch: busy" });
  });

  it("a start since the first look: the record before the claim, busy, with the job noted", () => {
    const before = record({ state: "dirty", jobSinceReset: false, lastJobRunId: 1, lastJobAt: at(1) });
    const again = outcome(record({ state: "resetting", jobSinceReset: true, lastJobRunId: 7, lastJobAt: at(6) }));
    expect(busyAfterSecondLook(before, again)).toMatchObject({ decision: "deferred-busy", dispatch: false, record: { state: "dirty", jobSinceReset: true, lastJobRunId: 7, lastJobAt: at(6) } });
    expect(busyAfterSecondLook(null, again).record.state).toBe("resetting");
  });
});
