/**
 * `lab-reset advise` against a loopback app answering GET /api/workload with a simulated day of
 * the seed lab (recorded by this app on the simulator): the text, --json, too few jobs, and a
 * change naming what the lab lacks. The simulations themselves run in the command, here.
 */
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { duration } from "../shared/cli/commands/advise.js";
import { main } from "../shared/cli/main.js";
import { loadLabConfigFile } from "../shared/lab/config.js";
import { readWorkload, WorkloadSchema, type Workload } from "../shared/report/read.js";
import { simulate } from "../shared/sim/simulate.js";
import { seedProfile } from "../shared/sim/workload.js";
import { MemoryHistoryStore } from "../shared/storage/history.js";
import { MemoryStore } from "../shared/storage/memory.js";

let workload: Workload;
let server: Server;
let url: string;
const asked: string[] = [];
/** What the app answers: the recorded day, or (`sparse`) its first ten jobs only. */
let answer: "day" | "sparse" = "day";

beforeAll(async () => {
  const profile = seedProfile(loadLabConfigFile("lab.config.json"));
  const store = new MemoryStore();
  let history: MemoryHistoryStore | undefined;
  const day = await simulate({ profile, policy: "lab-reset", seed: 1, days: 1, store, history: (clock) => (history = new MemoryHistoryStore(clock)) });
  workload = await readWorkload({ config: profile.config, store, history: history!, clock: () => new Date(day.end) }, 1);
  server = createServer((request, response) => {
    asked.push(`${request.method} ${request.url}`);
    response.writeHead(200, { "content-type": "application/json" });
    response.end(JSON.stringify(answer === "day" ? workload : { ...workload, jobs: workload.jobs.slice(0, 10) }));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}, 60_000);

afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

async function run(argv: string[]) {
  let stdout = "";
  let stderr = "";
  const code = await main(["advise", "--url", url, "--key", "k", ...argv], { stdout: (t) => void (stdout += t), stderr: (t) => void (stderr += t), env: {}, now: () => new Date(), timeoutMs: 5000 });
  return { code, stdout, stderr, errors: stderr.split("\n").filter((line) => line !== "") };
}

describe("lab-reset advise", () => {
  it("prints the lab as recorded, as it is and as proposed, overall and per label set, with progress on stderr", async () => {
    answer = "day";
    const result = await run(["--days", "1", "--os", "os-windows-2022"]);
    expect(result.code).toBe(0);
    expect(asked.at(-1)).toBe("GET /api/workload?days=1");
    expect(result.errors).toEqual([
      `reading 1 day of recorded jobs and resets from ${url}…`,
      "simulating the lab as it is (4 pairs, 1 day)…",
      "simulating the lab as proposed (+1 pair like vm-25-26 (os-windows-2022); 1 day)…",
    ]);
    const lines = result.stdout.split("\n");
    expect(lines[0]).toMatch(new RegExp(`^replayed: ${workload.jobs.length} perf jobs over 1 day \\(2026-11-23 00:00:00Z to 2026-11-24 00:00:00Z\\) in the simulator, .*; a reset's restore takes [\\d.]+ min per host \\(as measured\\)\\.$`));
    expect(lines[2]).toBe("proposed: +1 pair like vm-25-26 (os-windows-2022)");
    const cells = (line: string) => line.split(/ {2,}/);
    const table = lines.slice(4, 10).map(cells);
    expect(table.map((row) => row[0])).toEqual(["", expect.stringMatching(/^-+$/), "queue wait p50", "queue wait p95", "utilization", "resets per day"]);
    expect(table[0]).toEqual(["", "recorded", "as it is (4 pairs)", "proposed (5 pairs)"]);
    for (const row of table.slice(2, 4)) expect(row.slice(1)).toEqual([expect.stringMatching(/^\d+ s$|^[\d.]+ min$|^\d+ h \d\d min$/), expect.any(String), expect.any(String)]);
    expect(table[4]!.slice(1)).toEqual([expect.stringMatching(/^[\d.]+ %$/), expect.stringMatching(/^[\d.]+ %$/), expect.stringMatching(/^[\d.]+ %$/)]);
    const byLabels = lines.slice(11).filter((line) => line !== "").map(cells);
    expect(byLabels[0]).toEqual(["queue wait p50 / p95 by runs-on labels", "jobs", "recorded", "as it is", "proposed"]);
    expect(byLabels[2]).toEqual(["lab, os-windows-2022, self-hosted", expect.stringMatching(/^\d+$/), expect.stringMatching(/ \/ /), expect.stringMatching(/ \/ /), expect.stringMatching(/ \/ /)]);
  }, 60_000);

  it("writes waits as a person reads them, to the minute or finer", () => {
    expect([0, 45.4, 750, 5399, 9720, 9725].map(duration)).toEqual(["0 s", "45 s", "12.5 min", "90.0 min", "2 h 42 min", "2 h 42 min"]);
  });

  it("prints { workload, current, proposed } with --json; with no change, the lab as it is only", async () => {
    answer = "day";
    const proposed = await run(["--days", "1", "--add-pairs", "2", "--os", "os-linux", "--remove", "vm-25-26", "--json"]);
    expect(proposed.code).toBe(0);
    const advice = JSON.parse(proposed.stdout);
    const figures = { queueWaitP50Seconds: expect.any(Number), queueWaitP95Seconds: expect.any(Number), utilization: expect.any(Number), resetsPerDay: expect.any(Number), byLabels: expect.any(Array) };
    expect(advice).toMatchObject({
      workload: { jobs: workload.jobs.length, days: 1 },
      tooFewJobs: false,
      recorded: { queueWaitP95Seconds: expect.any(Number), utilization: expect.any(Number) },
      current: { pairs: 4, ...figures },
      proposed: { change: "+2 pairs like vm-11-12 (os-linux), without vm-25-26", pairs: 5, ...figures },
    });
    const asIs = await run(["--days", "1", "--seed", "3", "--json"]);
    expect(asIs.code).toBe(0);
    expect(JSON.parse(asIs.stdout)).not.toHaveProperty("proposed");
    expect(asIs.errors).toHaveLength(2);
  }, 60_000);

  it("says in one line that too few jobs were recorded to say anything, and exits 1; --json says so too", async () => {
    answer = "sparse";
    const text = await run(["--days", "1", "--add-pairs", "1", "--os", "os-linux"]);
    expect(text).toMatchObject({ code: 1, stdout: "" });
    expect(text.errors.at(-1)).toBe("lab-reset: 10 perf jobs in 1 day: too few to say anything (at least 20 jobs over 1 day are needed); ask for more --days, or wait for more history");
    const json = await run(["--days", "1", "--json"]);
    expect(json.code).toBe(1);
    expect(JSON.parse(json.stdout)).toEqual({ workload: { jobs: 10, days: 1, from: workload.from, to: workload.to }, tooFewJobs: true, message: expect.stringMatching(/too few to say anything/) });
  });

  it("refuses a pair or an OS the lab lacks in one line naming what it has (exit 2), before simulating anything", async () => {
    answer = "day";
    const pair = await run(["--remove", "vm-99-98"]);
    expect(pair).toMatchObject({ code: 2, stdout: "" });
    expect(pair.errors.slice(1)).toEqual(["lab-reset: no pair vm-99-98 in the lab; its pairs are vm-25-26, vm-05-10, vm-42-43, vm-11-12"]);
    const os = await run(["--os", "os-macos"]);
    expect(os.errors.slice(1)).toEqual(["lab-reset: no pair's VM runs os-macos; the lab's VMs run os-windows-2022 (3 pairs), os-linux (1 pair)"]);
    expect(asked.at(-1)).toBe("GET /api/workload?days=7");
    const count = await run(["--add-pairs", "-1"]);
    expect(count.errors).toEqual(["lab-reset: option '--add-pairs <n>' argument '-1' is invalid. Give a whole number from 0 to 100; see lab-reset advise --help"]);
  });

  it("reads the workload through the app's schema: an answer of another shape is refused in one line", async () => {
    const other = createServer((_, response) => response.end(JSON.stringify({ pairs: [] })));
    await new Promise<void>((resolve) => other.listen(0, "127.0.0.1", resolve));
    const otherUrl = `http://127.0.0.1:${(other.address() as AddressInfo).port}`;
    try {
      let stderr = "";
      const code = await main(["advise", "--url", otherUrl], { stdout: () => {}, stderr: (t) => void (stderr += t), env: {}, now: () => new Date(), timeoutMs: 5000 });
      expect(code).toBe(1);
      expect(stderr.split("\n").filter(Boolean).at(-1)).toMatch(new RegExp(`^lab-reset: GET /api/workload\\?days=7: unexpected answer from ${otherUrl} \\(`));
      expect(WorkloadSchema.safeParse({ pairs: [] }).success).toBe(false);
    } finally {
      await new Promise<void>((resolve) => other.close(() => resolve()));
    }
  });
});
