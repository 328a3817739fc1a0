/**
 * `npm run bench`: a simulated lab week per profile under each reset policy (same workload,
 * same seed), then one reconcile of a 1,000-pair lab. Writes docs/bench/results.{md,json} and
 * one timeline picture per profile.
 *
 *   npm run bench                 # seed 1, 7 days
 *   BENCH_SEED=7 BENCH_DAYS=3 npm run bench
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { labKey, loadLabConfigFile } from "../lab/config.js";
import { startAzurite } from "../local/azurite.js";
import { silentLogger } from "../logger.js";
import { MemoryStore } from "../storage/memory.js";
import { reconcile } from "../reconcile/reconcile.js";
import { createRuntime } from "../runtime.js";
import { readSettings } from "../settings.js";
import { TableStore, type PairStore } from "../storage/tables.js";
import { GitHubStandin } from "./github-standin.js";
import { hostRunnerNameOf, vmRunnerNameOf } from "./lab.js";
import { figures, markdownTable, timelineSvg } from "./report.js";
import { simulate, type PolicyName, type SimulationResult } from "./simulate.js";
import { useImmediateZeroTimeouts } from "./timers.js";
import { burstyProfile, generatedLab, seedProfile } from "./workload.js";

const OUT = "docs/bench";
const seed = Number(process.env.BENCH_SEED ?? 1);
const days = Number(process.env.BENCH_DAYS ?? 7);
const scalePairs = Number(process.env.BENCH_SCALE_PAIRS ?? 1000);
const started = Date.now();
const elapsed = () => `${((Date.now() - started) / 1000).toFixed(1)} s`;

interface ScaleFigures {
  pairs: number;
  runners: number;
  store: string;
  steps: { step: string; wallMs: number; githubRequests: number; dispatches: number }[];
}

/** One reconcile of a large lab: first sight (every pair reset), following the resets, and steady state. */
async function scaleCase(pairs: number, storeKind: "memory" | "azurite"): Promise<ScaleFigures> {
  const base = loadLabConfigFile("lab.config.json");
  const config = generatedLab(pairs, base);
  const standin = await GitHubStandin.start({ owner: config.github.owner, repo: config.github.repo });
  for (const pair of config.pairs) {
    standin.addRunner({ name: vmRunnerNameOf(pair), labels: ["lab", "os-windows-2022", pair.vmRunnerLabel] });
    for (const host of pair.hosts) standin.addRunner({ name: hostRunnerNameOf(host.runnerLabel), labels: [host.runnerLabel] });
  }
  const azurite = storeKind === "azurite" ? await startAzurite() : undefined;
  try {
    const store: PairStore = azurite
      ? await TableStore.open({ connection: { kind: "connectionString", connectionString: azurite.connectionString }, tablePrefix: "bench", lab: labKey(config) })
      : new MemoryStore();
    let now = new Date("2026-11-27T00:00:00Z");
    const settings = readSettings({ GITHUB_API_URL: standin.url, GITHUB_TOKEN: standin.token, OIDC_DISABLED: "true" });
    const runtime = await createRuntime(settings, config, { store, clock: () => now, logger: silentLogger, githubClient: { writeSpacingMs: 0, retryBaseMs: 1 } });
    const steps: ScaleFigures["steps"] = [];
    const step = async (name: string) => {
      const before = standin.requests.length;
      const t = performance.now();
      const result = await reconcile(runtime, "timer");
      steps.push({ step: name, wallMs: Math.round(performance.now() - t), githubRequests: standin.requests.length - before, dispatches: result.dispatches });
      console.log(`  scale (${pairs} pairs, ${storeKind}): ${name}: ${steps.at(-1)!.wallMs} ms, ${steps.at(-1)!.githubRequests} GitHub requests [${elapsed()}]`);
    };
    await step("first sight: every pair unknown, every reset dispatched");
    for (const d of standin.dispatches) if (d.runId !== null) standin.setRun(d.runId, { status: "completed", conclusion: "success" });
    now = new Date(now.getTime() + 10 * 60_000);
    await step("follow: every reset run read, every pair clean");
    now = new Date(now.getTime() + 10 * 60_000);
    await step("steady: every pair clean and fresh, nothing to do");
    return { pairs, runners: pairs * 3, store: storeKind === "azurite" ? "Table Storage (Azurite)" : "in memory", steps };
  } finally {
    await standin.close();
    await azurite?.stop();
  }
}

async function main() {
  console.log(`Simulating ${days} days per profile and policy (seed ${seed}); results go to ${OUT}/`);
  const restoreTimers = useImmediateZeroTimeouts();
  const base = loadLabConfigFile("lab.config.json");
  const profiles = [seedProfile(base), burstyProfile(base)];
  const policies: PolicyName[] = ["lab-reset", "lab-reset-calls", "today", "none"];
  // Simulations are independent (own stand-in, store and clock), so they run side by side.
  const results = await Promise.all(
    profiles.flatMap((profile) =>
      policies.map(async (policy) => {
        const result = await simulate({ profile, policy, seed, days });
        console.log(`  ${profile.name} / ${policy}: ${result.metrics.perfJobsStarted} perf jobs, ${result.githubRequests} GitHub requests [${elapsed()}]`);
        return result;
      }),
    ),
  );
  const scale = [await scaleCase(scalePairs, "memory"), await scaleCase(scalePairs, "azurite")];
  restoreTimers();

  mkdirSync(OUT, { recursive: true });
  const byProfile = (name: string) => results.filter((r) => r.profile === name);
  const sections: string[] = [];
  for (const profile of profiles) {
    const rs: SimulationResult[] = byProfile(profile.name);
    writeFileSync(join(OUT, `${profile.name}.svg`), timelineSvg(`${profile.name}: ${days} simulated days, seed ${seed}`, rs));
    sections.push(`### ${profile.name}\n\n${profile.description}.\n\n${markdownTable(rs)}\n\n![${profile.name} timeline](${profile.name}.svg)`);
  }
  const scaleTable = [
    "| lab | store | step | wall time | GitHub requests | dispatches |",
    "|---|---|---|---:|---:|---:|",
    ...scale.flatMap((s) => s.steps.map((st) => `| ${s.pairs} pairs, ${s.runners} runners | ${s.store} | ${st.step} | ${st.wallMs} ms | ${st.githubRequests} | ${st.dispatches} |`)),
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

// Octokit's throttling plugin keeps process-wide Bottleneck timers alive: exit when done.
main().then(
  () => process.exit(0),
  (error: unknown) => {
    console.error(error);
    process.exit(1);
  },
);
