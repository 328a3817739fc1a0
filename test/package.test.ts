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

  it("loads from the unpacked zip alone and registers every function, each with its trigger (the reconcile on its storage queue)", () => {
    const appDir = join(workDir, "app");
    for (const [name, data] of Object.entries(files)) {
      mkdirSync(dirname(join(appDir, name)), { recursive: true });
      writeFileSync(join(appDir, name), data);
    }
    // Outside the Functions host @azure/functions runs in test mode and warns once per function
    // instead of registering it; the frame below its `generic` names the app.* call that was made
    // (e.g. "Object.storageQueue", or "Object.http3" where the bundler renamed a clash).
    const probe = `
      const warn = console.warn;
      const calls = [];
      console.warn = (message, ...rest) => {
        const name = /register function "(\\w+)"/.exec(String(message))?.[1];
        if (name) {
          const frames = (new Error().stack ?? "").split("\\n").map((line) => line.trim().split(" ")[1]);
          const caller = frames[frames.indexOf("generic") + 1] ?? "";
          calls.push([name, /^(?:Object\\.)?([A-Za-z]+?)\\d*$/.exec(caller)?.[1] ?? caller]);
        }
        warn(message, ...rest);
      };
      await import(${JSON.stringify(`./${ENTRY}`)});
      process.stdout.write(JSON.stringify(calls));
    `;
    // As the Functions host starts it: working directory = the app folder, lab.config.json found there.
    const result = spawnSync(process.execPath, ["--input-type=module", "-e", probe], {
      cwd: appDir,
      env: { PATH: process.env.PATH, GITHUB_TOKEN: "x", AzureWebJobsStorage: "UseDevelopmentStorage=true", OIDC_AUDIENCE: "package-test" },
      encoding: "utf8",
      timeout: 30_000,
    });
    expect(result.status, result.stderr).toBe(0);
    const lines = result.stderr.split("\n").filter((line) => line.trim() !== "");
    for (const line of lines) expect(line).toMatch(/^WARNING: (Failed to detect the Azure Functions runtime|Skipping call to register function)/);
    const registered = (JSON.parse(result.stdout) as [string, string | null][]).sort(([a], [b]) => a.localeCompare(b));
    const registration = { http: "http", timer: "timer", queue: "storageQueue" } as const;
    const expected = functionDefinitions(() => Promise.reject(new Error("not used")), { resetSchedule: "0 0 * * * *", reconcileQueue: "labreset-reconcile" })
      .map((d): [string, string] => [d.name, registration[d.kind]])
      .sort(([a], [b]) => a.localeCompare(b));
    expect(registered).toEqual(expected);
    expect(registered).toContainEqual(["reconcileLab", "storageQueue"]);
  });
});
