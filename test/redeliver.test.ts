/**
 * No lost event: GitHub never redelivers a failed webhook delivery by itself. The redelivery timer
 * reads the App's delivery log with the App JWT (over HTTP, through Octokit's App auth, against
 * the stand-in's JWT check), redelivers each failed workflow_job delivery once, and the job's end
 * it carried resets the pair. The ledger that remembers it is checked on Azurite and in memory.
 */
import { generateKeyPairSync } from "node:crypto";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterEach, describe, expect, inject, it } from "vitest";
import { functionDefinitions, redeliverScheduleOf } from "../functions/definitions.js";
import { labKey } from "../shared/lab/config.js";
import { silentLogger, type Logger } from "../shared/logger.js";
import { createRuntime, type Runtime } from "../shared/runtime.js";
import { NO_REDELIVERY_WARNING, readSettings } from "../shared/settings.js";
import { GitHubStandin } from "../shared/sim/github-standin.js";
import { MemoryQueueTrigger } from "../shared/sim/queue-trigger.js";
import { TableCoverageStore } from "../shared/storage/coverage.js";
import { MAX_REDELIVERY_REQUESTS, MemoryRedeliveryLedger, TableRedeliveryLedger, type RedeliveryLedger } from "../shared/storage/deliveries.js";
import { TableFactStore } from "../shared/storage/facts.js";
import { MemoryReconcileQueue } from "../shared/storage/queue.js";
import { redeliverWebhooks } from "../shared/triggers/redeliver.js";
import { scheduledReset } from "../shared/triggers/timer.js";
import { githubWebhook } from "../shared/triggers/webhook.js";
import { hostRunnerName, seedConfig, vmRunnerName } from "./support/lab.js";
import { openTestStore, uniqueTablePrefix } from "./support/store.js";
import { WEBHOOK_SECRET } from "./support/webhook-deliveries.js";

const connection = () => ({ kind: "connectionString" as const, connectionString: inject("azuriteConnectionString") });
const closers: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const close of closers.splice(0).reverse()) await close();
});

const appKey = () => generateKeyPairSync("rsa", { modulusLength: 2048, publicKeyEncoding: { type: "spki", format: "pem" }, privateKeyEncoding: { type: "pkcs1", format: "pem" } });

/** The app's webhook route on loopback, answering 503 while `down` (a cold start past GitHub's timeout, an outage). */
async function webhookServer(runtime: () => Runtime) {
  const gate = { down: false, answered: [] as number[] };
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      void (async () => {
        const header = (name: string) => (typeof req.headers[name] === "string" ? req.headers[name] : undefined);
        const answer = gate.down
          ? { status: 503, body: { error: "the app is starting" } }
          : await githubWebhook(runtime(), { event: header("x-github-event"), deliveryId: header("x-github-delivery"), signature: header("x-hub-signature-256"), body: Buffer.concat(chunks).toString("utf8") }, silentLogger);
        gate.answered.push(answer.status);
        res.writeHead(answer.status, { "content-type": "application/json" }).end(JSON.stringify(answer.body));
      })();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  closers.push(() => new Promise((resolve) => server.close(() => resolve())));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/api/github-webhook`, gate };
}

/** The seed lab with the App's credentials: every pair reset once and clean. */
async function appLab(logger: Logger = silentLogger) {
  const now = { value: new Date("2026-11-27T12:00:00.000Z") };
  const clock = () => now.value;
  const github = await GitHubStandin.start({ owner: seedConfig.github.owner, repo: seedConfig.github.repo, clock });
  closers.push(() => github.close());
  for (const pair of seedConfig.pairs) {
    github.addRunner({ name: vmRunnerName(pair.id), labels: ["lab", pair.vmRunnerLabel] });
    for (const host of pair.hosts) github.addRunner({ name: hostRunnerName(host.runnerLabel), labels: [host.runnerLabel] });
  }
  const { publicKey, privateKey } = appKey();
  github.enableAppAuth({ appId: "123456", installationId: 7890, publicKeyPem: publicKey });
  const settings = readSettings({
    GITHUB_API_URL: github.url,
    GITHUB_APP_ID: "123456",
    GITHUB_APP_INSTALLATION_ID: "7890",
    GITHUB_APP_PRIVATE_KEY: privateKey.trim().replace(/\n/g, "\\n"),
    GITHUB_WEBHOOK_SECRET: WEBHOOK_SECRET,
    OIDC_DISABLED: "true",
  });
  const tablePrefix = uniqueTablePrefix();
  const tables = { connection: connection(), tablePrefix, lab: labKey(seedConfig) };
  const queue = new MemoryReconcileQueue(clock);
  const runtime = await createRuntime(settings, seedConfig, {
    store: await openTestStore(tablePrefix),
    facts: await TableFactStore.open(tables),
    coverage: await TableCoverageStore.open(tables),
    ledger: await TableRedeliveryLedger.open(tables),
    queue,
    clock,
    logger,
    githubClient: { retries: 0, timeoutMs: 5_000, writeSpacingMs: 0 },
  });
  const webhook = await webhookServer(() => runtime);
  github.enableWebhook({ url: webhook.url, secret: WEBHOOK_SECRET });
  const trigger = new MemoryQueueTrigger(runtime, queue);
  const settle = async () => {
    await trigger.settle();
    const last = trigger.outcomes.at(-1);
    return last?.served === "reconciled" ? last.result : null;
  };
  const advance = (minutes: number) => (now.value = new Date(now.value.getTime() + minutes * 60_000));
  await scheduledReset(runtime, silentLogger);
  await settle();
  for (const d of github.dispatches) github.setRun(d.runId!, { status: "completed", conclusion: "success" });
  advance(10);
  await scheduledReset(runtime, silentLogger);
  expect((await settle())?.pairs.every((p) => p.state === "clean")).toBe(true);
  github.dispatches.length = 0;
  advance(1);
  return { github, runtime, webhook, settle, advance, settings };
}

/** A perf job on vm-25-26 that started (delivered while the app was up) and has just ended. */
async function jobThatEnded(lab: Awaited<ReturnType<typeof appLab>>) {
  const run = lab.github.addRun({ name: "perf", status: "in_progress", jobs: [{ status: "in_progress", runnerName: vmRunnerName("vm-25-26") }] });
  const job = lab.github.jobsOf(Number(run.id))[0]!;
  expect(await lab.github.deliverJob(Number(job.id), "in_progress")).toMatchObject({ status: "OK" });
  await lab.settle();
  lab.advance(3);
  lab.github.setJob(Number(job.id), { status: "completed", conclusion: "success" });
  lab.github.setRun(Number(run.id), { status: "completed", conclusion: "success" });
  return Number(job.id);
}

/** One delivery of the job answered 503 by the app (a cold start, an outage): GitHub logs it failed and never sends it again. */
async function deliveredWhileDown(lab: Awaited<ReturnType<typeof appLab>>, jobId: number, action: "in_progress" | "completed") {
  lab.webhook.gate.down = true;
  const attempt = await lab.github.deliverJob(jobId, action);
  lab.webhook.gate.down = false;
  return attempt;
}

const resetsOf = (lab: Awaited<ReturnType<typeof appLab>>, pair: string) => lab.github.dispatches.filter((d) => d.inputs.pair === pair);

describe("the redelivery timer", () => {
  it("redelivers a job end the app answered 503, once, and the pair is reset at once instead of after the busy hold", async () => {
    const lines: string[] = [];
    const lab = await appLab({ ...silentLogger, info: (m) => lines.push(m) });
    const jobId = await jobThatEnded(lab);
    expect(await deliveredWhileDown(lab, jobId, "completed")).toMatchObject({ status: "Invalid HTTP Response: 503", status_code: 503, redelivery: false });
    lab.advance(1);
    // Without the end, the start recorded 4 minutes ago still holds the pair busy (at a look between
    // timers: the timer's backstop would find the job finished on GitHub, up to 6 hours later).
    await lab.runtime.queue.send({ trigger: "webhook" });
    expect((await lab.settle())?.pairs.find((p) => p.id === "vm-25-26")).toMatchObject({ state: "busy" });

    const requests = lab.github.requests.length;
    expect(await redeliverWebhooks(lab.runtime, lab.runtime.logger)).toEqual({ looked: 2, pages: 1, failed: 1, redelivered: 1, alreadyAsked: 0, errors: [] });
    expect(lab.github.requests.slice(requests).map((r) => `${r.method} ${r.path} ${r.status}`)).toEqual(["GET /app/hook/deliveries 200", "POST /app/hook/deliveries/90000002/attempts 202"]);
    expect(lines.filter((l) => l.startsWith("redeliver {"))).toEqual([expect.stringMatching(/^redeliver \{"looked":2,"pages":1,"failed":1,"redelivered":1,"alreadyAsked":0,"errors":0,"since":"/)]);
    await lab.github.deliveriesSettled();
    expect(lab.github.webhookDeliveries.at(-1)).toMatchObject({ redelivery: true, status: "OK", action: "completed" });
    expect((await lab.settle())?.pairs.find((p) => p.id === "vm-25-26")).toMatchObject({ decision: "reset-dispatched" });
    expect(resetsOf(lab, "vm-25-26")).toHaveLength(1);

    // The next look finds the GUID delivered: nothing to redeliver.
    lab.advance(5);
    expect(await redeliverWebhooks(lab.runtime, silentLogger)).toMatchObject({ failed: 0, redelivered: 0 });
  });

  it("redelivers a delivery GitHub logged as never made (npm start's lost ones): nothing sent until then, the same GUID and body after", async () => {
    const lab = await appLab();
    const jobId = await jobThatEnded(lab);
    const lost = { event: "workflow_job", deliveryId: "0b8c5e2a-6f1d-4c3b-9a7e-2d4f6a8b1c3e", body: JSON.stringify(lab.github.workflowJobEvent(jobId, "completed")) };
    const answered = lab.webhook.gate.answered.length;
    expect(lab.github.logUnreachableDelivery(lost)).toMatchObject({ guid: lost.deliveryId, status: "timed out", status_code: 0, redelivery: false, action: "completed" });
    expect(lab.webhook.gate.answered).toHaveLength(answered);

    expect(await redeliverWebhooks(lab.runtime, silentLogger)).toMatchObject({ failed: 1, redelivered: 1, errors: [] });
    await lab.github.deliveriesSettled();
    expect(lab.webhook.gate.answered.slice(answered)).toEqual([202]);
    expect(lab.github.webhookDeliveries.at(-1)).toMatchObject({ guid: lost.deliveryId, redelivery: true, status: "OK", action: "completed" });
    expect((await lab.settle())?.pairs.find((p) => p.id === "vm-25-26")).toMatchObject({ decision: "reset-dispatched" });
  });

  it("a job start redelivered after its end and the reset that followed neither dirties the clean pair nor resets it again", async () => {
    const lab = await appLab();
    const run = lab.github.addRun({ name: "perf", status: "in_progress", jobs: [{ status: "in_progress", runnerName: vmRunnerName("vm-25-26") }] });
    const jobId = Number(lab.github.jobsOf(Number(run.id))[0]!.id);
    expect(await deliveredWhileDown(lab, jobId, "in_progress")).toMatchObject({ status_code: 503 });
    lab.advance(3);
    lab.github.setJob(jobId, { status: "completed", conclusion: "success" });
    lab.github.setRun(Number(run.id), { status: "completed", conclusion: "success" });
    expect(await lab.github.deliverJob(jobId, "completed")).toMatchObject({ status: "OK" });
    await lab.settle();
    expect(resetsOf(lab, "vm-25-26")).toHaveLength(1);
    lab.github.setRun(resetsOf(lab, "vm-25-26")[0]!.runId!, { status: "completed", conclusion: "success" });
    lab.advance(10);
    await lab.runtime.queue.send({ trigger: "webhook" });
    expect((await lab.settle())?.pairs.find((p) => p.id === "vm-25-26")).toMatchObject({ state: "clean" });

    // An hour later the timer redelivers the lost start: dated by its arrival it would be a job after the reset.
    lab.advance(60);
    expect(await redeliverWebhooks(lab.runtime, silentLogger)).toMatchObject({ failed: 1, redelivered: 1 });
    await lab.github.deliveriesSettled();
    expect(lab.github.webhookDeliveries.at(-1)).toMatchObject({ redelivery: true, status: "OK", action: "in_progress" });
    expect((await lab.settle())?.pairs.find((p) => p.id === "vm-25-26")).toMatchObject({ state: "clean", decision: "not-needed" });
    expect(resetsOf(lab, "vm-25-26")).toHaveLength(1);
  });

  it("does not redeliver again a delivery whose redelivery failed too, nor one another instance redelivered", async () => {
    const lab = await appLab();
    const jobId = await jobThatEnded(lab);
    lab.webhook.gate.down = true;
    await lab.github.deliverJob(jobId, "completed");
    expect(await redeliverWebhooks(lab.runtime, silentLogger)).toMatchObject({ failed: 1, redelivered: 1 });
    await lab.github.deliveriesSettled();
    expect(lab.github.webhookDeliveries.at(-1)).toMatchObject({ redelivery: true, status: "Invalid HTTP Response: 503" });
    for (const minutes of [5, 5]) {
      lab.advance(minutes);
      expect(await redeliverWebhooks(lab.runtime, silentLogger)).toMatchObject({ failed: 1, redelivered: 0, alreadyAsked: 1 });
    }
    // A second instance sharing the ledger (same tables) does not ask either.
    const other = { ...lab.runtime, ledger: lab.runtime.ledger };
    expect(await redeliverWebhooks(other, silentLogger)).toMatchObject({ redelivered: 0, alreadyAsked: 1 });
    expect(lab.github.requests.filter((r) => r.method === "POST" && r.path.endsWith("/attempts"))).toHaveLength(1);
  });

  it("asks again at a later look when GitHub refused the redelivery request, however long after", async () => {
    const lab = await appLab();
    const jobId = await jobThatEnded(lab);
    await deliveredWhileDown(lab, jobId, "completed");
    // The look comes late (the app was stopped): its cursor would move past the refused delivery's overlap.
    lab.advance(25);
    lab.github.fail({ method: "POST", path: /\/attempts$/ }, { status: 500 }, 1);
    expect(await redeliverWebhooks(lab.runtime, silentLogger)).toMatchObject({ failed: 1, redelivered: 0, errors: [expect.stringContaining("500")] });
    // Past the look's 10-minute overlap: the cursor stayed before the refused delivery, so it is listed and asked again.
    lab.advance(30);
    expect(await redeliverWebhooks(lab.runtime, silentLogger)).toMatchObject({ failed: 1, redelivered: 1, errors: [] });
    await lab.github.deliveriesSettled();
    expect((await lab.settle())?.pairs.find((p) => p.id === "vm-25-26")).toMatchObject({ decision: "reset-dispatched" });
  });

  it("reads the log page by page with the cursor, back to where the last look ended", async () => {
    const lab = await appLab();
    const jobId = await jobThatEnded(lab);
    await deliveredWhileDown(lab, jobId, "completed");
    lab.advance(1);
    // 120 later deliveries of queued jobs (answered 202, recorded nothing): the failed one is on page 2.
    const queued = lab.github.addRun({ name: "perf", status: "queued", jobs: Array.from({ length: 120 }, () => ({ status: "queued" as const, runnerName: null })) });
    for (const job of lab.github.jobsOf(Number(queued.id))) await lab.github.deliverJob(Number(job.id), "queued");
    expect(await redeliverWebhooks(lab.runtime, silentLogger)).toMatchObject({ pages: 2, failed: 1, redelivered: 1 });
    expect(lab.github.requests.filter((r) => r.path === "/app/hook/deliveries").map((r) => r.query.cursor ?? null)).toEqual([null, expect.stringMatching(/^v1_\d+$/)]);
    // The next look reaches back to the last one's newest delivery less LOOK_OVERLAP_MS (10 min): the
    // same two pages, and the redelivery, which succeeded; after a quiet half hour, one empty page.
    lab.advance(30);
    await lab.github.deliveriesSettled();
    expect(await redeliverWebhooks(lab.runtime, silentLogger)).toMatchObject({ pages: 2, looked: 123, failed: 0, redelivered: 0 });
    lab.advance(30);
    expect(await redeliverWebhooks(lab.runtime, silentLogger)).toMatchObject({ pages: 1, looked: 0, failed: 0, redelivered: 0 });
  });

  it("is refused by the stand-in as by GitHub without the App JWT (an installation token is not one)", async () => {
    const lab = await appLab();
    const token = await fetch(`${lab.github.url}/app/installations/7890/access_tokens`, { method: "POST" });
    expect(token.status).toBe(401);
    const listed = await fetch(`${lab.github.url}/app/hook/deliveries`, { headers: { authorization: `token ${lab.github.token}` } });
    expect(listed.status).toBe(401);
    expect(await listed.json()).toMatchObject({ message: "A JSON web token could not be decoded" });
  });
});

describe("with a plain token", () => {
  it("has no redelivery timer, and says once at start-up that lost deliveries wait for the next look", async () => {
    const warnings: string[] = [];
    const settings = readSettings({ GITHUB_TOKEN: "ghp_test", GITHUB_WEBHOOK_SECRET: WEBHOOK_SECRET, OIDC_DISABLED: "true" });
    const runtime = await createRuntime(settings, seedConfig, { store: await openTestStore(), logger: { ...silentLogger, warn: (m) => warnings.push(m) } });
    expect(runtime.deliveries).toBeNull();
    expect(warnings.filter((w) => w === NO_REDELIVERY_WARNING)).toHaveLength(1);
    expect(await redeliverWebhooks(runtime, silentLogger)).toBeNull();
    const names = (s: typeof settings) => functionDefinitions(() => Promise.resolve(runtime), { ...s, redeliverSchedule: redeliverScheduleOf(s) }).map((d) => d.name);
    expect(names(settings)).not.toContain("redeliverWebhooks");
    const app = { ...settings, githubAuth: { kind: "app" as const, appId: "1", installationId: 2, privateKey: "k" } };
    expect(functionDefinitions(() => Promise.resolve(runtime), { ...app, redeliverSchedule: redeliverScheduleOf(app) }).find((d) => d.name === "redeliverWebhooks")).toMatchObject({ kind: "timer", schedule: "0 */5 * * * *" });
  });
});

const ledgers: [string, () => Promise<RedeliveryLedger>][] = [
  ["TableRedeliveryLedger on Azurite", () => TableRedeliveryLedger.open({ connection: connection(), tablePrefix: uniqueTablePrefix(), lab: "microsoft-netperf" })],
  ["MemoryRedeliveryLedger", () => Promise.resolve(new MemoryRedeliveryLedger())],
];

describe.each(ledgers)("RedeliveryLedger: %s", (_, open) => {
  const at = (minute: number) => new Date(Date.UTC(2026, 10, 27, 12, minute));
  it("claims a delivery once; a failed request may be sent again, at most MAX_REDELIVERY_REQUESTS times", async () => {
    const ledger = await open();
    expect(await ledger.claim("g-1", 11, at(0))).toBe(true);
    expect(await ledger.claim("g-1", 12, at(5))).toBe(false);
    for (let request = 2; request <= MAX_REDELIVERY_REQUESTS; request++) {
      await ledger.failed("g-1", "500 Server Error");
      expect(await ledger.claim("g-1", 11, at(request * 5))).toBe(true);
    }
    await ledger.failed("g-1", "500 Server Error");
    expect(await ledger.claim("g-1", 11, at(60))).toBe(false);
    expect(await ledger.claim("g-2", 13, at(60))).toBe(true);
    // Taken by GitHub: never asked again.
    await ledger.sent("g-2");
    expect(await ledger.claim("g-2", 13, at(90))).toBe(false);
  });

  it("asks again for a request left unanswered for 10 minutes (its instance lost between the claim and the answer), not sooner", async () => {
    const ledger = await open();
    expect(await ledger.claim("g-3", 21, at(0))).toBe(true);
    expect(await ledger.claim("g-3", 21, at(9))).toBe(false);
    expect(await ledger.claim("g-3", 21, at(10))).toBe(true);
    expect(await ledger.claim("g-3", 21, at(12))).toBe(false);
  });

  it("moves how far it looked only forward, and prunes old redeliveries", async () => {
    const ledger = await open();
    expect(await ledger.lookedUpTo()).toBeNull();
    await ledger.advance(at(10).toISOString());
    await ledger.advance(at(5).toISOString());
    expect(await ledger.lookedUpTo()).toBe(at(10).toISOString());
    await ledger.claim("old", 1, at(0));
    await ledger.claim("new", 2, at(30));
    await ledger.sent("old");
    await ledger.sent("new");
    expect(await ledger.prune(at(20))).toBe(1);
    expect(await ledger.claim("old", 1, at(40))).toBe(true);
    expect(await ledger.claim("new", 2, at(40))).toBe(false);
  });
});
