/**
 * `lab-reset import-matrix`: the lab's reset workflow (its strategy.matrix.vec) becomes a lab
 * config; entries that cannot pair are named with file and line, and nothing is printed.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { main } from "../shared/cli/main.js";
import { importResetMatrix } from "../shared/cli/import-matrix.js";
import { LabConfigSchema, loadLabConfigFile, parseLabConfig } from "../shared/lab/config.js";

const FIXTURE = "test/fixtures/auto-reset-parent-or-child-lab-machine.yml";
const workflow = readFileSync(FIXTURE, "utf8");
const settings = { github: { owner: "microsoft", repo: "netperf" }, resetWorkflow: { workflow: "lab-reset.yml", ref: "main" }, routingLabels: [] };

const dir = mkdtempSync(join(tmpdir(), "lab-reset-import-test-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let files = 0;
function file(text: string, name = `workflow-${++files}.yml`): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

/** The fixture with one piece of text replaced; fails if the text is not there, so a variant cannot silently equal the original. */
function variant(from: string, to: string): string {
  expect(workflow).toContain(from);
  return workflow.replace(from, to);
}

async function run(argv: string[], env: Record<string, string> = {}) {
  let stdout = "";
  let stderr = "";
  const code = await main(argv, { stdout: (t) => void (stdout += t), stderr: (t) => void (stderr += t), env, now: () => new Date(), timeoutMs: 1000 });
  return { code, stdout, stderr, errors: stderr.split("\n").filter((line) => line !== "") };
}

function problemsOf(text: string): string[] {
  const result = importResetMatrix(text, "reset.yml", settings);
  expect(result.ok).toBe(false);
  return result.ok ? [] : result.problems;
}

/** The 1-based line of the first line of the fixture text containing `needle`. */
const lineOf = (text: string, needle: string) => text.split("\n").findIndex((line) => line.includes(needle)) + 1;

describe("import-matrix on the lab's reset workflow", () => {
  it("pairs the seed's eight hosts into the four pairs of the shipped lab config, parent or child first", () => {
    const result = importResetMatrix(workflow, FIXTURE, settings);
    expect(result.ok).toBe(true);
    if (!result.ok) return;
    const shipped = loadLabConfigFile("lab.config.json");
    expect(result.config.pairs).toEqual(shipped.pairs);
    expect(result.config.github).toEqual({ owner: "microsoft", repo: "netperf", runnerScope: "repo" });
    expect(result.config.resetWorkflow).toEqual({ workflow: "lab-reset.yml", ref: "main" });
    expect(result.config).not.toHaveProperty("routingLabels");
  });

  it("skips the commented-out host and the '# ... add more' line", () => {
    expect(workflow).toContain('# { parent-or-child: "child=rr1-netperf-07');
    const result = importResetMatrix(workflow, FIXTURE, settings);
    expect(result.ok && result.config.pairs.flatMap((p) => p.hosts.map((h) => h.runnerLabel))).not.toContain("child=rr1-netperf-07\\localadminuser");
  });

  it("names each pair vm-<lower host number>-<higher>, keeping the numbers as written", () => {
    const text = variant('"parent=rr1-netperf-26\\\\localadminuser"', '"parent=rr1-netperf-9\\\\localadminuser"');
    const result = importResetMatrix(text, FIXTURE, settings);
    expect(result.ok && result.config.pairs[0]).toMatchObject({ id: "vm-9-25", vmRunnerLabel: "vm-9-25" });
  });

  it("reads the matrix as YAML data, also when written as a block list with quoted keys", () => {
    const block = [
      "jobs:",
      "  reset:",
      "    strategy:",
      "      matrix:",
      "        vec:",
      '          - "parent-or-child": "parent=rr1-netperf-44\\\\localadminuser"',
      "            vm-name: netperf-windows-2025-client",
      "          # - parent-or-child: child=rr1-netperf-99\\localadminuser",
      "          - parent-or-child: child=rr1-netperf-45\\localadminuser",
      '            "vm-name": netperf-windows-2025-server',
      "",
    ].join("\n");
    const result = importResetMatrix(block, "block.yml", settings);
    expect(result).toMatchObject({
      ok: true,
      config: {
        pairs: [
          {
            id: "vm-44-45",
            hosts: [
              { runnerLabel: "parent=rr1-netperf-44\\localadminuser", vmName: "netperf-windows-2025-client" },
              { runnerLabel: "child=rr1-netperf-45\\localadminuser", vmName: "netperf-windows-2025-server" },
            ],
          },
        ],
      },
    });
  });
});

describe("import-matrix refuses entries it cannot pair", () => {
  it("names a parent followed by another parent, and the parent left over at the end", () => {
    const text = variant('"child=rr1-netperf-25\\\\', '"parent=rr1-netperf-25\\\\');
    const problems = problemsOf(text);
    expect(problems).toEqual([
      `reset.yml:${lineOf(text, "rr1-netperf-26")}: vec[0] parent=rr1-netperf-26\\localadminuser has no child: the next entry (vec[1], line ${lineOf(text, "rr1-netperf-25")}) is also a parent; list each pair's parent and child next to each other`,
      `reset.yml:${lineOf(text, "rr1-netperf-12")}: vec[7] parent=rr1-netperf-12\\localadminuser has no child: it is the last entry; add its partner next to it, or remove it`,
    ]);
  });

  it("names a lone last entry", () => {
    const text = variant('          { parent-or-child: "parent=rr1-netperf-12', '          # { parent-or-child: "parent=rr1-netperf-12');
    expect(problemsOf(text)).toEqual([
      `reset.yml:${lineOf(text, "rr1-netperf-11")}: vec[6] child=rr1-netperf-11\\localadminuser has no parent: it is the last entry; add its partner next to it, or remove it`,
    ]);
  });

  it("names a label that is not parent= or child=, and the host that then has no partner", () => {
    const text = variant('"parent=rr1-netperf-10\\\\localadminuser"', '"rcu=rr1-netperf-10\\\\localadminuser"');
    const problems = problemsOf(text);
    expect(problems[0]).toBe(
      `reset.yml:${lineOf(text, "rr1-netperf-05")}: vec[2] child=rr1-netperf-05\\localadminuser has no parent: the next entry (vec[3], line ${lineOf(text, "rcu=")}) is not a usable host`,
    );
    expect(problems[1]).toMatch(new RegExp(`^reset\\.yml:${lineOf(text, "rcu=")}: vec\\[3\\] parent-or-child "rcu=rr1-netperf-10\\\\localadminuser" must look like "parent=`));
    expect(problems).toHaveLength(2);
  });

  it("names a host whose name does not end in its number", () => {
    const text = variant("child=rr1-netperf-42\\\\", "child=rr1-netperf-lab\\\\");
    expect(problemsOf(text)).toEqual([
      `reset.yml:${lineOf(text, "rr1-netperf-lab")}: vec[4] child=rr1-netperf-lab\\localadminuser: host name "rr1-netperf-lab" does not end in its number; the pair id vm-XX-YY is made of the two host numbers`,
      // The hosts after it pair up shifted by one, so the last one is left over.
      `reset.yml:${lineOf(text, "rr1-netperf-12")}: vec[7] parent=rr1-netperf-12\\localadminuser has no child: it is the last entry; add its partner next to it, or remove it`,
    ]);
  });

  it("names an entry without vm-name, and a vm-name the reset workflow would refuse", () => {
    const missing = variant(',    vm-name: "netperf-linux-server" }', " }");
    expect(problemsOf(missing)[0]).toBe(`reset.yml:${lineOf(missing, "rr1-netperf-11")}: vec[6] child=rr1-netperf-11\\localadminuser has no vm-name; give the Hyper-V VM's name on that host`);
    const wildcard = variant('vm-name: "netperf-linux-client"', 'vm-name: "netperf-*"');
    expect(problemsOf(wildcard)).toEqual([
      `reset.yml:${lineOf(wildcard, "rr1-netperf-11")}: vec[6] child=rr1-netperf-11\\localadminuser has no parent: the next entry (vec[7], line ${lineOf(wildcard, "netperf-*")}) is not a usable host`,
      expect.stringMatching(new RegExp(`^reset\\.yml:${lineOf(wildcard, "netperf-*")}: vec\\[7\\] vm-name "netperf-\\*" must name one Hyper-V VM on this host: .*no wildcards$`)),
    ]);
  });

  it("names a host listed twice by the line of its second pair", () => {
    const text = variant('"child=rr1-netperf-11\\\\localadminuser"', '"child=rr1-netperf-25\\\\localadminuser"');
    expect(problemsOf(text)).toEqual([
      `reset.yml:${lineOf(text, "vm-name: \"netperf-linux-server\"")}: vec[6] $.pairs[3].hosts[0].runnerLabel: duplicate runner label "child=rr1-netperf-25\\localadminuser" (first used at $.pairs[0].hosts[1].runnerLabel)`,
    ]);
  });

  it("says where the YAML is broken, by line and column, and when no job has strategy.matrix.vec", () => {
    // The list's "]" removed: the parser finds out at the next key, "runs-on", after the list.
    const unclosed = variant("        ]\n", "");
    const runsOn = unclosed.split("\n").indexOf("    runs-on:") + 1;
    expect(runsOn).toBeGreaterThan(lineOf(unclosed, "rr1-netperf-12"));
    expect(problemsOf(unclosed)).toEqual([`reset.yml:${runsOn}:5: not valid YAML: Flow sequence in block collection must be sufficiently indented and end with a ]; fix the file`]);
    // A mapping key indented by one space too few, deep in the file: one line for it, not the parser's cascade.
    const misindented = variant("    needs: sanity-check\n", "   needs: sanity-check\n");
    const [problem, ...others] = problemsOf(misindented);
    expect(others).toEqual([]);
    expect(problem).toMatch(new RegExp(`^reset\\.yml:${lineOf(misindented, "   needs: sanity-check")}:\\d+: not valid YAML: [^\\n]+; fix the file( \\(\\d+ later YAML errors? may follow from it\\))?$`));
    expect(problemsOf("name: other\njobs:\n  build:\n    runs-on: ubuntu-latest\n")).toEqual([
      "reset.yml: no job has strategy.matrix.vec; is this the lab's reset workflow (auto-reset-parent-or-child-lab-machine.yml)?",
    ]);
  });
});

describe("lab-reset import-matrix (command)", () => {
  it("prints a complete lab config that check-config accepts, and nothing on stderr", async () => {
    const printed = await run(["import-matrix", FIXTURE, "--repo", "contoso/perf-lab", "--workflow", "reset.yml", "--ref", "release"]);
    expect(printed).toMatchObject({ code: 0, stderr: "" });
    const config = JSON.parse(printed.stdout);
    expect(config.github).toEqual({ owner: "contoso", repo: "perf-lab", runnerScope: "repo" });
    expect(config.resetWorkflow).toEqual({ workflow: "reset.yml", ref: "release" });
    expect(parseLabConfig(config).pairs.map((p) => p.id)).toEqual(["vm-25-26", "vm-05-10", "vm-42-43", "vm-11-12"]);
    const checked = await run(["check-config", file(printed.stdout, "imported.json")]);
    expect(checked.code).toBe(0);
    expect(checked.stdout).toMatch(/^ok: 4 pairs \(vm-25-26, vm-05-10, vm-42-43, vm-11-12\) for contoso\/perf-lab/);
  });

  it("takes the repository from the lab config at LAB_CONFIG_PATH when --repo is not given", async () => {
    const current = file(JSON.stringify({ ...loadLabConfigFile("lab.config.json"), github: { owner: "fabrikam", repo: "lab" } }), "current.json");
    const printed = await run(["import-matrix", FIXTURE], { LAB_CONFIG_PATH: current });
    expect(printed.code).toBe(0);
    expect(JSON.parse(printed.stdout).github).toMatchObject({ owner: "fabrikam", repo: "lab" });
  });

  it("is a usage error (exit 2) without --repo when no valid lab config names the repository", async () => {
    const missing = await run(["import-matrix", FIXTURE], { LAB_CONFIG_PATH: join(dir, "absent.json") });
    expect(missing).toMatchObject({ code: 2, stdout: "" });
    expect(missing.errors).toEqual([`lab-reset: import-matrix needs --repo owner/name: there is no valid lab config at ${join(dir, "absent.json")} to take the repository from`]);
    const invalid = await run(["import-matrix", FIXTURE], { LAB_CONFIG_PATH: file("{}", "invalid.json") });
    expect(invalid.code).toBe(2);
    const malformed = await run(["import-matrix", FIXTURE, "--repo", "netperf"]);
    expect(malformed).toMatchObject({ code: 2, stdout: "" });
    expect(malformed.errors).toEqual([expect.stringMatching(/^lab-reset: option '--repo <owner\/name>' argument 'netperf' is invalid\. Give it as owner\/name/)]);
  });

  it("prints nothing on stdout and exits 1 when an entry cannot be paired, one stderr line per entry", async () => {
    const broken = file(variant('"child=rr1-netperf-25\\\\', '"parent=rr1-netperf-25\\\\'));
    const result = await run(["import-matrix", broken, "--repo", "microsoft/netperf"]);
    expect(result).toMatchObject({ code: 1, stdout: "" });
    expect(result.errors).toHaveLength(3);
    expect(result.errors[0]).toMatch(new RegExp(`^lab-reset: ${broken.replace(/[.\\]/g, "\\$&")}:\\d+: vec\\[0\\] parent=rr1-netperf-26`));
    expect(result.errors[2]).toBe("lab-reset: no lab config printed: fix the 2 problems above and import again");
  });

  it("writes --out only when every entry was paired, leaving the old config in place otherwise", async () => {
    const out = join(dir, "lab.config.json");
    writeFileSync(out, "old config\n");
    const failed = await run(["import-matrix", file(variant("          { parent-or-child: \"parent=rr1-netperf-12", "          # {")), "--repo", "a/b", "--out", out]);
    expect(failed.code).toBe(1);
    expect(readFileSync(out, "utf8")).toBe("old config\n");
    const written = await run(["import-matrix", FIXTURE, "--repo", "a/b", "--out", out]);
    expect(written).toMatchObject({ code: 0, stdout: "", errors: [`lab-reset: wrote 4 pairs to ${out}`] });
    expect(loadLabConfigFile(out).pairs).toHaveLength(4);
  });

  it("names a workflow file it cannot read (exit 1, one line)", async () => {
    const result = await run(["import-matrix", join(dir, "nope.yml"), "--repo", "a/b"]);
    expect(result).toMatchObject({ code: 1, stdout: "" });
    expect(result.errors).toEqual([expect.stringMatching(/^lab-reset: cannot read .*nope\.yml: ENOENT.*; give the path of the lab's reset workflow$/)]);
  });

  // The schema learns routingLabels in the lead's change; until then the import refuses it (exit 1).
  const routingLabelsInSchema = LabConfigSchema.safeParse({ ...loadLabConfigFile("lab.config.json"), routingLabels: ["lab"] }).success;
  it.runIf(routingLabelsInSchema)("writes routingLabels from each --routing-label, in order", async () => {
    const result = await run(["import-matrix", FIXTURE, "--repo", "a/b", "--routing-label", "lab", "--routing-label", "os-windows-2022"]);
    expect(result.code).toBe(0);
    expect(JSON.parse(result.stdout).routingLabels).toEqual(["lab", "os-windows-2022"]);
  });
  it.skipIf(routingLabelsInSchema)("refuses --routing-label while the lab config schema has no routingLabels, printing nothing", async () => {
    const result = await run(["import-matrix", FIXTURE, "--repo", "a/b", "--routing-label", "lab"]);
    expect(result).toMatchObject({ code: 1, stdout: "" });
    expect(result.errors[0]).toBe(`lab-reset: ${FIXTURE}: the config made from it is invalid: $: Unrecognized key: "routingLabels"`);
  });
});
