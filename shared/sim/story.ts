/**
 * `npm run story`: the lab's own story, end to end, on a simulated lab. A week of the busy lab
 * (or the seed lab) runs through the app under the recommended set-up, writing its history as
 * in Azure; then the app's own routes serve it on loopback, and the real CLI asks them:
 * `lab-reset report` and `lab-reset advise --add-pairs 1 --os <label>`. What it prints is what
 * the README shows. STORY_PROFILE=seed|busy (default busy), STORY_DAYS (default 7), STORY_SEED (1),
 * STORY_OS (os-windows-2022); arguments after `--` are advise's own (`-- --remove vm-101-102`).
 */
import { functionDefinitions } from "../../functions/definitions.js";
import { main as cli } from "../cli/main.js";
import { loadLabConfigFile } from "../lab/config.js";
import { silentLogger } from "../logger.js";
import { startLocalHost } from "../local/host.js";
import { simulate } from "./simulate.js";
import { burstyProfile, seedProfile } from "./workload.js";

const env = process.env;
const days = Number(env.STORY_DAYS ?? 7);
const seed = Number(env.STORY_SEED ?? 1);
const os = env.STORY_OS ?? "os-windows-2022";
const base = loadLabConfigFile("lab.config.json");
const profile = env.STORY_PROFILE === "seed" ? seedProfile(base) : burstyProfile(base);

process.stderr.write(`story: simulating ${days} days of the ${profile.name} lab (seed ${seed}) through the app, recommended set-up…\n`);
const started = Date.now();
// About 20 s per simulated day of the busy lab on 2 cores, 1 s for the seed lab.
const result = await simulate({ profile, policy: "lab-reset", seed, days });
process.stderr.write(`story: simulated in ${Math.round((Date.now() - started) / 1000)} s; its app serves the recorded history on loopback\n`);

// The simulated app itself, its clock stopped at the week's end, answers the CLI over HTTP.
const { runtime } = result.app!;
const end = new Date(result.end);
runtime.clock = () => end;
const host = await startLocalHost({ definitions: functionDefinitions(() => Promise.resolve(runtime), { ...runtime.settings, redeliverSchedule: null }), port: 0, logger: silentLogger });
try {
  const context = { stdout: (t: string) => void process.stdout.write(t), stderr: (t: string) => void process.stderr.write(t), env: {}, now: () => end, timeoutMs: 60_000 };
  const show = async (argv: string[]) => {
    process.stdout.write(`\n$ lab-reset ${argv.join(" ")}\n`);
    const code = await cli([...argv, "--url", host.url], context);
    if (code !== 0) process.exitCode = code;
  };
  await show(["report", "--days", String(days)]);
  // Any arguments go to advise instead of the default question (npm run story -- --remove vm-101-102).
  const asked = process.argv.slice(2);
  await show(["advise", "--days", String(days), ...(asked.length > 0 ? asked : ["--add-pairs", "1", "--os", os])]);
} finally {
  await host.close();
}
