/**
 * `lab-reset routing status` and `routing restore` against the HTTP GitHub stand-in, with no app
 * running: they read the lab config and talk to GitHub with the caller's token.
 */
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { main } from "../shared/cli/main.js";
import { loadLabConfigFile, type LabConfig } from "../shared/lab/config.js";
import { GitHubStandin } from "../shared/sim/github-standin.js";

const dir = mkdtempSync(join(tmpdir(), "lab-reset-cli-routing-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const shipped: LabConfig = loadLabConfigFile("lab.config.json");
const PAIRS = shipped.pairs.map((p) => p.id);
const vmRunner = (pairId: string) => pairId.toUpperCase();

let github: GitHubStandin | undefined;
afterEach(async () => {
  await github?.close();
  github = undefined;
});

/**
 * The stand-in with the shipped lab's VM runners, after 120 other runners so that some VM runners
 * are on the second page of the runner list. `without`: VM runners (by pair) that lack `lab`.
 */
async function lab(options: { without?: string[]; missing?: string[]; offline?: string[]; busy?: string[] } = {}) {
  github = await GitHubStandin.start({ owner: "microsoft", repo: "netperf" });
  for (let i = 0; i < 120; i++) github.addRunner({ name: `BUILD-${i}`, labels: ["build"] });
  for (const pair of shipped.pairs) {
    if (options.missing?.includes(pair.id)) continue;
    const labels = [...(options.without?.includes(pair.id) ? [] : ["lab"]), "os-windows-2022", pair.vmRunnerLabel];
    github.addRunner({ name: vmRunner(pair.id), labels, status: options.offline?.includes(pair.id) ? "offline" : "online", busy: options.busy?.includes(pair.id) ?? false });
  }
  return github;
}

/** The CLI in process, with GitHub at the stand-in and its token; writes not spaced a second apart. */
async function run(argv: string[], env: Record<string, string> = {}) {
  let stdout = "";
  let stderr = "";
  const code = await main(argv, {
    stdout: (t) => void (stdout += t),
    stderr: (t) => void (stderr += t),
    env: { GITHUB_API_URL: github!.url, GITHUB_TOKEN: github!.token, PATH: process.env.PATH, ...env },
    now: () => new Date(),
    timeoutMs: 5_000,
    githubClient: { writeSpacingMs: 0, retryBaseMs: 5 },
  });
  return { code, stdout, stderr, lines: stdout.split("\n").filter((l) => l !== ""), errors: stderr.split("\n").filter((l) => l !== "") };
}

const labelsOf = (name: string) => github!.getRunner(name)!.labels.map((l) => l.name);
const adds = () => github!.labelCalls.filter((c) => c.operation === "add").map((c) => `${c.runnerName} ${c.labels.join(",")} ${c.status}`);
/** A table's cells: columns are padded apart by two spaces or more. */
const cells = (stdout: string) => stdout.trimEnd().split("\n").map((line) => line.split(/ {2,}/));

function configFile(name: string, patch: Partial<LabConfig>): string {
  const path = join(dir, name);
  writeFileSync(path, JSON.stringify({ ...JSON.parse(readFileSync("lab.config.json", "utf8")), ...patch }));
  return path;
}

const WARNING = "lab-reset: routing restore edits GitHub directly: if lab-reset is running, its next reconcile takes the labels off again from every pair that is not clean; restore is for when lab-reset is stopped (az functionapp stop)";

describe("lab-reset routing status", () => {
  it("shows each pair's VM runner, the routing labels it lacks, offline and busy; exits 1 until every one carries them", async () => {
    await lab({ without: ["vm-05-10", "vm-11-12"], offline: ["vm-11-12"], busy: ["vm-25-26"] });
    const result = await run(["routing", "status"]);
    expect(result.code).toBe(1);
    expect(cells(result.stdout)).toEqual([
      ["pair", "VM runner", "routing", "runner"],
      [expect.stringMatching(/^-+$/), expect.stringMatching(/^-+$/), expect.stringMatching(/^-+$/), expect.stringMatching(/^-+$/)],
      ["vm-25-26", "VM-25-26", "in routing", "online, busy"],
      ["vm-05-10", "VM-05-10", "lacks lab", "online, idle"],
      ["vm-42-43", "VM-42-43", "in routing", "online, idle"],
      ["vm-11-12", "VM-11-12", "lacks lab", "offline"],
    ]);
    expect(result.errors).toEqual([expect.stringMatching(/^lab-reset: 2 of 4 pairs out of routing \(lab\); .*lab-reset routing restore puts them back$/)]);
    // Every page of the runner list was read (the lab's runners follow 120 others), and nothing was written.
    expect(github!.requests.filter((r) => r.path === "/repos/microsoft/netperf/actions/runners").map((r) => r.query.page ?? "1")).toEqual(["1", "2"]);
    expect(github!.labelCalls).toEqual([]);

    const json = await run(["routing", "status", "--json"]);
    expect(json.code).toBe(1);
    expect(JSON.parse(json.stdout)).toMatchObject({ ok: false, routingLabels: ["lab"], pairs: [{ pair: "vm-25-26", runner: "VM-25-26", busy: true, lacks: [] }, { pair: "vm-05-10", lacks: ["lab"] }, { pair: "vm-42-43", lacks: [] }, { pair: "vm-11-12", online: false, lacks: ["lab"] }] });
  });

  it("exits 0 with every pair in routing", async () => {
    await lab();
    const result = await run(["routing", "status"]);
    expect(result).toMatchObject({ code: 0, stderr: "" });
    expect(cells(result.stdout).slice(2).map((row) => row[2])).toEqual(["in routing", "in routing", "in routing", "in routing"]);
  });

  it("names a pair whose VM runner cannot be found, and exits 1", async () => {
    await lab({ missing: ["vm-42-43"] });
    const result = await run(["routing", "status"]);
    expect(result.code).toBe(1);
    expect(cells(result.stdout)[4]).toEqual(["vm-42-43", "-", "no runner carries vm-42-43", "-"]);
  });

  it("reads the lab config from --config, else $LAB_CONFIG_PATH, and says its problems as check-config does", async () => {
    await lab({ without: ["vm-05-10"] });
    const onePair = configFile("one-pair.json", { pairs: shipped.pairs.filter((p) => p.id === "vm-05-10") });
    expect(cells((await run(["routing", "status", "--config", onePair])).stdout).slice(2)).toEqual([["vm-05-10", "VM-05-10", "lacks lab", "online, idle"]]);
    expect(cells((await run(["routing", "status"], { LAB_CONFIG_PATH: onePair })).stdout).slice(2)).toEqual([["vm-05-10", "VM-05-10", "lacks lab", "online, idle"]]);
    const bad = configFile("bad.json", { routingLabels: ["self-hosted"] });
    const refused = await run(["routing", "status", "--config", bad]);
    expect(refused).toMatchObject({ code: 1, stdout: "" });
    expect(refused.errors[0]).toBe(`lab-reset: ${bad} is invalid; fix these in the file:`);
  });

  it("says plainly that routing labels are not configured, exits 0, and asks GitHub nothing", async () => {
    await lab();
    const none = configFile("no-routing.json", { routingLabels: [] });
    for (const argv of [["routing", "status"], ["routing", "restore"]]) {
      const result = await run([...argv, "--config", none], { GITHUB_TOKEN: "" });
      expect(result).toMatchObject({ code: 0, stderr: "" });
      expect(result.stdout).toBe(`routing labels are not configured in ${none} (routingLabels is empty): lab-reset never takes a VM runner out of routing, so there is nothing to ${argv[1] === "status" ? "check" : "restore"}\n`);
    }
    expect(github!.requests).toEqual([]);
  });
});

describe("lab-reset routing restore (lab-reset not running)", () => {
  it("gives the routing labels back to every VM runner lacking them, one line per runner, and exits 0", async () => {
    await lab({ without: ["vm-05-10", "vm-11-12"], offline: ["vm-11-12"] });
    const result = await run(["routing", "restore"]);
    expect(result.code).toBe(0);
    expect(result.lines).toEqual(["vm-25-26 VM-25-26: already in routing", "vm-05-10 VM-05-10: added lab", "vm-42-43 VM-42-43: already in routing", "vm-11-12 VM-11-12: added lab (offline)"]);
    expect(result.errors).toEqual([WARNING]);
    expect(adds()).toEqual(["VM-05-10 lab 200", "VM-11-12 lab 200"]);
    // POST …/runners/{id}/labels with { labels: [...] }.
    const posts = github!.requests.filter((r) => r.method === "POST");
    expect(posts).toEqual([
      expect.objectContaining({ path: `/repos/microsoft/netperf/actions/runners/${github!.getRunner("VM-05-10")!.id}/labels`, body: { labels: ["lab"] }, status: 200 }),
      expect.objectContaining({ path: `/repos/microsoft/netperf/actions/runners/${github!.getRunner("VM-11-12")!.id}/labels`, body: { labels: ["lab"] }, status: 200 }),
    ]);
    for (const id of PAIRS) expect(labelsOf(vmRunner(id))).toContain("lab");
    expect(await run(["routing", "status"])).toMatchObject({ code: 0, stderr: "" });
    // Again: nothing left to add.
    const again = await run(["routing", "restore"]);
    expect(again.code).toBe(0);
    expect(again.lines.every((line) => line.endsWith(": already in routing"))).toBe(true);
    expect(adds()).toHaveLength(2);
  });

  it("--dry-run says what it would add, changes nothing, and exits 1 while any lacks them", async () => {
    await lab({ without: ["vm-42-43"], busy: ["vm-42-43"] });
    const result = await run(["routing", "restore", "--dry-run"]);
    expect(result.code).toBe(1);
    expect(result.lines).toEqual([
      "vm-25-26 VM-25-26: already in routing",
      "vm-05-10 VM-05-10: already in routing",
      "vm-42-43 VM-42-43: would add lab (busy: its next perf job may start on the VM before any reset)",
      "vm-11-12 VM-11-12: already in routing",
    ]);
    expect(github!.labelCalls).toEqual([]);
    expect(github!.requests.every((r) => r.method === "GET")).toBe(true);
    expect(labelsOf("VM-42-43")).not.toContain("lab");
  });

  it("says a pair whose VM runner cannot be found in one line and exits 1, restoring the others", async () => {
    await lab({ missing: ["vm-25-26"], without: ["vm-05-10"] });
    const result = await run(["routing", "restore"]);
    expect(result.code).toBe(1);
    expect(result.lines).toEqual([
      "vm-25-26: no VM runner: no runner of microsoft/netperf carries the label vm-25-26; check the VM's runner is registered and $.pairs[…].vmRunnerLabel",
      "vm-05-10 VM-05-10: added lab",
      "vm-42-43 VM-42-43: already in routing",
      "vm-11-12 VM-11-12: already in routing",
    ]);
    expect(labelsOf("VM-05-10")).toContain("lab");
  });

  it("a 403 on the label write is one line saying what the token lacks; the other runners are restored; exits 1", async () => {
    await lab({ without: ["vm-05-10", "vm-42-43"] });
    github!.denyLabelCall = (call) => call.runnerName === "VM-05-10";
    const result = await run(["routing", "restore"]);
    expect(result.code).toBe(1);
    expect(result.lines).toEqual([
      "vm-25-26 VM-25-26: already in routing",
      expect.stringMatching(
        /^vm-05-10 VM-05-10: failed: GitHub POST \/repos\/microsoft\/netperf\/actions\/runners\/\d+\/labels failed with 403: Resource not accessible by integration.*; GITHUB_TOKEN needs the repository permission "Administration: write" on microsoft\/netperf \(a classic token: repo, as a repository admin\)$/,
      ),
      "vm-42-43 VM-42-43: added lab",
      "vm-11-12 VM-11-12: already in routing",
    ]);
    expect(result.errors).toEqual([WARNING]);
    // Sent once: a label write is never retried.
    expect(adds()).toEqual(["VM-05-10 lab 403", "VM-42-43 lab 200"]);
  });

  it("uses the organization's runners with runnerScope org", async () => {
    await lab({ without: ["vm-11-12"] });
    const org = configFile("org.json", { github: { ...shipped.github, runnerScope: "org" } });
    const result = await run(["routing", "restore", "--config", org]);
    expect(result.code).toBe(0);
    expect(github!.requests.filter((r) => r.path !== "/orgs/microsoft/actions/runners").map((r) => `${r.method} ${r.path}`)).toEqual([
      `POST /orgs/microsoft/actions/runners/${github!.getRunner("VM-11-12")!.id}/labels`,
    ]);
  });
});

describe("lab-reset routing: the GitHub token", () => {
  it("takes `gh auth token` (for the API's host) when GITHUB_TOKEN is unset, and GITHUB_API_URL for GitHub Enterprise Server", async () => {
    await lab();
    const bin = join(dir, "gh-bin");
    const args = join(dir, "gh-args");
    mkdirSync(bin);
    writeFileSync(join(bin, "gh"), `#!/bin/sh\necho "$*" > ${JSON.stringify(args)}\necho ${github!.token}\n`);
    chmodSync(join(bin, "gh"), 0o755);
    const result = await run(["routing", "status"], { GITHUB_TOKEN: "", GITHUB_API_URL: `${github!.url}/api/v3`, PATH: bin });
    expect(result).toMatchObject({ code: 0, stderr: "" });
    expect(readFileSync(args, "utf8")).toBe(`auth token --hostname ${new URL(github!.url).host}\n`);
  });

  it("without GITHUB_TOKEN or gh, says in one line to set GITHUB_TOKEN or run gh auth login", async () => {
    await lab();
    const result = await run(["routing", "status"], { GITHUB_TOKEN: "", GITHUB_API_URL: "https://api.github.com", PATH: join(dir, "no-such-dir") });
    expect(result).toMatchObject({ code: 1, stdout: "" });
    expect(result.errors).toEqual(["lab-reset: no GitHub token: GITHUB_TOKEN is not set and gh (the GitHub CLI) is not installed; set GITHUB_TOKEN or run gh auth login --hostname github.com"]);
  });

  it("a refused token is one line naming it", async () => {
    await lab();
    const result = await run(["routing", "restore"], { GITHUB_TOKEN: "expired" });
    expect(result).toMatchObject({ code: 1, stdout: "" });
    expect(result.errors).toEqual([
      WARNING,
      expect.stringMatching(/^lab-reset: cannot list the runners of microsoft\/netperf: GitHub GET \/repos\/microsoft\/netperf\/actions\/runners failed with 401: Bad credentials.*; GITHUB_TOKEN was refused: set GITHUB_TOKEN to a valid token, or run gh auth login$/),
    ]);
  });
});
