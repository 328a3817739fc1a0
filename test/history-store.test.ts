/**
 * The history store's contract, on Table Storage (Azurite) and in memory: rows merged field by
 * field in any order, read from a time, pruned after it, runner rows kept; and the pair store's
 * events read from a time (the report's window).
 */
import { describe, expect, it, inject } from "vitest";
import { MemoryHistoryStore, TableHistoryStore, type HistoryStore, type RunnerNews } from "../shared/storage/history.js";
import { noteRunners } from "../shared/reconcile/runners.js";
import type { LabView } from "../shared/reconcile/observe.js";
import { silentLogger } from "../shared/logger.js";
import { MemoryStore } from "../shared/storage/memory.js";
import type { PairEvent } from "../shared/lab/pair-record.js";
import type { PairStore } from "../shared/storage/tables.js";
import { openTestStore, uniqueTablePrefix } from "./support/store.js";

const clock = { now: new Date("2026-12-01T10:00:00.000Z") };
const implementations: [string, () => Promise<HistoryStore>][] = [
  ["TableHistoryStore on Azurite", () => TableHistoryStore.open({ connection: { kind: "connectionString", connectionString: inject("azuriteConnectionString") }, tablePrefix: uniqueTablePrefix(), lab: "microsoft.netperf", clock: () => clock.now })],
  ["MemoryHistoryStore", () => Promise.resolve(new MemoryHistoryStore(() => clock.now))],
];

describe.each(implementations)("HistoryStore: %s", (_, open) => {
  it("merges what each delivery knows into one row per job, whatever the order", async () => {
    const history = await open();
    clock.now = new Date("2026-12-01T10:05:00.000Z");
    await history.recordJobs([{ jobId: 7, runId: 3, completedAt: "2026-12-01T10:04:00.000Z", conclusion: "success", runnerName: "VM-1-2" }]);
    await history.recordJobs([{ jobId: 7, runId: 3, labels: ["self-hosted", "lab"], queuedAt: "2026-12-01T09:50:00.000Z", startedAt: "2026-12-01T09:55:00.000Z", runnerName: "VM-1-2" }]);
    const { jobs } = await history.read(new Date("2026-12-01T10:00:00.000Z"));
    expect(jobs).toEqual([{ jobId: 7, runId: 3, labels: ["self-hosted", "lab"], runnerName: "VM-1-2", queuedAt: "2026-12-01T09:50:00.000Z", startedAt: "2026-12-01T09:55:00.000Z", completedAt: "2026-12-01T10:04:00.000Z", conclusion: "success", touchedAt: "2026-12-01T10:05:00.000Z" }]);
  });

  it("keeps resets and runners apart from jobs, a runner name with a backslash or slash included", async () => {
    const history = await open();
    await history.recordResets([{ requestId: "r-1", pairId: "vm-1-2", runId: 9, dispatchedAt: "2026-12-01T10:00:00.000Z" }]);
    await history.recordResets([{ requestId: "r-1", pairId: "vm-1-2", endedAt: "2026-12-01T10:07:00.000Z", outcome: "ok" }]);
    await history.recordRunners([{ runnerName: "HOST\\admin/1", pairId: "vm-1-2", role: "host", labels: ["parent=HOST\\admin"] }]);
    const read = await history.read(new Date(0));
    expect(read.resets).toMatchObject([{ requestId: "r-1", runId: 9, dispatchedAt: "2026-12-01T10:00:00.000Z", endedAt: "2026-12-01T10:07:00.000Z", outcome: "ok", startedAt: null }]);
    expect(read.runners).toMatchObject([{ runnerName: "HOST\\admin/1", role: "host", labels: ["parent=HOST\\admin"] }]);
    expect(read.jobs).toEqual([]);
  });

  it("reads rows written since a time, prunes those written before one, and keeps runner rows", async () => {
    const history = await open();
    clock.now = new Date("2026-10-01T00:00:00.000Z");
    await history.recordJobs([{ jobId: 1, runId: 1, startedAt: "2026-10-01T00:00:00.000Z" }]);
    await history.recordRunners([{ runnerName: "VM-1-2", pairId: "vm-1-2", role: "vm", labels: [] }]);
    clock.now = new Date("2026-12-01T00:00:00.000Z");
    await history.recordJobs([{ jobId: 2, runId: 2, startedAt: "2026-12-01T00:00:00.000Z" }]);
    expect((await history.read(new Date("2026-11-01T00:00:00.000Z"))).jobs.map((j) => j.jobId)).toEqual([2]);
    expect(await history.prune(new Date("2026-11-01T00:00:00.000Z"))).toBe(1);
    const left = await history.read(new Date(0));
    expect(left.jobs.map((j) => j.jobId)).toEqual([2]);
    expect(left.runners).toHaveLength(1);
  });
});

const pairStores: [string, () => Promise<PairStore>][] = [
  ["TableStore on Azurite", () => openTestStore()],
  ["MemoryStore", () => Promise.resolve(new MemoryStore())],
];

describe.each(pairStores)("PairStore.listEventsSince: %s", (_, open) => {
  it("lists every event at or after the time, newest first", async () => {
    const store = await open();
    const event = (at: string): PairEvent => ({ pairId: "vm-1-2", at, kind: "state", trigger: "timer", from: "clean", to: "busy", reason: at, resetRequestId: null, resetRunId: null });
    await store.appendEvents(["2026-12-01T09:00:00.000Z", "2026-12-01T10:00:00.000Z", "2026-12-01T10:00:00.001Z", "2026-12-01T11:00:00.000Z"].map(event));
    const since = await store.listEventsSince("vm-1-2", new Date("2026-12-01T10:00:00.000Z"));
    expect(since.map((e) => e.reason)).toEqual(["2026-12-01T11:00:00.000Z", "2026-12-01T10:00:00.001Z", "2026-12-01T10:00:00.000Z"]);
  });
});

describe("the reconcile's runner rows", () => {
  it("are written once, again when a runner changes pair or labels, never for a routing label coming or going", async () => {
    const written: RunnerNews[][] = [];
    const history = { recordRunners: (rows: RunnerNews[]) => (written.push(rows), Promise.resolve()) };
    const pair = { id: "vm-1-2", vmRunnerLabel: "vm-1-2", hosts: [{ runnerLabel: "parent=h1\\u", vmName: "a" }, { runnerLabel: "child=h2\\u", vmName: "b" }] };
    const deps = { history, config: { pairs: [pair], routingLabels: ["lab"] }, logger: silentLogger };
    const view = (vmLabels: string[]): LabView => {
      const vm = { id: 1, name: "VM-1-2", status: "online", busy: false, labels: vmLabels.map((name) => ({ name })) };
      return { byLabel: new Map(vmLabels.map((l) => [l.toLowerCase(), [vm]])), jobByRunner: new Map(), jobsRead: false };
    };
    await noteRunners(deps, view(["self-hosted", "vm-1-2", "lab"]));
    await noteRunners(deps, view(["self-hosted", "vm-1-2"]));
    await noteRunners(deps, view(["self-hosted", "vm-1-2", "lab"]));
    expect(written).toHaveLength(1);
    expect(written[0]).toEqual([{ runnerName: "VM-1-2", pairId: "vm-1-2", role: "vm", labels: ["self-hosted", "vm-1-2", "lab"] }]);
    await noteRunners(deps, view(["self-hosted", "vm-1-2", "lab", "os-linux"]));
    expect(written).toHaveLength(2);
  });
});
