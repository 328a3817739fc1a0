import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { main } from "../shared/cli/main.js";
import { ConfigurationError, loadLabConfigFile, parseLabConfig } from "../shared/lab/config.js";
import { parseSchedule } from "../shared/lab/schedule.js";
import { readSettings } from "../shared/settings.js";

const pair = (id: string, a: string, b: string) => ({
  id,
  vmRunnerLabel: id,
  hosts: [
    { runnerLabel: `parent=rr1-netperf-${a}\\localadminuser`, vmName: "client" },
    { runnerLabel: `child=rr1-netperf-${b}\\localadminuser`, vmName: "server" },
  ],
});
const valid = () => ({
  github: { owner: "microsoft", repo: "netperf", runnerScope: "repo" },
  resetWorkflow: { workflow: "lab-reset.yml", ref: "main" },
  pairs: [pair("vm-25-26", "26", "25")],
});
const problemsOf = (value: unknown): string[] => {
  try {
    parseLabConfig(value);
  } catch (error) {
    if (error instanceof ConfigurationError) return error.problems;
    throw error;
  }
  return [];
};

describe("lab config", () => {
  it("the shipped lab.config.json holds the seed's four pairs and eight hosts", () => {
    const config = loadLabConfigFile("lab.config.json");
    expect(config.pairs.map((p) => p.id)).toEqual(["vm-25-26", "vm-05-10", "vm-42-43", "vm-11-12"]);
    expect(config.pairs.flatMap((p) => p.hosts)).toHaveLength(8);
    expect(config.pairs[0]!.hosts[0]!.runnerLabel).toBe("parent=rr1-netperf-26\\localadminuser");
    // Perf jobs reach the lab's VMs through `lab`: the shipped config takes used VMs out of routing.
    expect(config.routingLabels).toEqual(["lab"]);
  });

  it("fills freshForMinutes and resetTimeoutMinutes with their defaults", () => {
    expect(parseLabConfig(valid())).toMatchObject({ freshForMinutes: 60, resetTimeoutMinutes: 30 });
  });

  it("reports every error at once, each with its JSON path", () => {
    const config = {
      github: { owner: "", repo: "netperf", runnerScope: "enterprise" },
      resetWorkflow: { workflow: "lab-reset.yml" },
      freshForMinutes: -1,
      pairs: [pair("vm-25-26", "26", "25"), { ...pair("vm-25-26", "26", "27"), hosts: [{ runnerLabel: "rr1-netperf-27", vmName: "" }] }],
      extra: true,
    };
    const problems = problemsOf(config);
    for (const path of [
      "$.github.owner",
      "$.github.runnerScope",
      "$.resetWorkflow.ref",
      "$.freshForMinutes",
      "$.pairs[1].hosts:",
      "$.pairs[1].hosts[0].runnerLabel",
      "$.pairs[1].hosts[0].vmName",
      "$: Unrecognized key",
    ]) {
      expect(problems.some((p) => p.startsWith(path)), `${path} in ${problems.join("\n")}`).toBe(true);
    }
  });

  it("rejects duplicate pair ids and runner labels, naming both places", () => {
    const problems = problemsOf({ ...valid(), pairs: [pair("vm-25-26", "26", "25"), { ...pair("vm-25-26", "26", "27"), vmRunnerLabel: "VM-25-26" }] });
    expect(problems).toContain('$.pairs[1].id: duplicate pair id "vm-25-26" (first used at $.pairs[0].id)');
    expect(problems).toContain('$.pairs[1].vmRunnerLabel: duplicate runner label "VM-25-26" (first used at $.pairs[0].vmRunnerLabel)');
    expect(problems.some((p) => p.startsWith("$.pairs[1].hosts[0].runnerLabel: duplicate runner label"))).toBe(true);
  });

  it("routingLabels defaults to none (labels are never touched) and takes the custom label perf jobs route on", () => {
    expect(parseLabConfig(valid()).routingLabels).toEqual([]);
    expect(parseLabConfig({ ...valid(), routingLabels: ["lab", "perf"] }).routingLabels).toEqual(["lab", "perf"]);
  });

  it("refuses a routing label that is read-only, a pair's vmRunnerLabel, a host runner label, empty or repeated, naming where", () => {
    const problems = problemsOf({ ...valid(), routingLabels: ["Self-Hosted", "x64", "windows", "VM-25-26", "parent=rr1-netperf-26\\localadminuser", "", "lab", "LAB"] });
    expect(problems.filter((p) => p.startsWith("$.routingLabels[0]: ")).join()).toMatch(/"Self-Hosted" is a read-only label .* cannot be removed/);
    expect(problems.some((p) => p.startsWith('$.routingLabels[1]: "x64" is a read-only label'))).toBe(true);
    expect(problems.some((p) => p.startsWith('$.routingLabels[2]: "windows" is a read-only label'))).toBe(true);
    expect(problems).toContain('$.routingLabels[3]: "VM-25-26" is the vmRunnerLabel of pair vm-25-26 ($.pairs[0].vmRunnerLabel): lab-reset finds the pair\'s VM runner by it, so it must never be removed');
    expect(problems.some((p) => p.startsWith('$.routingLabels[4]: "parent=rr1-netperf-26\\localadminuser" is a host runner label ($.pairs[0].hosts[0].runnerLabel)'))).toBe(true);
    expect(problems).toContain("$.routingLabels[5]: a routing label cannot be empty");
    expect(problems).toContain('$.routingLabels[7]: duplicate routing label "LAB" (first at $.routingLabels[6])');
    for (const arch of ["ARM64", "arm", "Linux", "macOS"]) expect(problemsOf({ ...valid(), routingLabels: [arch] })).toHaveLength(1);
  });

  it("says what to do when the file is missing or not JSON", () => {
    expect(() => loadLabConfigFile("/nonexistent/lab.json")).toThrow(/Set LAB_CONFIG_PATH/);
    const dir = mkdtempSync(join(tmpdir(), "lab-"));
    writeFileSync(join(dir, "bad.json"), "{ pairs: ");
    expect(() => loadLabConfigFile(join(dir, "bad.json"))).toThrow(/not valid JSON/);
  });
});

describe("lab config errors: where, in one style, and what to do where they are printed", () => {
  const dir = mkdtempSync(join(tmpdir(), "lab-json-"));
  let files = 0;
  /** The one problem loading `text` as the lab config reports. */
  const problemOf = (text: string) => {
    const path = join(dir, `config-${++files}.json`);
    writeFileSync(path, text);
    try {
      loadLabConfigFile(path);
    } catch (error) {
      if (!(error instanceof ConfigurationError)) throw error;
      expect(error.message.split("\n")[0]).toBe("The lab config is not valid JSON:");
      expect(error.problems).toHaveLength(1);
      return error.problems[0]!.replace(path, "FILE");
    }
    throw new Error("loaded");
  };
  const shipped = JSON.stringify(valid(), null, 2);

  it("a JSON syntax error is named by line and column, on one line, whichever way V8 words it", () => {
    /** `line:column` (1-based) of the `|` in `marked`, found in `text` without it, counted apart from the code under test. */
    const at = (text: string, marked: string) => {
      const needle = marked.replace("|", "");
      const lines = text.split("\n");
      const line = lines.findIndex((l) => l.includes(needle));
      expect(line, needle).toBeGreaterThanOrEqual(0);
      return `${line + 1}:${lines[line]!.indexOf(needle) + marked.indexOf("|") + 1}`;
    };
    /** V8's own words vary between versions: the place is exact, the words one line without V8's position. */
    const expectAt = (text: string, where: string) => {
      const problem = problemOf(text);
      expect(problem.startsWith(`FILE:${where}: `), `${problem} at ${where}`).toBe(true);
      expect(problem).not.toMatch(/\n|position|is not valid JSON/);
      return problem.slice(`FILE:${where}: `.length);
    };
    // V8 gives a position for some errors ("at position 2"), for others only an excerpt spanning lines.
    expect(expectAt("{ pairs: ", "1:3")).toMatch(/property name/);
    const missingValue = shipped.replace('"ref": "main"', '"ref": ,');
    expect(expectAt(missingValue, at(missingValue, '"ref": |,'))).toBe("Unexpected token ','");
    const doubleComma = shipped.replace('"lab-reset.yml",', '"lab-reset.yml",,');
    expectAt(doubleComma, at(doubleComma, ",|,"));
    const unquoted = shipped.replace('"repo": "netperf"', 'repo: "netperf"');
    expectAt(unquoted, at(unquoted, "|repo:"));
    const unclosed = shipped.replace(/\n}$/, "");
    expectAt(unclosed, `${unclosed.split("\n").length}:${unclosed.split("\n").at(-1)!.length + 1}`);
    expectAt(`${shipped}\n}`, `${shipped.split("\n").length + 1}:1`);
    expect(expectAt("", "1:1")).toBe("Unexpected end of JSON input");
    expect(expectAt(`\ufeff${shipped}`, "1:1")).toBe("Unexpected U+FEFF (a byte order mark: save the file as UTF-8 without one)");
    expect(expectAt('{ "a": tru\n}', "1:11")).toBe("Unexpected character U+000A");
    expectAt("[1, 2 3]", "1:7");
    expectAt('{\n  "a": "x\ny" }', "2:10");
    expectAt('{ "a": -}', "1:9");
    expectAt('{"a": 1} {"b": 2}', "1:10");
  });

  it("paths are one style, $.pairs[0].id, in the problem and in the place it points to", () => {
    const problems = problemsOf({ ...valid(), pairs: [pair("vm-25-26", "26", "25"), pair("vm-25-26", "26", "27")] });
    for (const problem of problems) expect(problem).not.toMatch(/\bpairs\.\d/);
    expect(problems[0]).toBe('$.pairs[1].id: duplicate pair id "vm-25-26" (first used at $.pairs[0].id)');
  });

  it("start-up says to restart the app; check-config says to fix the file", async () => {
    expect(() => parseLabConfig({ ...valid(), pairs: [] })).toThrow(/^lab config is invalid; fix these and restart the app:\n {2}- \$\.pairs: list at least one pair$/);
    const path = join(dir, "no-pairs.json");
    writeFileSync(path, JSON.stringify({ ...valid(), pairs: [] }));
    expect(() => loadLabConfigFile(path)).toThrow(`${path} is invalid; fix these and restart the app:`);
    expect(() => loadLabConfigFile(path, dir, "fix these in the file")).toThrow(`${path} is invalid; fix these in the file:`);
    let stderr = "";
    const code = await main(["check-config", path], { stdout: () => {}, stderr: (t) => void (stderr += t), env: {}, now: () => new Date(), timeoutMs: 1000 });
    expect(code).toBe(1);
    expect(stderr).toBe(`lab-reset: ${path} is invalid; fix these in the file:\n  - $.pairs: list at least one pair\n`);
  });
});

describe("settings", () => {
  it("defaults GitHub's URL, the config path and the schedule", () => {
    const s = readSettings({ GITHUB_TOKEN: "t", AzureWebJobsStorage: "UseDevelopmentStorage=true" });
    expect(s).toMatchObject({ githubApiUrl: "https://api.github.com", labConfigPath: "lab.config.json", resetSchedule: "0 0 */6 * * *", githubAuth: { kind: "token", token: "t" } });
  });

  it("accepts a GitHub Enterprise Server URL and identity-based storage", () => {
    const s = readSettings({ GITHUB_API_URL: "https://ghes.example/api/v3/", GITHUB_TOKEN: "t", AzureWebJobsStorage__accountName: "labstore", AzureWebJobsStorage__clientId: "abc" });
    expect(s.githubApiUrl).toBe("https://ghes.example/api/v3");
    expect(s.storage).toEqual({ kind: "identity", tableServiceUrl: "https://labstore.table.core.windows.net", queueServiceUrl: "https://labstore.queue.core.windows.net", clientId: "abc" });
  });

  it("takes a GitHub App, turning escaped newlines in the key into real ones", () => {
    const s = readSettings({ GITHUB_APP_ID: "123", GITHUB_APP_INSTALLATION_ID: "456", GITHUB_APP_PRIVATE_KEY: "-----BEGIN RSA PRIVATE KEY-----\\nabc\\n-----END RSA PRIVATE KEY-----" });
    expect(s.githubAuth).toEqual({ kind: "app", appId: "123", installationId: 456, privateKey: "-----BEGIN RSA PRIVATE KEY-----\nabc\n-----END RSA PRIVATE KEY-----" });
  });

  it("names every malformed or missing setting at once", () => {
    let message = "";
    try {
      readSettings({ GITHUB_API_URL: "not a url", GITHUB_APP_ID: "abc", RESET_SCHEDULE: "0 */6 * * *", LAB_TABLE_PREFIX: "x" });
    } catch (error) {
      message = (error as Error).message;
    }
    for (const name of ["GITHUB_API_URL", "GITHUB_APP_ID", "GITHUB_APP_INSTALLATION_ID", "GITHUB_APP_PRIVATE_KEY", 'RESET_SCHEDULE "0 */6 * * *" has 5 fields', "LAB_TABLE_PREFIX"]) {
      expect(message).toContain(name);
    }
  });

  it("stops on an unresolved Key Vault reference", () => {
    expect(() => readSettings({ GITHUB_TOKEN: "@Microsoft.KeyVault(SecretUri=https://kv.vault.azure.net/secrets/gh)" })).toThrow(/GITHUB_TOKEN is an unresolved Key Vault reference/);
  });
});

describe("NCRONTAB schedule", () => {
  it("fires every 6 hours on the hour for the default schedule", () => {
    const s = parseSchedule("0 0 */6 * * *");
    expect(s.next(new Date("2026-11-27T05:59:59Z")).toISOString()).toBe("2026-11-27T06:00:00.000Z");
    expect(s.next(new Date("2026-11-27T06:00:00Z")).toISOString()).toBe("2026-11-27T12:00:00.000Z");
    expect(s.next(new Date("2026-11-27T18:30:00Z")).toISOString()).toBe("2026-11-28T00:00:00.000Z");
  });

  it("handles lists, ranges, names and day-of-week", () => {
    const weekdays = parseSchedule("30 15 9-17/4 * * mon-fri"); // 2026-11-27 is a Friday
    expect(weekdays.next(new Date("2026-11-27T13:20:00Z")).toISOString()).toBe("2026-11-27T17:15:30.000Z");
    expect(weekdays.next(new Date("2026-11-27T17:15:30Z")).toISOString()).toBe("2026-11-30T09:15:30.000Z");
    expect(parseSchedule("0 0 0 1 jan,jul *").next(new Date("2026-11-27T00:00:00Z")).toISOString()).toBe("2027-01-01T00:00:00.000Z");
  });

  it("rejects five-field cron and out-of-range values with a clear message", () => {
    expect(() => parseSchedule("0 */6 * * *")).toThrow(/six/);
    expect(() => parseSchedule("0 0 25 * * *")).toThrow(/hour field "25"/);
    expect(() => parseSchedule("0 0 0 31 2 *").next(new Date())).toThrow(/never fires/);
  });
});
