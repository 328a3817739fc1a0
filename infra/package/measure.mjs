// Measures the package that `npm run package` wrote: bundle and zip size, and the time Node takes to
// import the entry module unpacked from the zip (what a cold Flex instance does before it can
// register functions), beside the unbundled `npm run build` output for comparison.
//   npm run build && npm run package && node infra/package/measure.mjs [--runs N]
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import process from "node:process";
import { fileURLToPath, pathToFileURL, URL } from "node:url";
import { parseArgs } from "node:util";
import { unzipSync } from "fflate";
import { z } from "zod";

const root = fileURLToPath(new URL("../..", import.meta.url));
const { values } = parseArgs({ options: { runs: { type: "string", default: "15" }, zip: { type: "string", default: join(root, "dist", "package", "lab-reset.zip") } } });
const runs = Number(values.runs);
const rootPackage = z.object({ main: z.string() }).parse(JSON.parse(readFileSync(join(root, "package.json"), "utf8")));
const entry = rootPackage.main;

// Enough settings for the entry to start in test mode; nothing is contacted while importing.
/** @type {NodeJS.ProcessEnv} */
const env = { ...process.env, GITHUB_TOKEN: "x", AzureWebJobsStorage: "UseDevelopmentStorage=true", OIDC_AUDIENCE: "measure" };
delete env.LAB_CONFIG_PATH; // the shipped lab.config.json, found from the working directory as in Azure

/**
 * Median and fastest of `runs` imports of the entry, each in a fresh Node process started in appDir.
 * @param {string} appDir
 */
function importTimes(appDir) {
  const script = `const t = performance.now(); await import(${JSON.stringify(pathToFileURL(join(appDir, entry)).href)}); console.log(performance.now() - t);`;
  const times = Array.from({ length: runs }, () =>
    Number(execFileSync(process.execPath, ["--input-type=module", "-e", script], { cwd: appDir, env, stdio: ["ignore", "pipe", "ignore"] }).toString()),
  ).sort((a, b) => a - b);
  const ms = (/** @type {number | undefined} */ t) => `${(t ?? NaN).toFixed(0)} ms`;
  return `median ${ms(times[Math.floor(runs / 2)])}, fastest ${ms(times[0])}`;
}

const unpacked = mkdtempSync(join(tmpdir(), "lab-reset-package-"));
try {
  for (const [file, data] of Object.entries(unzipSync(readFileSync(values.zip)))) {
    if (file.endsWith("/")) continue;
    mkdirSync(dirname(join(unpacked, file)), { recursive: true });
    writeFileSync(join(unpacked, file), data);
  }
  const kib = (/** @type {number} */ bytes) => `${(bytes / 1024).toFixed(0)} KiB`;
  process.stdout.write(`zip: ${kib(statSync(values.zip).size)}; bundle ${entry}: ${kib(statSync(join(unpacked, entry)).size)}\n`);
  process.stdout.write(`import of the bundled entry (${runs} runs, Node ${process.version}): ${importTimes(unpacked)}\n`);
  if (existsSync(join(root, entry))) process.stdout.write(`import of the unbundled entry with node_modules: ${importTimes(root)}\n`);
} finally {
  rmSync(unpacked, { recursive: true, force: true });
}
