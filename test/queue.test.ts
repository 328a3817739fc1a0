/**
 * The hand-over queue on real Azurite queues: the local host's poller hands the queue function
 * what the Functions host would (Base64 text decoded, JSON parsed, insertion time and dequeue
 * count), deletes on success, retries after the visibility timeout, and moves a message to
 * `<queue>-poison` after maxDequeueCount tries; CoalescedSends sends fewer messages than callers
 * without leaving any caller's facts unqueued.
 */
import { randomBytes } from "node:crypto";
import type { InvocationContext } from "@azure/functions";
import { QueueClient } from "@azure/storage-queue";
import { afterEach, describe, expect, inject, it } from "vitest";
import { functionDefinitions, type FunctionDefinition } from "../functions/definitions.js";
import { startLocalHost, type LocalHost } from "../shared/local/host.js";
import type { QueueHostSettings } from "../shared/local/queue-poller.js";
import type { Logger } from "../shared/logger.js";
import { MAX_DEQUEUE_COUNT } from "../shared/reconcile/worker.js";
import { createRuntime, type Runtime } from "../shared/runtime.js";
import { readSettings } from "../shared/settings.js";
import { GitHubStandin } from "../shared/sim/github-standin.js";
import { CoalescedSends, decodeMessage, encodeMessage, StorageReconcileQueue, type ReconcileMessage, type ReconcileQueue } from "../shared/storage/queue.js";
import { hostRunnerName, seedConfig, vmRunnerName } from "./support/lab.js";

const connectionString = () => inject("azuriteConnectionString");
const connection = () => ({ kind: "connectionString" as const, connectionString: connectionString() });
const uniqueQueue = () => `q-${randomBytes(6).toString("hex")}`;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function waitFor<T>(what: string, probe: () => Promise<T | undefined> | T | undefined, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(25);
  }
}

/** Messages in the queue, visible or hidden. */
const messagesIn = async (queue: QueueClient) => (await queue.getProperties()).approximateMessagesCount ?? 0;

const collectingLogger = () => {
  const lines: string[] = [];
  const logger: Logger = { info: (m) => lines.push(`info ${m}`), warn: (m) => lines.push(`warn ${m}`), error: (m) => lines.push(`error ${m}`) };
  return { lines, logger };
};

const fast: QueueHostSettings = { maxPollingInterval: 50, visibilityTimeout: 1_000, batchSize: 16, maxDequeueCount: 3 };

interface Received {
  entry: unknown;
  meta: Record<string, unknown>;
  at: number;
}

/** A queue function that records what it was handed, failing while `fail()` says so. */
function probeFunction(queueName: string, fail: (n: number) => boolean = () => false) {
  const received: Received[] = [];
  const definition: FunctionDefinition = {
    kind: "queue",
    name: "probe",
    queueName,
    handler: (entry: unknown, context: InvocationContext) => {
      received.push({ entry, meta: { ...context.triggerMetadata }, at: Date.now() });
      return fail(received.length) ? Promise.reject(new Error(`try ${received.length} fails`)) : Promise.resolve();
    },
  };
  return { definition, received };
}

const hosts: LocalHost[] = [];
const closers: (() => Promise<void>)[] = [];
afterEach(async () => {
  await Promise.all(hosts.splice(0).map((h) => h.close()));
  await Promise.all(closers.splice(0).map((c) => c()));
});

async function hostFor(definitions: FunctionDefinition[], logger: Logger, queueSettings: QueueHostSettings = fast) {
  const host = await startLocalHost({ definitions, port: 0, logger, queueConnectionString: connectionString(), queueSettings });
  hosts.push(host);
  return host;
}

describe("the local host's queue trigger", () => {
  it("hands the function the Base64 text decoded and parsed as JSON, with storage's insertion time and the dequeue count, as Azure does", async () => {
    const queueName = uniqueQueue();
    const queue = new QueueClient(connectionString(), queueName);
    await queue.create();
    // What the app sends: Base64 of the JSON text (the trigger's default encoding).
    await (await StorageReconcileQueue.open(connection(), queueName)).send({ trigger: "webhook" });
    const [onQueue] = (await queue.peekMessages()).peekedMessageItems;
    expect(onQueue!.messageText).toBe(Buffer.from('{"trigger":"webhook"}').toString("base64"));
    expect(onQueue!.messageText).toBe(encodeMessage({ trigger: "webhook" }));
    const plain = await queue.sendMessage(Buffer.from("not json").toString("base64"));

    const { definition, received } = probeFunction(queueName);
    await hostFor([definition], collectingLogger().logger);
    await waitFor("both messages", () => (received.length === 2 ? true : undefined));

    const json = received.find((r) => typeof r.entry === "object")!;
    expect(json.entry).toEqual({ trigger: "webhook" });
    expect(json.meta.dequeueCount).toBe(1);
    expect(typeof json.meta.insertionTime).toBe("string");
    const text = received.find((r) => typeof r.entry === "string")!;
    expect(text.entry).toBe("not json");
    expect(text.meta.id).toBe(plain.messageId);
    expect(text.meta.insertionTime).toBe(plain.insertedOn.toISOString());
    // Storage stamps insertion in whole seconds (RFC 1123 in the REST API), in Azure as in Azurite.
    expect(new Date(String(text.meta.insertionTime)).getUTCMilliseconds()).toBe(0);
  });

  it("deletes a message once the function succeeds", async () => {
    const queueName = uniqueQueue();
    const queue = new QueueClient(connectionString(), queueName);
    await queue.create();
    await queue.sendMessage(encodeMessage({ trigger: "job-completed" }));
    const { definition, received } = probeFunction(queueName);
    await hostFor([definition], collectingLogger().logger);
    await waitFor("the call", () => (received.length === 1 ? true : undefined));
    await waitFor("the delete", async () => ((await messagesIn(queue)) === 0 ? true : undefined));
    await sleep(fast.visibilityTimeout + 300);
    expect(received).toHaveLength(1);
    expect(await messagesIn(queue)).toBe(0);
  });

  it("leaves a failed message hidden for visibilityTimeout, then hands it over again with the next dequeue count", async () => {
    const queueName = uniqueQueue();
    const queue = new QueueClient(connectionString(), queueName);
    await queue.create();
    await queue.sendMessage(encodeMessage({ trigger: "webhook" }));
    const { definition, received } = probeFunction(queueName, (n) => n === 1);
    const { lines, logger } = collectingLogger();
    const visibilityTimeout = 3_000;
    await hostFor([definition], logger, { ...fast, visibilityTimeout });
    await waitFor("the first try", () => (received.length === 1 ? true : undefined));
    // Hidden, not gone: a crash or a failure must never lose it.
    await sleep(200);
    expect(await messagesIn(queue)).toBe(1);
    expect((await queue.peekMessages()).peekedMessageItems).toHaveLength(0);
    await waitFor("the second try", () => (received.length === 2 ? true : undefined));
    expect(received[1]!.at - received[0]!.at).toBeGreaterThanOrEqual(visibilityTimeout - 100);
    expect(received.map((r) => r.meta.dequeueCount)).toEqual([1, 2]);
    expect(received[1]!.meta.insertionTime).toBe(received[0]!.meta.insertionTime);
    await waitFor("the delete", async () => ((await messagesIn(queue)) === 0 ? true : undefined));
    expect(lines.some((l) => /^error \[probe\] failed \(try 1 of 3\): try 1 fails$/.test(l))).toBe(true);
  });

  /** The app on the local host over a queue of its own, GitHub answering every request 500. */
  async function failingGitHubApp() {
    const github = await GitHubStandin.start({ owner: seedConfig.github.owner, repo: seedConfig.github.repo });
    closers.push(() => github.close());
    github.fail({ path: /.*/ }, { status: 500, body: { message: "Server Error" } }, 10_000);
    const queueName = uniqueQueue();
    const settings = readSettings({
      GITHUB_API_URL: github.url,
      GITHUB_TOKEN: github.token,
      AzureWebJobsStorage: connectionString(),
      OIDC_DISABLED: "true",
      LAB_TABLE_PREFIX: `t${randomBytes(6).toString("hex")}`,
      RECONCILE_QUEUE: queueName,
    });
    const { lines, logger } = collectingLogger();
    const runtime = await createRuntime(settings, seedConfig, { logger, githubClient: { retries: 0, timeoutMs: 2_000 } });
    await hostFor(functionDefinitions(() => Promise.resolve(runtime), settings), logger, { ...fast, maxDequeueCount: MAX_DEQUEUE_COUNT });
    return { runtime, lines, queue: new QueueClient(connectionString(), queueName), poison: new QueueClient(connectionString(), `${queueName}-poison`) };
  }

  it("takes a message whose reconcile failed off the queue and queues one hidden retry in its place, not the poison queue", async () => {
    const app = await failingGitHubApp();
    await app.runtime.queue.send({ trigger: "webhook" });
    await waitFor("the retry", () => (app.lines.some((l) => /lab-reset alert reconcile-failed: reconcile \(webhook, 1 message, try 1\) failed: .*500.*looking again in 1 min/.test(l)) ? true : undefined));
    // The retry, hidden for a minute, is the one message left; nothing was tried again meanwhile.
    await waitFor("the original gone", async () => ((await messagesIn(app.queue)) === 1 && (await app.queue.peekMessages()).peekedMessageItems.length === 0 ? true : undefined));
    await sleep(3 * fast.visibilityTimeout);
    expect(app.lines.filter((l) => l.includes("lab-reset alert reconcile-failed:"))).toHaveLength(1);
    expect(await app.poison.exists()).toBe(false);
  }, 30_000);

  it("moves a message that is not a reconcile message to <queue>-poison after maxDequeueCount tries, with the poison alert", async () => {
    const app = await failingGitHubApp();
    await app.queue.sendMessage(Buffer.from(JSON.stringify({ trigger: "lunch" })).toString("base64"));
    const moved = await waitFor("the poison message", async () => ((await app.poison.exists()) ? ((await app.poison.peekMessages()).peekedMessageItems[0] ?? undefined) : undefined), 30_000);
    expect(Buffer.from(moved.messageText, "base64").toString("utf8")).toBe('{"trigger":"lunch"}');
    await waitFor("the original gone", async () => ((await messagesIn(app.queue)) === 0 ? true : undefined));
    expect(app.lines.filter((l) => l.includes("lab-reset alert poison-message:"))).toEqual([expect.stringMatching(/^error \[reconcileLab\] lab-reset alert poison-message: queue message ".*" is not a reconcile message \(.*\); it goes to the poison queue$/)]);
    expect(app.lines.some((l) => l.includes("lab-reset alert reconcile-failed:"))).toBe(false);
  }, 60_000);
});

describe("CoalescedSends", () => {
  /** The real queue, each send's start noting whose facts were written by then. */
  async function countingQueue(queueName: string, written: Set<number>) {
    const inner = await StorageReconcileQueue.open(connection(), queueName);
    const sends: { sawWritten: Set<number>; done: boolean; message: ReconcileMessage }[] = [];
    const queue: ReconcileQueue = {
      now: () => inner.now(),
      send: async (message) => {
        const send = { sawWritten: new Set(written), done: false, message };
        sends.push(send);
        await inner.send(message);
        send.done = true;
      },
    };
    return { queue, sends };
  }

  it("sends fewer messages than 100 concurrent callers, and each caller returns only after a send that started after its facts were written", async () => {
    const queueName = uniqueQueue();
    const written = new Set<number>();
    const { queue, sends } = await countingQueue(queueName, written);
    const coalesced = new CoalescedSends(queue);
    const uncovered: number[] = [];
    await Promise.all(
      Array.from({ length: 100 }, async (_, caller) => {
        // Callers arrive over a few sends' time, some while a send is in flight.
        await sleep((caller * 7) % 40);
        written.add(caller);
        await coalesced.send({ trigger: "webhook" });
        if (!sends.some((s) => s.done && s.sawWritten.has(caller))) uncovered.push(caller);
      }),
    );
    expect(uncovered).toEqual([]);
    expect(sends.length).toBeGreaterThan(1);
    expect(sends.length).toBeLessThan(100);
    // What is on the queue is what was sent: one message per send, each as Azure's trigger reads it.
    const onQueue = new QueueClient(connectionString(), queueName);
    expect(await messagesIn(onQueue)).toBe(sends.length);
    const [first] = (await onQueue.peekMessages()).peekedMessageItems;
    expect(decodeMessage(Buffer.from(first!.messageText, "base64").toString("utf8"))).toEqual({ trigger: "webhook" });
  });

  it("sends a timer's message on its own, never folded into a webhook's", async () => {
    const written = new Set<number>();
    const { queue, sends } = await countingQueue(uniqueQueue(), written);
    const coalesced = new CoalescedSends(queue);
    await Promise.all([...Array.from({ length: 20 }, () => coalesced.send({ trigger: "webhook" })), coalesced.send({ trigger: "timer" }), coalesced.send({ trigger: "timer" })]);
    expect(sends.filter((s) => s.message.trigger === "timer")).toHaveLength(2);
    expect(sends.filter((s) => s.message.trigger === "webhook").length).toBeLessThan(20);
  });

  it("fails every caller that joined a failed send, and the next callers send again", async () => {
    let failing = true;
    let sent = 0;
    const coalesced = new CoalescedSends({
      now: () => Promise.resolve(new Date()),
      send: async () => {
        await sleep(20);
        sent++;
        if (failing) throw new Error("queue unavailable");
      },
    });
    const results = await Promise.allSettled(Array.from({ length: 10 }, () => coalesced.send({ trigger: "job-completed" })));
    expect(results.every((r) => r.status === "rejected")).toBe(true);
    failing = false;
    await expect(coalesced.send({ trigger: "job-completed" })).resolves.toBeUndefined();
    expect(sent).toBeGreaterThanOrEqual(2);
  });
});

describe("decodeMessage", () => {
  it("accepts the decoded text and the object the host parsed from it", () => {
    expect(decodeMessage('{"trigger":"webhook"}')).toEqual({ trigger: "webhook" });
    expect(decodeMessage({ trigger: "timer" })).toEqual({ trigger: "timer" });
  });

  it("refuses what is not a reconcile message", () => {
    expect(() => decodeMessage("not json")).toThrow();
    expect(() => decodeMessage({ trigger: "nobody" })).toThrow();
    expect(() => decodeMessage(Buffer.from('{"trigger":"webhook"}').toString("base64"))).toThrow();
  });
});

describe("coverage with storage's whole-second insertion times", () => {
  /** A seed lab on the stand-in, with its own tables and queue on the shared Azurite. */
  async function labRuntime(): Promise<{ runtime: Runtime; github: GitHubStandin }> {
    const github = await GitHubStandin.start({ owner: seedConfig.github.owner, repo: seedConfig.github.repo });
    closers.push(() => github.close());
    for (const pair of seedConfig.pairs) {
      github.addRunner({ name: vmRunnerName(pair.id), labels: ["lab", "os-windows-2022", pair.vmRunnerLabel] });
      for (const host of pair.hosts) github.addRunner({ name: hostRunnerName(host.runnerLabel), labels: [host.runnerLabel] });
    }
    const settings = readSettings({ GITHUB_API_URL: github.url, GITHUB_TOKEN: github.token, AzureWebJobsStorage: connectionString(), OIDC_DISABLED: "true", LAB_TABLE_PREFIX: `t${randomBytes(6).toString("hex")}`, RECONCILE_QUEUE: uniqueQueue() });
    const runtime = await createRuntime(settings, seedConfig, { logger: collectingLogger().logger, githubClient: { retries: 0, timeoutMs: 2_000, writeSpacingMs: 0 } });
    return { runtime, github };
  }

  // A message sent after a reconcile read the facts can carry the same insertion second as the
  // message that reconcile served (storage stamps whole seconds): it is not covered by it.
  it("reconciles for a message inserted in the same second as the served one, after that reconcile had begun", async () => {
    const { runtime } = await labRuntime();
    const second = new Date(Math.floor(Date.now() / 1000) * 1000);
    const first = await runtime.worker.serve({ message: { trigger: "webhook" }, insertedAt: second, dequeueCount: 1 }, collectingLogger().logger);
    expect(first.served).toBe("reconciled");
    // Recorded after the first reconcile read the facts, and queued within the same second.
    const later = await runtime.worker.serve({ message: { trigger: "webhook" }, insertedAt: second, dequeueCount: 1 }, collectingLogger().logger);
    expect(later.served).toBe("reconciled");
    expect(runtime.worker.reconciles).toBe(2);
  });

  it("takes a message inserted in an earlier second than the served one as covered", async () => {
    const { runtime } = await labRuntime();
    const second = new Date(Math.floor(Date.now() / 1000) * 1000);
    await runtime.worker.serve({ message: { trigger: "webhook" }, insertedAt: second, dequeueCount: 1 }, collectingLogger().logger);
    const earlier = await runtime.worker.serve({ message: { trigger: "webhook" }, insertedAt: new Date(second.getTime() - 1000), dequeueCount: 1 }, collectingLogger().logger);
    expect(earlier.served).toBe("covered");
    expect(runtime.worker.reconciles).toBe(1);
  });
});
