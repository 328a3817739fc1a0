/**
 * `lab-reset report`: against the local host over the seed lab (the app's function definitions and
 * stores), whose history holds the resets its reconciles recorded and the jobs the test records.
 */
import { afterEach, describe, expect, it } from "vitest";
import { functionDefinitions } from "../functions/definitions.js";
import { main } from "../shared/cli/main.js";
import { startLocalHost, type LocalHost } from "../shared/local/host.js";
import { silentLogger } from "../shared/logger.js";
import { ReportSchema } from "../shared/report/report.js";
import { finishReset, startTestLab, vmRunnerName, type TestLab } from "./support/lab.js";

async function run(argv: string[], now: Date) {
  let stdout = "";
  let stderr = "";
  const code = await main(argv, { stdout: (t) => void (stdout += t), stderr: (t) => void (stderr += t), env: {}, now: () => now, timeoutMs: 10_000 });
  return { code, stdout, stderr, errors: stderr.split("\n").filter((line) => line !== "") };
}

let served: { lab: TestLab; host: LocalHost } | undefined;
afterEach(async () => {
  await served?.host.close();
  await served?.lab.close();
  served = undefined;
});

async function startApp() {
  const lab = await startTestLab();
  const host = await startLocalHost({ definitions: functionDefinitions(() => Promise.resolve(lab.runtime), { resetSchedule: "0 0 */6 * * *", reconcileQueue: "unused" }), port: 0, logger: silentLogger });
  served = { lab, host };
  const cli = (argv: string[]) => run([...argv, "--url", host.url], lab.now.value);
  return { lab, url: host.url, cli };
}

/** Every pair reset (vm-42-43's failed), then over 5 hours two perf jobs on vm-25-26 (no reset between) and one on vm-05-10. */
async function weekOfWork(lab: TestLab) {
  await lab.timer();
  for (const dispatch of lab.github.dispatches) finishReset(lab, dispatch.runId!, dispatch.inputs.pair === "vm-42-43" ? "failure" : "success");
  lab.advance(7);
  await lab.timer();
  lab.advance(300);
  const at = (minutesAgo: number) => new Date(lab.now.value.getTime() - minutesAgo * 60_000).toISOString();
  await lab.runtime.history.recordRunners(["vm-25-26", "vm-05-10"].map((id) => ({ runnerName: vmRunnerName(id), pairId: id, role: "vm" as const, labels: ["lab", id] })));
  await lab.runtime.history.recordJobs([
    { jobId: 1, runId: 101, labels: ["lab", "os-windows-2022"], runnerName: "VM-25-26", queuedAt: at(300), startedAt: at(299.5), completedAt: at(240), conclusion: "success" },
    { jobId: 2, runId: 102, labels: ["lab", "os-windows-2022"], runnerName: "VM-25-26", queuedAt: at(203), startedAt: at(200), completedAt: at(150), conclusion: "success" },
    { jobId: 3, runId: 103, labels: ["lab", "os-linux"], runnerName: "VM-05-10", queuedAt: at(140), startedAt: at(125), completedAt: at(100), conclusion: "success" },
  ]);
}

/** A table's cells: columns are padded apart by two spaces or more. */
const cells = (text: string) => text.trimEnd().split("\n").map((line) => line.split(/ {2,}/));

describe("lab-reset report (against a running local host)", () => {
  it("prints the window, jobs, queue waits per label set, resets with their times, and each pair's shares, as GET /api/report answers them", async () => {
    const { lab, url, cli } = await startApp();
    await weekOfWork(lab);
    const answer = ReportSchema.parse(await (await fetch(`${url}/api/report`)).json());
    const result = await cli(["report"]);
    expect(result).toMatchObject({ code: 0, stderr: "" });
    const [summary, labels, pairs] = result.stdout.split("\n\n");
    expect(summary!.split("\n")).toEqual([
      "report: 2026-11-20 17:07:00Z to 2026-11-27 17:07:00Z (7 days)",
      "jobs: 3 perf jobs, 1 dirty start, 0 killed by a reset",
      "queue wait: p50 3 min, p95 15 min",
      "resets: 3 ok, 1 failed; reset time p50 7 min, p95 7 min",
    ]);
    expect(cells(labels!)).toEqual([
      ["runs-on labels", "jobs", "wait p50", "wait p95"],
      [expect.stringMatching(/^-+$/), "----", "--------", "--------"],
      ["lab, os-windows-2022", "2", "30 s", "3 min"],
      ["lab, os-linux", "1", "15 min", "15 min"],
    ]);
    const rows = cells(pairs!);
    expect(rows[0]).toEqual(["pair", "jobs", "busy", "resetting", "out of routing, idle", "clean, idle", "offline", "resets ok", "failed"]);
    // Each pair's row is the app's report, in words.
    const percent = (share: number) => (share > 0 && share < 0.005 ? "<1 %" : `${Math.round(share * 100)} %`);
    expect(rows.slice(2)).toEqual(
      answer.pairs.map((p) => [p.id, String(p.jobs), ...[p.busyShare, p.resettingShare, p.outOfRoutingIdleShare, p.cleanIdleShare, p.offlineShare].map(percent), String(p.resets.ok), String(p.resets.failed)]),
    );
    expect(rows.slice(2).map((r) => [r[0], r[1], r[7], r[8]])).toEqual([["vm-25-26", "2", "1", "0"], ["vm-05-10", "1", "1", "0"], ["vm-42-43", "0", "0", "1"], ["vm-11-12", "0", "1", "0"]]);
  });

  it("prints the app's answer as it is with --json, over --days", async () => {
    const { lab, url, cli } = await startApp();
    await weekOfWork(lab);
    const json = await cli(["report", "--json", "--days", "2"]);
    expect(json.code).toBe(0);
    expect(JSON.parse(json.stdout)).toEqual(await (await fetch(`${url}/api/report?days=2`)).json());
    expect(JSON.parse(json.stdout).from).toBe("2026-11-25T17:07:00.000Z");
    expect((await cli(["report", "--days", "1"])).stdout.split("\n")[0]).toBe("report: 2026-11-26 17:07:00Z to 2026-11-27 17:07:00Z (1 day)");
  });

  it("says no jobs were recorded when the history is empty", async () => {
    const { cli } = await startApp();
    const result = await cli(["report"]);
    expect(result.code).toBe(0);
    expect(result.stdout.split("\n").slice(0, 3)).toEqual([
      "report: 2026-11-20 12:00:00Z to 2026-11-27 12:00:00Z (7 days)",
      "jobs: no jobs recorded in the last 7 days",
      "resets: 0 ok, 0 failed",
    ]);
    expect(result.stdout).not.toContain("runs-on labels");
  });

  it("refuses a --days that is not a whole number of 1 or more itself (exit 2), and prints the app's refusal of one over its historyDays in one line (exit 1)", async () => {
    const { lab, cli } = await startApp();
    for (const days of ["0", "1.5", "x", "-3"]) {
      const result = await run(["report", "--days", days, "--url", "http://127.0.0.1:9"], lab.now.value);
      expect(result).toMatchObject({ code: 2, stdout: "", errors: [`lab-reset: option '--days <n>' argument '${days}' is invalid. Give a whole number of days, 1 or more; see lab-reset report --help`] });
    }
    const over = await cli(["report", "--days", String(lab.config.historyDays + 1)]);
    expect(over.code).toBe(1);
    expect(over.stdout).toBe("");
    expect(over.errors).toHaveLength(1);
    expect(over.errors[0]).toMatch(new RegExp(`^lab-reset: GET /api/report\\?days=${lab.config.historyDays + 1}: refused \\(400 from http://127\\.0\\.0\\.1:\\d+\\): days must be a whole number from 1 to ${lab.config.historyDays} \\(historyDays in the lab config\\)`));
  });

  it("has help", async () => {
    const help = await run(["report", "--help"], new Date());
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/^Usage: lab-reset report \[options\]/);
    expect(help.stdout).toContain("--days <n>");
    expect((await run(["--help"], new Date())).stdout).toMatch(/\n {2}report \[options\] +The capacity report/);
  });
});
