// Draws docs/status-page-report.png: the status page's capacity report for a simulated week of the
// bursty 16-pair profile under lab-reset (its triggers and reconciles write the history as in
// production), rendered by the page's own handler and shot in chromium. Not a test: the week takes
// about 4 minutes on a 2-core machine.
//   npm run build && node infra/tools/status-page-report.mjs [--days 7] [--out docs/status-page-report.png]
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import process from "node:process";
import { fileURLToPath, pathToFileURL, URL } from "node:url";
import { parseArgs } from "node:util";
import { chromium } from "playwright-core";

const root = fileURLToPath(new URL("../..", import.meta.url));
const { values } = parseArgs({ options: { days: { type: "string", default: "7" }, out: { type: "string", default: join(root, "docs", "status-page-report.png") } } });
const days = Number(values.days);
/**
 * The compiled module (npm run build); each use below types it by its source.
 * @param {string} path
 * @returns {Promise<unknown>}
 */
const compiled = (path) => import(pathToFileURL(join(root, "dist", path)).href);

const { statusPage } = /** @type {typeof import("../../shared/admin/routes.js")} */ (await compiled("shared/admin/routes.js"));
const { STATUS_PAGE_HEADERS } = /** @type {typeof import("../../shared/admin/status-page.js")} */ (await compiled("shared/admin/status-page.js"));
const { loadLabConfigFile } = /** @type {typeof import("../../shared/lab/config.js")} */ (await compiled("shared/lab/config.js"));
const { silentLogger } = /** @type {typeof import("../../shared/logger.js")} */ (await compiled("shared/logger.js"));
const { simulate } = /** @type {typeof import("../../shared/sim/simulate.js")} */ (await compiled("shared/sim/simulate.js"));
const { burstyProfile } = /** @type {typeof import("../../shared/sim/workload.js")} */ (await compiled("shared/sim/workload.js"));

const profile = burstyProfile(loadLabConfigFile(join(root, "lab.config.json")));
const started = Date.now();
const result = await simulate({ profile, policy: "lab-reset", seed: 1, days });
process.stdout.write(`simulated ${days} days of ${profile.name} in ${Math.round((Date.now() - started) / 1000)} s\n`);

// The simulated app's own records and history, its clock stopped at the week's end.
if (result.app === undefined) throw new Error("the simulation ran no app");
const end = new Date(result.end);
const runtime = { ...result.app.runtime, clock: () => end };
const page = await statusPage(runtime, silentLogger, String(days));
if (page.status !== 200 || !page.html.includes('<section class="report"')) throw new Error(`the status page answered ${page.status} without a report`);

const browser = await chromium.launch({ executablePath: process.env.CHROMIUM_PATH ?? "/usr/bin/chromium", args: ["--no-sandbox", "--disable-background-networking"] });
try {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const tab = await context.newPage();
  const problems = /** @type {string[]} */ ([]);
  tab.on("console", (message) => problems.push(message.text()));
  // Served as the app serves it: the page's CSP header applies, not only its meta tag.
  await tab.route("http://lab-reset.test/**", (route) => route.fulfill({ status: 200, headers: STATUS_PAGE_HEADERS, body: page.html }));
  await tab.goto("http://lab-reset.test/api/status");
  if (problems.length > 0) throw new Error(`the page logged: ${problems.join("; ")}`);
  writeFileSync(values.out, await tab.locator("section.report").screenshot());
  process.stdout.write(`wrote ${values.out}\n`);
} finally {
  await browser.close();
}
