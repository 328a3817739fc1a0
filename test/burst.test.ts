/**
 * Bursts: 200 job ends at once cost a handful of reconciles and still reset every used pair
 * exactly once; and a 2xx survives its instance being killed the moment it answered.
 * Real Azurite tables and queue, the GitHub stand-in, the GitHub client with its production settings.
 */
import { existsSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { spawnSync } from "node:child_process";
import { afterEach, beforeAll, describe, expect, inject, it } from "vitest";
import { functionDefinitions } from "../functions/definitions.js";
import { startLocalHost, type LocalHost } from "../shared/local/host.js";
import { silentLogger } from "../shared/logger.js";
import { createRuntime, type Runtime } from "../shared/runtime.js";
import { readSettings } from "../shared/settings.js";
import { appInstanceEntry, spawnAppInstance, type AppInstance } from "../shared/sim/app-instance.js";
import {
  burstCalls,
  dispatchesPerPair,
  finishedPerfRun,
  killAfterAnswer,
  perfRunStart,
  prepareCleanLab,
  sendAtOnce,
  startBurstLab,
  waitQuiet,
  type BurstLab,
  type Endpoint,
} from "../shared/sim/burst.js";

/** At most this many reconciles, over both instances, for the burst. */
const HANDFUL = 8;

const labs: BurstLab[] = [];
const hosts: LocalHost[] = [];
const instances: AppInstance[] = [];
afterEach(async () => {
  await Promise.all(instances.splice(0).map((i) => i.kill()));
  await Promise.all(hosts.splice(0).map((h) => h.close()));
  await Promise.all(labs.splice(0).map((l) => l.close()));
});

async function burstLab(): Promise<BurstLab> {
  const lab = await startBurstLab({ connectionString: inject("azuriteConnectionString") });
  labs.push(lab);
  return lab;
}

/** An instance in this process: the runtime Azure builds, behind the local host polling the queue as host.json says (every second). */
async function localInstance(lab: BurstLab, name: string): Promise<Endpoint & { runtime: Runtime }> {
  const settings = readSettings(lab.env);
  const runtime = await createRuntime(settings, lab.config, { logger: silentLogger });
  const host = await startLocalHost({ definitions: functionDefinitions(() => Promise.resolve(runtime), settings), port: 0, logger: silentLogger, queueConnectionString: lab.env.AzureWebJobsStorage });
  hosts.push(host);
  return { name, url: host.url, runtime };
}

describe("a burst of job ends", () => {
  it("200 concurrent webhook deliveries and job-completed calls over two instances cost a handful of reconciles and reset each used pair exactly once", async () => {
    const lab = await burstLab();
    const pair = await Promise.all([localInstance(lab, "a"), localInstance(lab, "b")]);
    await prepareCleanLab(lab, pair[0]);
    const createdAt = await perfRunStart(lab, pair[0]);
    const runs = lab.config.pairs.map((p) => finishedPerfRun(lab, p, 20, createdAt));
    // Job ends only: each job's `completed` delivery, some twice, and job-completed calls for the runs.
    const calls = burstCalls(lab, runs, { deliveries: 160, jobCompletedCalls: 40, jobsPerRun: 20, seed: 7, floor: false, actions: ["completed"] });
    expect(calls).toHaveLength(200);

    const dispatchesBefore = lab.github.dispatches.length;
    const reconcilesBefore = pair.map((i) => i.runtime.worker.reconciles);
    const answers = await sendAtOnce(calls, pair);
    expect(answers.filter((a) => a.status < 200 || a.status >= 300)).toEqual([]);
    await waitQuiet(lab, 60_000);

    expect(dispatchesPerPair(lab, dispatchesBefore)).toEqual(Object.fromEntries(lab.config.pairs.map((p) => [p.id, 1])));
    const reconciles = pair.map((i, n) => i.runtime.worker.reconciles - reconcilesBefore[n]!);
    const total = reconciles.reduce((a, b) => a + b, 0);
    // One reconcile per message would be 200 (or one per queue message, ~100); coalescing and coverage leave a handful.
    expect(total, `reconciles per instance: ${reconciles.join(", ")}`).toBeLessThanOrEqual(HANDFUL);
    expect(total).toBeGreaterThanOrEqual(1);
  }, 90_000);
});

/** The compiled instance entry, rebuilt when a source is newer (npm test builds first anyway). */
function ensureBuilt() {
  const entry = appInstanceEntry();
  const newest = Math.max(
    ...["shared", "functions"].flatMap((dir) =>
      readdirSync(dir, { recursive: true, withFileTypes: true })
        .filter((f) => f.isFile() && f.name.endsWith(".ts"))
        .map((f) => statSync(join(f.parentPath, f.name)).mtimeMs),
    ),
  );
  // Type errors elsewhere in the tree still emit; only a missing entry is fatal here.
  if (!existsSync(entry) || statSync(entry).mtimeMs < newest) spawnSync("npx", ["tsc", "-p", "tsconfig.build.json"], { stdio: "pipe" });
  expect(existsSync(entry)).toBe(true);
}

describe("an instance killed right after its 2xx", () => {
  beforeAll(ensureBuilt, 120_000);

  it("leaves the job end on the queue, and a new instance on the same storage resets the pair exactly once", async () => {
    const lab = await burstLab();
    // A clean lab, prepared by an instance that is stopped before the call.
    const first = await spawnAppInstance("first", lab.env);
    instances.push(first);
    await prepareCleanLab(lab, first);
    await first.stop();

    // The victim polls once as it starts, then not for a minute: only the queue can carry its 2xx over.
    const victim = await spawnAppInstance("victim", { ...lab.env, APP_INSTANCE_QUEUE_SETTINGS: JSON.stringify({ maxPollingInterval: "00:01:00" }) });
    instances.push(victim);
    const pair = lab.config.pairs[1]!;
    const { next, figures } = await killAfterAnswer(lab, victim, pair, async () => {
      const started = await spawnAppInstance("next", lab.env);
      instances.push(started);
      return started;
    }, 45_000);

    expect(figures.answer).toBe(202);
    expect(victim.child.signalCode).toBe("SIGKILL");
    expect(figures.victimReconcilesAfterAnswer).toBe(0);
    expect(figures.messagesWaitingAfterKill).toBeGreaterThanOrEqual(1);
    expect(figures.dispatchesPerPair).toEqual(Object.fromEntries(lab.config.pairs.map((p) => [p.id, p.id === pair.id ? 1 : 0])));
    expect(next.reconciles.some((r) => r.ok && r.dispatches === 1)).toBe(true);
    expect(figures.poisonMessages).toBe(0);
  }, 120_000);
});
