/**
 * Faults of the real components: Table Storage gone mid-reconcile, and the GitHub stand-in answering
 * as GitHub does when it limits, breaks or stalls. (500/502 reads, a dispatch answered 500 and a
 * dispatch refused with 422 are in reconcile.test.ts.) Every case fails closed: nothing is
 * dispatched without a claim recorded and a fresh look at GitHub; a failed reconcile queues a
 * retry that looks again a minute later, and the retry or the next trigger recovers.
 */
import { afterEach, describe, expect, inject, it } from "vitest";
import { labKey } from "../shared/lab/config.js";
import type { Logger } from "../shared/logger.js";
import { TableStore } from "../shared/storage/tables.js";
import { jobCompleted } from "../shared/triggers/job-completed.js";
import { beforeRequest, finishReset, perfRun, seedConfig, startTestLab, vmRunnerName, type TestLab } from "./support/lab.js";
import { tableOutage, type TableOutage } from "./support/storage-outage.js";
import { QUICK_STORAGE_RETRY, uniqueTablePrefix } from "./support/store.js";

let lab: TestLab | undefined;
let tables: TableOutage | undefined;
afterEach(async () => {
  await lab?.close();
  await tables?.close();
  lab = tables = undefined;
});

const report = (runId: number) => JSON.stringify({ repository: "microsoft/netperf", runId });
const stored = async (l: TestLab, id: string) => (await l.runtime.store.getPair(id))?.record;
const accepted = (l: TestLab) => l.github.dispatches.filter((d) => d.runId !== null);

/** The alert the worker logs when a reconcile fails (a retry then looks again). */
const reconcileFailed = /^lab-reset alert reconcile-failed: reconcile \([\w-]+, \d+ messages?, try \d+\) failed: /;

/** Log lines by level, to check what an operator would read. */
function capturingLogger() {
  const lines: { level: "info" | "warn" | "error"; text: string }[] = [];
  const logger: Logger = {
    info: (m: string) => lines.push({ level: "info", text: m }),
    warn: (m: string) => lines.push({ level: "warn", text: m }),
    error: (m: string) => lines.push({ level: "error", text: m }),
  };
  const errors = () => lines.filter((l) => l.level !== "info").map((l) => l.text);
  return { logger, lines, errors, alerts: () => errors().filter((l) => reconcileFailed.test(l)).join("\n") };
}

describe("Table Storage gone mid-reconcile", () => {
  // One pair, and quick retries: each Table call made while storage is gone fails in milliseconds, not the SDK's ~7 s.
  const config = { ...seedConfig, pairs: [seedConfig.pairs[0]!] };
  const pairId = config.pairs[0]!.id;

  /** The pair records behind a table endpoint the test cuts; facts, coverage and the queue stay up. */
  async function labWithOutage(logger?: Logger) {
    tables = await tableOutage(inject("azuriteConnectionString"));
    const store = await TableStore.open({ connection: { kind: "connectionString", connectionString: tables.connectionString, retry: QUICK_STORAGE_RETRY }, tablePrefix: uniqueTablePrefix(), lab: labKey(config) });
    lab = await startTestLab({ config, store, ...(logger ? { logger } : {}) });
    return lab;
  }

  it("dispatches nothing when the claim cannot be written; the reconcile fails naming the Table call, and its retried message resets the pair once storage is back", async () => {
    const log = capturingLogger();
    const l = await labWithOutage(log.logger);
    const perf = perfRun(l, [vmRunnerName(pairId)], "completed");
    // The call records the job's end (the facts' tables stay up) and queues a reconcile.
    const call = await jobCompleted(l.runtime, report(perf.id), l.runtime.logger);
    expect(call).toMatchObject({ status: 202, body: { pairs: [{ id: pairId, state: "dirty", jobSinceReset: true }], reconcile: "queued" } });
    // The reconcile lists the records; the pairs' tables go away before the claim is written.
    beforeRequest(l, { path: /\/actions\/runners/ }, 1, () => tables!.cut());
    expect(await l.settle()).toBeNull();
    expect(log.alerts()).toMatch(new RegExp(`pair ${pairId}: Table Storage create pair ${pairId} failed`));
    expect(l.github.dispatches).toHaveLength(0);
    // The retry is queued (the queue stays up), hidden for a minute.
    expect(l.queue.length).toBe(0);

    await tables!.restore();
    l.advance(1);
    expect(l.queue.length).toBe(1);
    const retried = await l.settle();
    expect(retried?.pairs[0]).toMatchObject({ id: pairId, decision: "reset-dispatched" });
    expect(accepted(l)).toHaveLength(1);
    expect(await stored(l, pairId)).toMatchObject({ state: "resetting", lastJobRunId: perf.id, resetRequestId: accepted(l)[0]!.inputs.request_id });
  }, 60_000);

  it("between claim and dispatch: no dispatch while the claim cannot be read back; once storage is back the claim times out and the pair is reset", async () => {
    const log = capturingLogger();
    const l = await labWithOutage(log.logger);
    // The second runners listing is the look after the claim: storage goes away just before it.
    beforeRequest(l, { path: /\/actions\/runners/ }, 2, () => tables!.cut());
    await expect(l.timer()).rejects.toThrow(/not reconciled/);
    expect(log.alerts()).toMatch(new RegExp(`pair ${pairId}: could not release claim`));
    expect(l.github.dispatches).toHaveLength(0);

    await tables!.restore();
    const claim = await stored(l, pairId);
    expect(claim).toMatchObject({ state: "resetting", resetRunId: null });
    l.advance(31); // resetTimeoutMinutes
    await l.timer();
    expect(await stored(l, pairId)).toMatchObject({ state: "failed", lastError: expect.stringMatching(new RegExp(`no reset run for request ${claim!.resetRequestId} appeared`)) });
    l.advance(16); // the first backoff
    await l.timer();
    expect(accepted(l)).toHaveLength(1);
    expect(await stored(l, pairId)).toMatchObject({ state: "resetting", attempts: 2, resetRequestId: accepted(l)[0]!.inputs.request_id });
  }, 60_000);

  it("as the dispatch goes out: the run's id is lost with storage, found by its request id once it is back, and nothing is dispatched twice", async () => {
    const log = capturingLogger();
    const l = await labWithOutage(log.logger);
    beforeRequest(l, { path: /\/dispatches$/ }, 1, () => tables!.cut());
    await l.timer().catch(() => undefined);
    expect(accepted(l)).toHaveLength(1);
    const { request_id: requestId } = accepted(l)[0]!.inputs;
    expect(log.errors().join("\n")).toMatch(new RegExp(`pair ${pairId}: Table Storage update of claim ${String(requestId)} failed: Table Storage update pair ${pairId} failed`));

    await tables!.restore();
    // What storage kept is the claim: the request id, not yet its run.
    expect(await stored(l, pairId)).toMatchObject({ state: "resetting", resetRequestId: requestId, resetRunId: null });
    l.advance(2);
    const follow = await l.timer();
    expect(follow.pairs[0]).toMatchObject({ decision: "already-resetting", resetRunId: accepted(l)[0]!.runId });
    finishReset(l, accepted(l)[0]!.runId!);
    l.advance(10);
    expect((await l.timer()).pairs[0]).toMatchObject({ state: "clean" });
    expect(l.github.dispatches).toHaveLength(1);
  }, 60_000);
});

describe("GitHub limiting, breaking or stalling", () => {
  const runnersPath = "/repos/microsoft/netperf/actions/runners";
  const secondaryLimit = { message: "You have exceeded a secondary rate limit. Please wait a few minutes before you try again.", documentation_url: "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api" };

  it("waits out a 429 with a short retry-after, then reads again and resets", async () => {
    const log = capturingLogger();
    lab = await startTestLab({ logger: log.logger });
    lab.github.fail({ path: runnersPath }, { status: 429, body: secondaryLimit, headers: { "retry-after": "1" } });
    const started = Date.now();
    const result = await lab.timer();
    expect(Date.now() - started).toBeGreaterThanOrEqual(1_000);
    expect(result.ok).toBe(true);
    expect(accepted(lab)).toHaveLength(4);
    expect(lab.github.requests.filter((r) => r.path === runnersPath).map((r) => r.status).slice(0, 2)).toEqual([429, 200]);
    expect(log.errors().join("\n")).toMatch(/secondary rate limit on GET \S*\/repos\/microsoft\/netperf\/actions\/runners\S*: retrying after 1s/);
  });

  it("fails closed on a 429 whose retry-after is longer than it may wait: no dispatch, the pairs record why", async () => {
    const log = capturingLogger();
    lab = await startTestLab({ logger: log.logger });
    lab.github.fail({ path: runnersPath }, { status: 429, body: secondaryLimit, headers: { "retry-after": "600" } }, 10);
    const perf = perfRun(lab, [vmRunnerName("vm-42-43")], "completed");
    // The call needs the runner list to name the run's pairs.
    const response = await jobCompleted(lab.runtime, report(perf.id), log.logger);
    expect(response.status).toBe(503);
    expect(response.headers).toMatchObject({ "retry-after": "60" });
    expect(log.errors().join("\n")).toMatch(/secondary rate limit on GET \S*\/repos\/microsoft\/netperf\/actions\/runners\S*: giving up this read/);
    // GitHub asked for ten minutes of quiet: the read is given up, not sent again.
    expect(lab.github.requests.filter((r) => r.path === runnersPath)).toHaveLength(1);
    // The reconcile the call queued meets the same limit.
    expect(await lab.settle()).toBeNull();
    expect(lab.github.requests.filter((r) => r.path === runnersPath)).toHaveLength(2);
    expect(lab.github.dispatches).toHaveLength(0);
    lab.advance(1);
    await expect(lab.timer()).rejects.toThrow(/not reconciled/);
    expect(log.alerts()).toMatch(/actions\/runners failed with 429/);
    expect(lab.github.dispatches).toHaveLength(0);
    expect(await stored(lab, "vm-42-43")).toMatchObject({ state: "dirty", lastError: expect.stringMatching(/429/) });
  });

  it("fails closed on a 403 with x-ratelimit-remaining 0 until the reset an hour away", async () => {
    const log = capturingLogger();
    lab = await startTestLab({ logger: log.logger });
    const inAnHour = String(Math.floor(Date.now() / 1000) + 3600);
    lab.github.fail(
      { path: runnersPath },
      { status: 403, body: { message: "API rate limit exceeded for installation ID 1.", documentation_url: "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api" }, headers: { "x-ratelimit-remaining": "0", "x-ratelimit-reset": inAnHour } },
      10,
    );
    await expect(lab.timer()).rejects.toThrow(/not reconciled/);
    expect(log.alerts()).toMatch(/actions\/runners failed with 403: API rate limit exceeded/);
    expect(lab.github.dispatches).toHaveLength(0);
    expect(log.errors().join("\n")).toMatch(/primary rate limit on GET \S*\/repos\/microsoft\/netperf\/actions\/runners\S*: giving up this read/);
    expect((await stored(lab, "vm-25-26"))?.lastError).toMatch(/403: API rate limit exceeded.*rate limit is spent/);
  });

  it("fails closed on a runner list answered 200 with a body that is not JSON", async () => {
    const log = capturingLogger();
    lab = await startTestLab({ logger: log.logger });
    lab.github.fail({ path: runnersPath }, { status: 200, raw: '{"total_count": 10, "runners": [{"id": 1, "name": "VM-25-', headers: { "content-type": "application/json; charset=utf-8" } }, 10);
    await expect(lab.timer()).rejects.toThrow(/not reconciled/);
    expect(log.alerts()).toMatch(/GET \/repos\/microsoft\/netperf\/actions\/runners failed/);
    expect(lab.github.dispatches).toHaveLength(0);
    expect((await stored(lab, "vm-25-26"))?.lastError).toMatch(/could not read GitHub/);
  });

  it("fails closed on a read that hangs past the client's time limit, with every try given up in time", async () => {
    const log = capturingLogger();
    lab = await startTestLab({ logger: log.logger, githubClient: { timeoutMs: 300, retries: 1 } });
    lab.github.hang({ path: runnersPath }, 2);
    const perf = perfRun(lab, [vmRunnerName("vm-05-10")], "completed");
    let started = Date.now();
    const response = await jobCompleted(lab.runtime, report(perf.id), lab.runtime.logger);
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(response.status).toBe(503);
    expect(JSON.stringify(response.body)).toMatch(/actions\/runners failed.*aborted due to timeout/);
    expect(lab.github.dispatches).toHaveLength(0);

    // The reconcile the call queued meets hanging reads too: it gives up in time and dispatches nothing.
    lab.github.hang({ path: runnersPath }, 2);
    started = Date.now();
    expect(await lab.settle()).toBeNull();
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(log.alerts()).toMatch(/actions\/runners failed.*aborted due to timeout/);
    expect(lab.github.dispatches).toHaveLength(0);
    // Its retry, a minute later, finds GitHub answering, and the pair the run used is reset.
    lab.advance(1);
    expect((await lab.settle())?.pairs.find((p) => p.id === "vm-05-10")).toMatchObject({ decision: "reset-dispatched" });
    expect(await stored(lab, "vm-05-10")).toMatchObject({ state: "resetting", lastJobRunId: perf.id });
  });

  it("keeps the claim of a dispatch that hung, never sends it twice, and retries it after resetTimeoutMinutes and the backoff", async () => {
    const log = capturingLogger();
    lab = await startTestLab({ logger: log.logger, githubClient: { timeoutMs: 300 } });
    lab.github.hang({ method: "POST", path: /\/dispatches$/ }, 1); // the first pair's dispatch: vm-25-26
    await expect(lab.timer()).rejects.toThrow(/not reconciled/);
    expect(log.alerts()).toMatch(/vm-25-26: GitHub POST .*dispatches failed with 500: The operation was aborted due to timeout/);
    expect(accepted(lab).map((d) => d.inputs.pair)).toEqual(["vm-05-10", "vm-42-43", "vm-11-12"]);
    for (const d of accepted(lab)) finishReset(lab, d.runId!);
    expect(await stored(lab, "vm-25-26")).toMatchObject({ state: "resetting", resetRunId: null, lastError: expect.stringMatching(/dispatch answer unknown/) });

    lab.advance(10);
    // The failed timer message is retried with this one: the claim is followed, not dispatched again.
    await lab.timer();
    expect(accepted(lab)).toHaveLength(3);
    expect(lab.github.requests.filter((r) => r.method === "POST" && r.path.endsWith("/dispatches"))).toHaveLength(4);
    lab.advance(21); // past resetTimeoutMinutes (30): the look due then judges it, with no trigger
    const timedOut = (await lab.settle())!;
    expect(timedOut.pairs[0]).toMatchObject({ id: "vm-25-26", state: "failed", decision: "reset-failed" });
    expect((await stored(lab, "vm-25-26"))?.lastError).toMatch(/no reset run for request .* appeared within 30 minutes/);
    lab.advance(16); // past the first backoff (15 minutes)
    const retried = await lab.timer();
    expect(retried.pairs[0]).toMatchObject({ id: "vm-25-26", decision: "reset-dispatched" });
    expect(await stored(lab, "vm-25-26")).toMatchObject({ state: "resetting", attempts: 2 });
    expect(accepted(lab).filter((d) => d.inputs.pair === "vm-25-26")).toHaveLength(1);
  });

  it("records a dispatch of a workflow GitHub does not have (404) as failed, with GitHub's answer and the next try", async () => {
    const log = capturingLogger();
    lab = await startTestLab({ config: { ...seedConfig, resetWorkflow: { workflow: "4040404", ref: "main" } }, logger: log.logger });
    await expect(lab.timer()).rejects.toThrow(/not reconciled/);
    expect(accepted(lab)).toHaveLength(0);
    const record = await stored(lab, "vm-25-26");
    expect(record).toMatchObject({ state: "failed", attempts: 1, lastError: expect.stringMatching(/GitHub refused the dispatch: .*dispatches failed with 404: Not Found/) });
    expect(record?.reason).toMatch(/retrying after/);
    expect(log.errors().join("\n")).toMatch(/pair vm-25-26: GitHub POST \/repos\/microsoft\/netperf\/actions\/workflows\/4040404\/dispatches failed with 404/);
  });
});
