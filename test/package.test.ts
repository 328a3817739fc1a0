/**
 * The deployable package (`npm run package`): what the zip holds, and that its bundled entry loads
 * on its own, from the unpacked zip with no node_modules, and registers every function.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { unzipSync } from "fflate";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { functionDefinitions } from "../functions/definitions.js";

const ENTRY = "dist/functions/index.js";
let workDir: string;
let files: Record<string, Uint8Array>;

beforeAll(() => {
  workDir = mkdtempSync(join(tmpdir(), "lab-reset-package-test-"));
  execFileSync(process.execPath, ["infra/package/build.mjs", "--out", join(workDir, "out")], { stdio: "pipe" });
  files = unzipSync(readFileSync(join(workDir, "out", "lab-reset.zip")));
}, 60_000);

afterAll(() => rmSync(workDir, { recursive: true, force: true }));

describe("npm run package", () => {
  it("zips only host.json, package.json, lab.config.json and the bundle", () => {
    // So no tests, sources, dev dependencies, node_modules or local.settings.json.
    expect(Object.keys(files).sort()).toEqual([ENTRY, "host.json", "lab.config.json", "package.json"]);
    expect(Buffer.from(files["lab.config.json"]!).equals(readFileSync("lab.config.json"))).toBe(true);
    expect(Buffer.from(files["host.json"]!).equals(readFileSync("host.json"))).toBe(true);
  });

  it("points package.json main at the bundle, as an ES module with nothing to install", () => {
    const manifest = JSON.parse(Buffer.from(files["package.json"]!).toString("utf8"));
    expect(manifest).toMatchObject({ type: "module", main: ENTRY });
    expect(manifest.dependencies).toBeUndefined();
    expect(manifest.devDependencies).toBeUndefined();
  });

  it("loads from the unpacked zip alone and registers every function", () => {
    const appDir = join(workDir, "app");
    for (const [name, data] of Object.entries(files)) {
      mkdirSync(dirname(join(appDir, name)), { recursive: true });
      writeFileSync(join(appDir, name), data);
    }
    // As the Functions host starts it: working directory = the app folder, lab.config.json found there.
    const result = spawnSync(process.execPath, ["--input-type=module", "-e", `await import(${JSON.stringify(`./${ENTRY}`)})`], {
      cwd: appDir,
      env: { PATH: process.env.PATH, GITHUB_TOKEN: "x", AzureWebJobsStorage: "UseDevelopmentStorage=true", OIDC_AUDIENCE: "package-test" },
      encoding: "utf8",
      timeout: 30_000,
    });
    expect(result.status, result.stderr).toBe(0);
    // Outside the Functions host @azure/functions runs in test mode and says so for each function.
    const lines = result.stderr.split("\n").filter((line) => line.trim() !== "");
    for (const line of lines) expect(line).toMatch(/^WARNING: (Failed to detect the Azure Functions runtime|Skipping call to register function)/);
    const registered = lines.flatMap((line) => line.match(/register function "(\w+)"/)?.[1] ?? []);
    const expected = functionDefinitions(() => Promise.reject(new Error("not used")), "0 0 * * * *").map((d) => d.name);
    expect(registered.sort()).toEqual(expected.sort());
  });
});
