/**
 * `npm run advise:sim -- [lab-reset advise options]`: `lab-reset advise` on a simulated lab, with
 * no app running. A simulated week of the lab (this app on the lab simulator, the recommended
 * set-up) records its history; a loopback server answers GET /api/workload from it with the app's
 * own handler; then the command runs against it, and prints what it prints. The README's figure:
 *
 *   npm run advise:sim -- --add-pairs 1 --os os-windows-2022
 *   ADVISE_PROFILE=seed ADVISE_DAYS=3 ADVISE_SEED=7 npm run advise:sim -- --remove vm-11-12
 */
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { workload } from "../admin/report.js";
import { main } from "../cli/main.js";
import { loadLabConfigFile } from "../lab/config.js";
import { silentLogger } from "../logger.js";
import { MemoryHistoryStore } from "../storage/history.js";
import { MemoryStore } from "../storage/memory.js";
import { simulate } from "./simulate.js";
import { burstyProfile, seedProfile } from "./workload.js";

const name = process.env.ADVISE_PROFILE ?? "bursty";
const days = Number(process.env.ADVISE_DAYS ?? 7);
const seed = Number(process.env.ADVISE_SEED ?? 1);
const base = loadLabConfigFile("lab.config.json");
const profile = name === "seed" ? seedProfile(base) : burstyProfile(base);

const started = Date.now();
process.stderr.write(`simulating ${days} days of ${profile.description} (seed ${seed}), recording the history…\n`);
const store = new MemoryStore();
let history: MemoryHistoryStore | undefined;
const result = await simulate({ profile, policy: "lab-reset", seed, days, store, history: (clock) => (history = new MemoryHistoryStore(clock)) });
process.stderr.write(`simulated in ${Math.round((Date.now() - started) / 1000)} s\n`);

const runtime = { config: profile.config, store, history: history!, clock: () => new Date(result.end) };
const server = createServer((request, response) => {
  const url = new URL(request.url ?? "/", "http://loopback");
  void (async () => {
    const answer = url.pathname === "/api/workload" ? await workload(runtime, url.searchParams.get("days"), silentLogger) : { status: 404, body: { error: "no such route" } };
    response.writeHead(answer.status, { "content-type": "application/json" });
    response.end(JSON.stringify(answer.body));
  })();
});
await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
const args = process.argv.slice(2);
try {
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  process.exitCode = await main(["advise", "--url", url, ...(args.includes("--days") ? [] : ["--days", String(days)]), ...args]);
} finally {
  server.close();
}
process.stderr.write(`done in ${Math.round((Date.now() - started) / 1000)} s\n`);
