// `npm run package`: bundles the functions with esbuild into one ESM file and zips what a Flex
// Consumption one-deploy needs: host.json, package.json (main → the bundle), lab.config.json and
// the bundle. Nothing else goes in: no node_modules, tests, sources or local.settings.json.
//   node infra/package/build.mjs [--out DIR]     (default dist/package; writes DIR/lab-reset.zip)
import { copyFileSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join, relative, sep } from "node:path";
import process from "node:process";
import { fileURLToPath, URL } from "node:url";
import { parseArgs } from "node:util";
import { build } from "esbuild";
import { zipSync } from "fflate";
import { z } from "zod";

const root = fileURLToPath(new URL("../..", import.meta.url));
const { values } = parseArgs({ options: { out: { type: "string", default: join(root, "dist", "package") } } });
const outDir = values.out;
const appDir = join(outDir, "app");

const rootPackage = z.object({ name: z.string(), version: z.string(), main: z.string() }).parse(JSON.parse(readFileSync(join(root, "package.json"), "utf8")));
const entry = rootPackage.main; // dist/functions/index.js: the file the Functions host loads

rmSync(outDir, { recursive: true, force: true });
mkdirSync(appDir, { recursive: true });

await build({
  entryPoints: [join(root, "functions", "index.ts")],
  outfile: join(appDir, entry),
  bundle: true,
  platform: "node",
  format: "esm",
  target: "node20",
  // Identifiers stay readable so stack traces in Application Insights still name functions.
  minifyWhitespace: true,
  minifySyntax: true,
  // Provided by the Functions Node.js worker at run time, never installed.
  external: ["@azure/functions-core"],
  // Bundled CommonJS packages (@azure/functions among them) call require(); ESM has none.
  // Renamed: bundled packages (@azure/storage-queue) import createRequire themselves.
  banner: { js: "import { createRequire as __labResetCreateRequire } from 'node:module'; const require = __labResetCreateRequire(import.meta.url);" },
  legalComments: "eof",
  logLevel: "warning",
});

writeFileSync(
  join(appDir, "package.json"),
  `${JSON.stringify({ name: rootPackage.name, version: rootPackage.version, private: true, type: "module", main: entry }, null, 2)}\n`,
);
for (const file of ["host.json", "lab.config.json"]) copyFileSync(join(root, file), join(appDir, file));

/**
 * Every file under dir, as zip paths (forward slashes) relative to appDir.
 * @param {string} dir
 * @returns {string[]}
 */
function filesUnder(dir) {
  return readdirSync(dir, { withFileTypes: true }).flatMap((item) =>
    item.isDirectory() ? filesUnder(join(dir, item.name)) : [relative(appDir, join(dir, item.name)).split(sep).join("/")],
  );
}

// A fixed timestamp makes the zip depend on its contents only.
const mtime = new Date("2000-01-01T00:00:00Z");
const files = filesUnder(appDir).sort();
const zip = zipSync(Object.fromEntries(files.map((file) => [file, [readFileSync(join(appDir, file)), { mtime }]])), { level: 9 });
const zipPath = join(outDir, "lab-reset.zip");
writeFileSync(zipPath, zip);

/** @param {number} bytes */
const kib = (bytes) => `${(bytes / 1024).toFixed(0)} KiB`;
process.stdout.write(`bundle ${entry}: ${kib(statSync(join(appDir, entry)).size)}\n`);
process.stdout.write(`package ${relative(process.cwd(), zipPath)}: ${kib(zip.length)} (${files.join(", ")})\n`);
