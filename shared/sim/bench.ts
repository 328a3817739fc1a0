/**
 * `npm run bench`: a simulated lab week per profile under each reset policy (same workload,
 * same seed), then one reconcile of a 1,000-pair lab. Writes docs/bench/results.{md,json} and
 * one timeline picture per profile. The app reaches GitHub in process (ModelLabGitHub over the
 * GitHub model), sending and counting the requests its Octokit client would send.
 *
 *   npm run bench                 # seed 1, 7 days
 *   BENCH_SEED=7 BENCH_DAYS=3 npm run bench
 *   BENCH_THREADS=1 npm run bench # one step at a time, in this thread
 *
 * Each step (a profile under a policy, a scale case) is independent and single-threaded, so the
 * steps run in worker threads, one per core, longest first.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { availableParallelism } from "node:os";
import { join } from "node:path";
import { isMainThread, parentPort, Worker } from "node:worker_threads";
import { labKey, loadLabConfigFile } from "../lab/config.js";
import { startAzurite } from "../local/azurite.js";
import { silentLogger } from "../logger.js";
import { MemoryStore } from "../storage/memory.js";
import { reconcile } from "../reconcile/reconcile.js";
import { createRuntime } from "../runtime.js";
import { readSettings } from "../settings.js";
import { TableStore, type PairStore } from "../storage/tables.js";
import { GitHubModel } from "./github-model.js";
import { hostRunnerNameOf, vmRunnerNameOf } from "./lab.js";
import { ModelLabGitHub } from "./model-github.js";
import { figures, markdownTable, timelineSvg } from "./report.js";
import { simulate, type PolicyName, type SimulationResult } from "./simulate.js";
import { burstyProfile, generatedLab, seedProfile } from "./workload.js";

const OUT = "docs/bench";
const seed = Number(process.env.BENCH_SEED ?? 1);
const days = Number(process.env.BENCH_DAYS ?? 7);
const scalePairs = Number(process.env.BENCH_SCALE_PAIRS ?? 1000);
const threads = Math.max(1, Number(process.env.BENCH_THREADS ?? availableParallelism()));
const started = Date.now();
const elapsed = () => `${((Date.now() - started) / 1000).toFixed(1)} s`;
const POLICIES: PolicyName[] = ["lab-reset", "lab-reset-calls", "today", "none"];

/** One step of the benchmark: a simulated lab under a policy, or one reconcile at scale on a store. */
type Step = { kind: "simulation"; profile: string; policy: PolicyName } | { kind: "scale"; store: "memory" | "azurite" };
type Outcome = { kind: "simulation"; result: SimulationResult } | { kind: "scale"; figures: ScaleFigures };
const stepKey = (step: Step) => (step.kind === "scale" ? `scale ${step.store}` : `${step.profile} ${step.policy}`);
/** What a worker thread posts: a progress line, or a step's outcome. */
type Message = { progress: string } | { outcome: Outcome } | { error: string };

const profilesOf = () => {
  const base = loadLabConfigFile("lab.config.json");
  return [seedProfile(base), burstyProfile(base)];
};

/** Progress goes to the main thread, which prints it with the time elapsed. */
let progress = (line: string) => console.log(`${line} [${elapsed()}]`);

interface ScaleFigures {
  pairs: number;
  runners: number;
  store: string;
  steps: { step: string; wallMs: number; githubRequests: number; githubChargedRequests: number; dispatches: number }[];
}

/** One reconcile of a large lab: first sight (every pair reset), following the resets, and steady state. */
async function scaleCase(pairs: number, storeKind: "memory" | "azurite"): Promise<ScaleFigures> {
  const base = loadLabConfigFile("lab.config.json");
  const config = generatedLab(pairs, base);
  let now = new Date("2026-11-27T00:00:00Z");
  const model = new GitHubModel({ owner: config.github.owner, repo: config.github.repo, clock: () => now });
  for (const pair of config.pairs) {
    model.addRunner({ name: vmRunnerNameOf(pair), labels: ["lab", "os-windows-2022", pair.vmRunnerLabel] });
    for (const host of pair.hosts) model.addRunner({ name: hostRunnerNameOf(host.runnerLabel), labels: [host.runnerLabel] });
  }
  const azurite = storeKind === "azurite" ? await startAzurite() : undefined;
  try {
    const store: PairStore = azurite
      ? await TableStore.open({ connection: { kind: "connectionString", connectionString: azurite.connectionString }, tablePrefix: "bench", lab: labKey(config) })
      : new MemoryStore();
    const settings = readSettings({ OIDC_DISABLED: "true" });
    const runtime = await createRuntime(settings, config, { store, github: new ModelLabGitHub(model, config), clock: () => now, logger: silentLogger });
    const steps: ScaleFigures["steps"] = [];
    const step = async (name: string) => {
      const before = model.requests.length;
      const t = performance.now();
      const result = await reconcile(runtime, "timer");
      const sent = model.requests.slice(before);
      steps.push({ step: name, wallMs: Math.round(performance.now() - t), githubRequests: sent.length, githubChargedRequests: sent.filter((r) => r.status !== 304).length, dispatches: result.dispatches });
      progress(`  scale (${pairs} pairs, ${storeKind}): ${name}: ${steps.at(-1)!.wallMs} ms, ${sent.length} GitHub requests`);
    };
    await step("first sight: every pair unknown, every reset dispatched");
    for (const d of model.dispatches) if (d.runId !== null) model.setRun(d.runId, { status: "completed", conclusion: "success" });
    now = new Date(now.getTime() + 10 * 60_000);
    await step("follow: every reset run read, every pair clean");
    now = new Date(now.getTime() + 10 * 60_000);
    await step("steady: every pair clean and fresh, nothing to do");
    return { pairs, runners: pairs * 3, store: storeKind === "azurite" ? "Table Storage (Azurite)" : "in memory", steps };
  } finally {
    await azurite?.stop();
  }
}

async function runStep(step: Step): Promise<Outcome> {
  if (step.kind === "scale") return { kind: "scale", figures: await scaleCase(scalePairs, step.store) };
  const profile = profilesOf().find((p) => p.name === step.profile)!;
  const t = performance.now();
  const result = await simulate({ profile, policy: step.policy, seed, days });
  const f = figures(result);
  const seconds = ((performance.now() - t) / 1000).toFixed(1);
  progress(`  ${profile.name} / ${step.policy}: ${result.metrics.perfJobsStarted} perf jobs, ${f.githubRequestsPerDay} GitHub requests a day (${f.githubChargedRequestsPerDay} charged), ${seconds} s`);
  // The app's runtime (functions, sockets) stays in this thread: a worker posts only plain figures.
  const figuresOnly = { ...result };
  delete figuresOnly.app;
  return { kind: "simulation", result: figuresOnly };
}

/** Runs the steps on `threads` worker threads (here, with one), handing each free thread the next step; outcomes by stepKey. */
async function runSteps(steps: Step[]): Promise<Map<string, Outcome>> {
  const outcomes = new Map<string, Outcome>();
  if (threads === 1) {
    for (const step of steps) outcomes.set(stepKey(step), await runStep(step));
    return outcomes;
  }
  const queue = [...steps];
  const thread = async () => {
    const worker = new Worker(new URL(import.meta.url));
    try {
      for (let step = queue.shift(); step !== undefined; step = queue.shift()) {
        const outcome = await new Promise<Outcome>((resolve, reject) => {
          const onMessage = (message: Message) => {
            if ("progress" in message) return console.log(`${message.progress} [${elapsed()}]`);
            worker.off("message", onMessage);
            if ("error" in message) reject(new Error(message.error));
            else resolve(message.outcome);
          };
          worker.on("message", onMessage);
          worker.postMessage(step);
        });
        outcomes.set(stepKey(step), outcome);
      }
    } finally {
      await worker.terminate();
    }
  };
  await Promise.all(Array.from({ length: Math.min(threads, steps.length) }, thread));
  return outcomes;
}

async function main() {
  console.log(`Simulating ${days} days per profile and policy (seed ${seed}) on ${threads} thread${threads === 1 ? "" : "s"}; results go to ${OUT}/`);
  const profiles = profilesOf();
  const [seedLab, burstyLab] = profiles.map((p) => p.name) as [string, string];
  const simulation = (profile: string, policy: PolicyName): Step => ({ kind: "simulation", profile, policy });
  // Longest first, so that no thread is left with a long step at the end.
  const steps: Step[] = [
    simulation(burstyLab, "lab-reset"),
    { kind: "scale", store: "azurite" },
    simulation(burstyLab, "lab-reset-calls"),
    simulation(seedLab, "lab-reset"),
    simulation(seedLab, "lab-reset-calls"),
    { kind: "scale", store: "memory" },
    ...profiles.flatMap((p) => (["today", "none"] as const).map((policy) => simulation(p.name, policy))),
  ];
  const outcomes = await runSteps(steps);
  const results = profiles.flatMap((p) => POLICIES.map((policy) => outcomes.get(stepKey(simulation(p.name, policy)))!)).flatMap((o) => (o.kind === "simulation" ? [o.result] : []));
  const scale = (["memory", "azurite"] as const).flatMap((store) => outcomes.get(stepKey({ kind: "scale", store }))!).flatMap((o) => (o.kind === "scale" ? [o.figures] : []));

  mkdirSync(OUT, { recursive: true });
  const byProfile = (name: string) => results.filter((r) => r.profile === name);
  const sections: string[] = [];
  for (const profile of profiles) {
    const rs: SimulationResult[] = byProfile(profile.name);
    writeFileSync(join(OUT, `${profile.name}.svg`), timelineSvg(`${profile.name}: ${days} simulated days, seed ${seed}`, rs));
    sections.push(`### ${profile.name}\n\n${profile.description}.\n\n${markdownTable(rs)}\n\n![${profile.name} timeline](${profile.name}.svg)`);
  }
  const scaleTable = [
    "| lab | store | step | wall time | GitHub requests | charged (not 304) | dispatches |",
    "|---|---|---|---:|---:|---:|---:|",
    ...scale.flatMap((s) => s.steps.map((st) => `| ${s.pairs} pairs, ${s.runners} runners | ${s.store} | ${st.step} | ${st.wallMs} ms | ${st.githubRequests} | ${st.githubChargedRequests} | ${st.dispatches} |`)),
  ].join("\n");
  const markdown = `## Benchmark (seed ${seed}, ${days} simulated days, ${new Date().toISOString().slice(0, 10)})\n\n${sections.join("\n\n")}\n\n### One reconcile at scale\n\n${scaleTable}\n`;
  writeFileSync(join(OUT, "results.md"), markdown);
  writeFileSync(
    join(OUT, "results.json"),
    `${JSON.stringify({ seed, days, profiles: profiles.map((p) => ({ name: p.name, description: p.description, policies: byProfile(p.name).map(figures) })), scale }, null, 2)}\n`,
  );
  console.log(`\n${markdown}`);
  console.log(`Done in ${elapsed()}.`);
}

if (isMainThread) {
  // Worker threads and Azurite's process end with this one.
  main().then(
    () => process.exit(0),
    (error: unknown) => {
      console.error(error);
      process.exit(1);
    },
  );
} else {
  // A worker thread: runs the steps it is handed, one at a time, and tells the main thread.
  const port = parentPort!;
  progress = (line) => port.postMessage({ progress: line } satisfies Message);
  port.on("message", (step: Step) => {
    runStep(step).then(
      (outcome) => port.postMessage({ outcome } satisfies Message),
      (error: unknown) => port.postMessage({ error: error instanceof Error ? (error.stack ?? error.message) : String(error) } satisfies Message),
    );
  });
}
