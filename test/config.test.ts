import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
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
    expect(problems).toContain('$.pairs[1].id: duplicate pair id "vm-25-26" (first used at pairs.0.id)');
    expect(problems).toContain('$.pairs[1].vmRunnerLabel: duplicate runner label "VM-25-26" (first used at pairs.0.vmRunnerLabel)');
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
