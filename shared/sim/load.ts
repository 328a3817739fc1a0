/**
 * `npm run bench:load`: 200 concurrent job-completed calls, 50 for each of 4 perf runs that used
 * the seed lab's 4 pairs, against the local host (the function definitions Azure runs, Azurite,
 * the GitHub stand-in; the GitHub client with its production settings). Exactly one reset per
 * pair must be dispatched, every call answered, none with a 5xx. Prints calls, dispatches, latency
 * p50/p99/max and errors, writes docs/bench/load.json, and exits 1 when a check fails.
 *
 *   npm run bench:load
 *   LOAD_CALLS=400 npm run bench:load
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { cpus } from "node:os";
import { functionDefinitions } from "../../functions/definitions.js";
import { loadLabConfigFile } from "../lab/config.js";
import { startAzurite } from "../local/azurite.js";
import { startLocalHost } from "../local/host.js";
import { silentLogger } from "../logger.js";
import { createRuntime } from "../runtime.js";
import { readSettings } from "../settings.js";
import { GitHubStandin } from "./github-standin.js";
import { hostRunnerNameOf, vmRunnerNameOf } from "./lab.js";

const calls = Number(process.env.LOAD_CALLS ?? 200);
const OUT = "docs/bench/load.json";

const percentile = (sorted: number[], p: number) => sorted[Math.max(0, Math.ceil((p / 100) * sorted.length) - 1)]!;

async function main(): Promise<number> {
  const config = loadLabConfigFile("lab.config.json");
  const azurite = await startAzurite();
  const github = await GitHubStandin.start({ owner: config.github.owner, repo: config.github.repo });
  for (const pair of config.pairs) {
    github.addRunner({ name: vmRunnerNameOf(pair), labels: ["lab", "os-windows-2022", pair.vmRunnerLabel] });
    for (const host of pair.hosts) github.addRunner({ name: hostRunnerNameOf(host.runnerLabel), labels: [host.runnerLabel] });
  }
  const settings = readSettings({ GITHUB_API_URL: github.url, GITHUB_TOKEN: github.token, AzureWebJobsStorage: azurite.connectionString, OIDC_DISABLED: "true" });
  const runtime = await createRuntime(settings, config, { logger: silentLogger });
  const host = await startLocalHost({ definitions: functionDefinitions(() => Promise.resolve(runtime), settings), port: 0, logger: silentLogger, queueConnectionString: azurite.connectionString });
  try {
    // A clean lab first: every pair reset once and followed to the end of its reset run.
    const timer = () => fetch(`${host.url}/admin/functions/scheduledReset`, { method: "POST" });
    await timer();
    for (const d of github.dispatches) if (d.runId !== null) github.setRun(d.runId, { status: "completed", conclusion: "success" });
    await timer();
    const before = github.dispatches.length;
    const requestsBefore = github.requests.length;

    const runs = config.pairs.map((pair) => Number(github.addRun({ name: "perf", status: "completed", conclusion: "success", jobs: [{ runnerName: vmRunnerNameOf(pair), labels: ["self-hosted", "lab"] }] }).id));
    const started = performance.now();
    const answers = await Promise.all(
      Array.from({ length: calls }, async (_, i) => {
        const body = JSON.stringify({ repository: `${config.github.owner}/${config.github.repo}`, runId: runs[i % runs.length] });
        const t = performance.now();
        try {
          const response = await fetch(`${host.url}/api/job-completed`, { method: "POST", body, headers: { "content-type": "application/json" } });
          await response.arrayBuffer();
          return { status: response.status, ms: performance.now() - t };
        } catch (error) {
          return { status: 0, ms: performance.now() - t, error: (error as Error).message };
        }
      }),
    );
    const wallMs = performance.now() - started;

    const dispatched = github.dispatches.slice(before).filter((d) => d.runId !== null);
    const perPair = config.pairs.map((p) => dispatched.filter((d) => d.inputs.pair === p.id).length);
    const latencies = answers.map((a) => a.ms).sort((a, b) => a - b);
    const statuses: Record<string, number> = {};
    for (const a of answers) statuses[a.status] = (statuses[a.status] ?? 0) + 1;
    const errors = answers.filter((a) => a.status < 200 || a.status >= 300).length;
    const round = (ms: number) => Math.round(ms);
    const figures = {
      date: new Date().toISOString().slice(0, 10),
      machine: `${cpus().length} cores, Node.js ${process.version}`,
      command: "npm run bench:load",
      calls,
      pairs: config.pairs.length,
      dispatches: dispatched.length,
      statuses,
      errors,
      latencyMs: { p50: round(percentile(latencies, 50)), p99: round(percentile(latencies, 99)), max: round(latencies.at(-1)!) },
      wallMs: round(wallMs),
      githubRequests: github.requests.length - requestsBefore,
    };
    const problems = [
      ...(perPair.every((n) => n === 1) ? [] : [`expected exactly one dispatch per pair, got ${perPair.join(", ")}`]),
      ...(answers.some((a) => a.status >= 500 || a.status === 0) ? [`5xx or unanswered calls: ${JSON.stringify(statuses)}`] : []),
    ];
    mkdirSync("docs/bench", { recursive: true });
    writeFileSync(OUT, `${JSON.stringify(figures, null, 2)}\n`);
    console.log(`${calls} concurrent job-completed calls over ${config.pairs.length} pairs in ${figures.wallMs} ms: ${figures.dispatches} dispatches, answers ${JSON.stringify(statuses)}, ${errors} errors`);
    console.log(`latency p50 ${figures.latencyMs.p50} ms, p99 ${figures.latencyMs.p99} ms, max ${figures.latencyMs.max} ms (${figures.machine}); wrote ${OUT}`);
    for (const problem of problems) console.error(`FAILED: ${problem}`);
    return problems.length === 0 ? 0 : 1;
  } finally {
    await host.close();
    await github.close();
    await azurite.stop();
  }
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    console.error(error);
    process.exit(1);
  },
);
