/**
 * `npm ci` without engine warnings on every Node.js version package.json claims: each locked
 * package's `engines.node` must admit the lowest claimed version and the one running the tests.
 * (content-type 3, pulled in by @octokit/request, wants Node 22: an `overrides` pin keeps 2.x.)
 */
import { createRequire } from "node:module";
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";

const semver = createRequire(import.meta.url)("semver") as { satisfies(v: string, range: string): boolean; minVersion(range: string): { version: string } | null };
const pkg = JSON.parse(readFileSync("package.json", "utf8")) as { engines: { node: string }; overrides?: Record<string, unknown> };
const lock = JSON.parse(readFileSync("package-lock.json", "utf8")) as { packages: Record<string, { version?: string; engines?: { node?: unknown } }> };

describe("engines", () => {
  it("every locked package runs on the lowest Node.js version package.json claims, and on this one", () => {
    const lowest = semver.minVersion(pkg.engines.node)!.version;
    const refused = Object.entries(lock.packages)
      .filter(([path, p]) => path !== "" && typeof p.engines?.node === "string")
      .flatMap(([path, p]) => [lowest, process.versions.node].filter((v) => !semver.satisfies(v, p.engines!.node as string)).map((v) => `${path}@${p.version} wants ${String(p.engines!.node)}, not ${v}`));
    expect(refused).toEqual([]);
  });

  it("pins content-type below 3 for @octokit/request", () => {
    expect(pkg.overrides).toEqual({ "@octokit/request": { "content-type": "2.1.0" } });
    expect(lock.packages["node_modules/@octokit/request/node_modules/content-type"]?.version ?? lock.packages["node_modules/content-type"]?.version).toMatch(/^2\./);
  });
});
