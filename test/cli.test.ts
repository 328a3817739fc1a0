/**
 * The `lab-reset` command line: check-config, usage errors, and the commands that call a running
 * app. Those run against the real local host over the seed lab (`startRealApp`: the app's function
 * definitions, Azurite, the GitHub stand-in); a loopback stand-in (`startFakeApp`) plays only what
 * a running app cannot easily be made to answer: a refused key, a 5xx, no answer, not the app.
 */
import { spawn, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { createServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from "vitest";
import { functionDefinitions } from "../functions/definitions.js";
import { MAX_EVENTS } from "../shared/admin/routes.js";
import { main, MAX_HISTORY_EVENTS } from "../shared/cli/main.js";
import { startLocalHost, type LocalHost } from "../shared/local/host.js";
import { silentLogger } from "../shared/logger.js";
import { CoalescedSends, StorageReconcileQueue } from "../shared/storage/queue.js";
import { finishReset, perfRun, startTestLab, vmRunnerName, type TestLab } from "./support/lab.js";

const NOW = new Date("2026-12-01T12:00:00Z");

async function run(argv: string[], env: Record<string, string> = {}, timeoutMs = 2000, now = NOW) {
  let stdout = "";
  let stderr = "";
  const code = await main(argv, { stdout: (t) => void (stdout += t), stderr: (t) => void (stderr += t), env, now: () => now, timeoutMs });
  return { code, stdout, stderr, errors: stderr.split("\n").filter((line) => line !== "") };
}

const dir = mkdtempSync(join(tmpdir(), "lab-reset-cli-test-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

// --- the app stand-in, for what a running app cannot easily be made to answer ---------------------------------------------------------------------------

interface Seen {
  method: string;
  url: string;
  key: string | undefined;
  body: string;
}
/** `headers` are sent as given; `noDate` leaves out the Date header Node sends by default. */
type Answer = { status: number; body?: unknown; raw?: string; headers?: Record<string, string>; noDate?: boolean } | "hang";

let app: { url: string; seen: Seen[]; close: () => Promise<void> } | undefined;
afterEach(async () => {
  await app?.close();
  app = undefined;
});

/** A loopback HTTP server answering `"METHOD /path?query"` with the given answer, else 404. */
async function startFakeApp(routes: Record<string, Answer>) {
  const seen: Seen[] = [];
  const hanging: IncomingMessage[] = [];
  const server: Server = createServer((request, response) => {
    let body = "";
    request.on("data", (chunk: Buffer) => (body += chunk.toString()));
    request.on("end", () => {
      seen.push({ method: request.method ?? "", url: request.url ?? "", key: request.headers["x-functions-key"] as string | undefined, body });
      const answer = routes[`${request.method} ${request.url}`] ?? { status: 404, body: { error: "no such route" } };
      if (answer === "hang") return void hanging.push(request);
      if (answer.noDate) response.sendDate = false;
      response.writeHead(answer.status, { "content-type": "application/json", ...answer.headers });
      response.end(answer.raw ?? (answer.body === undefined ? "" : JSON.stringify(answer.body)));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  app = {
    url,
    seen,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
  return app;
}

// --- check-config -------------------------------------------------------------------------------

describe("lab-reset check-config", () => {
  it("says ok with the pairs of a valid config, by default $LAB_CONFIG_PATH", async () => {
    const shipped = await run(["check-config"]);
    expect(shipped).toMatchObject({ code: 0, stderr: "", stdout: "ok: 4 pairs (vm-25-26, vm-05-10, vm-42-43, vm-11-12) for microsoft/netperf in lab.config.json\n" });
    const one = join(dir, "one-pair.json");
    const config = JSON.parse(readFileSync("lab.config.json", "utf8"));
    writeFileSync(one, JSON.stringify({ ...config, pairs: config.pairs.slice(0, 1) }));
    expect((await run(["check-config"], { LAB_CONFIG_PATH: one })).stdout).toBe(`ok: 1 pair (vm-25-26) for microsoft/netperf in ${one}\n`);
  });

  it("lists every problem with its JSON path, as start-up does, and exits 1", async () => {
    const bad = join(dir, "bad.json");
    const config = JSON.parse(readFileSync("lab.config.json", "utf8"));
    config.pairs[1].hosts[0].runnerLabel = "rr1-netperf-05";
    config.pairs[2].id = "vm 42";
    writeFileSync(bad, JSON.stringify(config));
    const result = await run(["check-config", bad]);
    expect(result).toMatchObject({ code: 1, stdout: "" });
    expect(result.errors).toEqual([
      `lab-reset: ${bad} is invalid; fix these in the file:`,
      expect.stringMatching(/^ {2}- \$\.pairs\[1\]\.hosts\[0\]\.runnerLabel: must look like "parent=/),
      "  - $.pairs[2].id: must be 1-63 letters, digits, '.', '_' or '-'",
    ]);
  });

  it("names a missing file and a file that is not JSON", async () => {
    const missing = await run(["check-config", join(dir, "absent.json")]);
    expect(missing.code).toBe(1);
    expect(missing.errors[1]).toMatch(/absent\.json: ENOENT/);
    const notJson = join(dir, "not.json");
    writeFileSync(notJson, "{ pairs: ");
    expect((await run(["check-config", notJson])).errors[0]).toBe("lab-reset: The lab config is not valid JSON:");
  });

  it("prints { ok, file, pairs | problems } with --json", async () => {
    const ok = await run(["check-config", "lab.config.json", "--json"]);
    expect(JSON.parse(ok.stdout)).toEqual({ ok: true, file: "lab.config.json", repository: "microsoft/netperf", pairs: ["vm-25-26", "vm-05-10", "vm-42-43", "vm-11-12"] });
    const bad = join(dir, "empty.json");
    writeFileSync(bad, "{}");
    const failed = await run(["check-config", bad, "--json"]);
    expect(failed.code).toBe(1);
    expect(JSON.parse(failed.stdout)).toMatchObject({ ok: false, file: bad, problems: expect.arrayContaining([expect.stringMatching(/^\$\.github: /)]) });
  });
});

// --- usage --------------------------------------------------------------------------------------

describe("lab-reset usage", () => {
  it("prints help on stdout and exits 0 for --help, for the program and each command", async () => {
    const program = await run(["--help"]);
    expect(program.code).toBe(0);
    for (const command of ["check-config", "import-matrix", "status", "history", "plan", "reset", "hold", "release", "routing", "routing status", "routing restore"]) {
      expect(program.stdout).toContain(command.split(" ")[0]);
      const help = await run([...command.split(" "), "--help"]);
      expect(help.code).toBe(0);
      expect(help.stdout).toMatch(new RegExp(`^Usage: lab-reset ${command}`));
    }
  });

  it("exits 2 with one line naming the mistake and the help to read", async () => {
    const cases: [string[], string][] = [
      [["nope"], "lab-reset: unknown command 'nope'; see lab-reset --help"],
      [["status", "--bogus"], "lab-reset: unknown option '--bogus'; see lab-reset status --help"],
      [["history"], "lab-reset: missing required argument 'pair'; see lab-reset history --help"],
      [["history", "vm-42-43", "--limit", "0"], "lab-reset: option '--limit <n>' argument '0' is invalid. Give a whole number from 1 to 500; see lab-reset history --help"],
      [["hold", "vm-42-43"], "lab-reset: required option '--reason <text>' not specified; see lab-reset hold --help"],
      [["hold", "vm-42-43", "--reason", " "], "lab-reset: option '--reason <text>' argument ' ' is invalid. Say why the pair is held; see lab-reset hold --help"],
      [["reset", "a", "b"], "lab-reset: too many arguments for 'reset'. Expected 1 argument but got 2; see lab-reset reset --help"],
      [["status", "--url", "not a url"], "lab-reset: --url not a url is not a URL; give the app's address, e.g. http://127.0.0.1:7071"],
      [["routing", "restore", "--bogus"], "lab-reset: unknown option '--bogus'; see lab-reset routing restore --help"],
      [["status", "--entra", "lab-reset"], "lab-reset: --entra lab-reset is not a client id; give the client id (a GUID) of lab-reset's Entra app registration"],
    ];
    for (const [argv, message] of cases) {
      const result = await run(argv);
      expect({ argv, code: result.code, errors: result.errors, stdout: result.stdout }).toEqual({ argv, code: 2, errors: [message], stdout: "" });
    }
  });

  it("blames LAB_RESET_URL, not --url, for a LAB_RESET_URL that is not a URL", async () => {
    expect(await run(["status"], { LAB_RESET_URL: "garbage" })).toMatchObject({
      code: 2,
      stdout: "",
      stderr: "lab-reset: LAB_RESET_URL=garbage is not a URL; set LAB_RESET_URL to the app's address, e.g. https://<app>.azurewebsites.net, or pass --url\n",
    });
    expect((await run(["plan"], { LAB_RESET_URL: "ftp://lab" })).stderr).toBe("lab-reset: LAB_RESET_URL=ftp://lab is not an http(s) URL; set LAB_RESET_URL to the app's address, e.g. https://<app>.azurewebsites.net, or pass --url\n");
    // A good --url wins over a bad LAB_RESET_URL, and a bad --url is blamed as --url.
    expect((await run(["status", "--url", "garbage"], { LAB_RESET_URL: "http://127.0.0.1:9" })).stderr).toMatch(/^lab-reset: --url garbage is not a URL/);
    expect((await run(["status", "--url", "http://127.0.0.1:9"], { LAB_RESET_URL: "garbage" })).stderr).toMatch(/^lab-reset: cannot reach lab-reset at http:\/\/127\.0\.0\.1:9/);
    expect((await run(["status"], { LAB_RESET_ENTRA_CLIENT_ID: "x" })).stderr).toBe("lab-reset: LAB_RESET_ENTRA_CLIENT_ID=x is not a client id; give the client id (a GUID) of lab-reset's Entra app registration\n");
  });

  it("exits 2 with the help on stderr when no command is given", async () => {
    const result = await run([]);
    expect(result).toMatchObject({ code: 2, stdout: "" });
    expect(result.stderr).toMatch(/^Usage: lab-reset/);
  });
});

// --- commands that call the app: a running local host over the seed lab ------------------------------

let real: { lab: TestLab; host: LocalHost } | undefined;
afterEach(async () => {
  await real?.host.close();
  await real?.lab.close();
  real = undefined;
});

/**
 * The app as `npm start` serves it, over the test lab: the local host with the real function
 * definitions, its triggers handing over through an Azurite queue that the host's queue function polls.
 */
async function startRealApp() {
  const lab = await startTestLab();
  const connectionString = inject("azuriteConnectionString");
  const queueName = `q${randomBytes(6).toString("hex")}`;
  lab.runtime.queue = new CoalescedSends(await StorageReconcileQueue.open({ kind: "connectionString", connectionString }, queueName));
  const definitions = functionDefinitions(() => Promise.resolve(lab.runtime), { resetSchedule: "0 0 */6 * * *", reconcileQueue: queueName });
  const host = await startLocalHost({ definitions, port: 0, logger: silentLogger, queueConnectionString: connectionString });
  real = { lab, host };
  const url = host.url;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- compared with what the CLI prints
  const get = async (path: string): Promise<any> => (await fetch(`${url}${path}`)).json();
  const pairs = async (): Promise<PairView[]> => (await get("/api/pairs")).pairs;
  const pair = async (id: string) => (await pairs()).find((p) => p.id === id)!;
  const timer = async () => expect((await fetch(`${url}/admin/functions/scheduledReset`, { method: "POST" })).status).toBe(202);
  /** The CLI, in process, at the lab's time, with time enough for a loaded machine. */
  const cli = (argv: string[], env: Record<string, string> = {}) => run(argv, env, 10_000, lab.now.value);
  return { lab, url, get, pairs, pair, timer, cli };
}
type RealApp = Awaited<ReturnType<typeof startRealApp>>;
type PairView = { id: string; state: string; reason: string; routing: string | null; resetRunId: number | null; holdBy: string | null; resetRequestedAt: string | null; lastError: string | null };

/** Polls until `check` passes: the host's queue function picks a message up within about a second. */
async function eventually<T>(read: () => Promise<T>, check: (value: T) => boolean, ms = 15_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await read();
    if (check(value)) return value;
    if (Date.now() > deadline) throw new Error(`still not so after ${ms} ms: ${JSON.stringify(value)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Every pair reset once; then vm-25-26 and vm-05-10 clean, vm-42-43 failed, vm-11-12 still resetting. */
async function variedLab(app: RealApp) {
  const { lab } = app;
  await app.timer();
  await eventually(app.pairs, (pairs) => pairs.every((p) => p.state === "resetting" && p.resetRunId !== null));
  const runOf = (id: string) => lab.github.dispatches.find((d) => d.inputs.pair === id)!.runId!;
  finishReset(lab, runOf("vm-25-26"));
  finishReset(lab, runOf("vm-05-10"));
  finishReset(lab, runOf("vm-42-43"), "failure");
  lab.advance(10);
  await app.timer();
  const want = { "vm-25-26": "clean", "vm-05-10": "clean", "vm-42-43": "failed", "vm-11-12": "resetting" };
  await eventually(app.pairs, (pairs) => pairs.every((p) => p.state === want[p.id as keyof typeof want]));
  lab.advance(1);
  return { runOf };
}

/** A table's cells: columns are padded apart by two spaces or more, cells hold single spaces. */
const cells = (stdout: string) => stdout.trimEnd().split("\n").map((line) => line.split(/ {2,}/));

describe("lab-reset status, history and plan (against a running local host)", () => {
  it("status shows each pair's state, why, last job, last reset, attempts, routing, hold and last error; --json is GET /api/pairs", async () => {
    const app = await startRealApp();
    const { runOf } = await variedLab(app);
    expect((await fetch(`${app.url}/api/pairs/vm-05-10/hold`, { method: "POST", body: JSON.stringify({ reason: "firmware update" }) })).status).toBe(200);
    await eventually(app.pairs, (pairs) => pairs.find((p) => p.id === "vm-05-10")?.routing !== "open");
    const api = await app.pairs();
    const routing = (id: string) => api.find((p) => p.id === id)!.routing ?? "-";
    const lastError = api.find((p) => p.id === "vm-42-43")!.lastError!;
    expect(lastError).toMatch(/^reset run \d+ ended with conclusion "failure"/);

    const result = await app.cli(["status", "--url", app.url, "--key", "k3y"]);
    expect(result).toMatchObject({ code: 0, stderr: "" });
    const [header, rule, ...rows] = cells(result.stdout);
    expect(header).toEqual(["pair", "state", "why", "last job", "last reset", "attempts", "routing", "hold", "last error"]);
    expect(rule!.every((dashes) => /^-+$/.test(dashes))).toBe(true);
    const failed = api.find((p) => p.id === "vm-42-43")!.reason;
    const table = [
      ["vm-25-26", "clean", `reset run ${runOf("vm-25-26")} succeeded`, "-", `11 min ago (run ${runOf("vm-25-26")})`, "0", routing("vm-25-26"), "-", "-"],
      ["vm-05-10", "clean", `reset run ${runOf("vm-05-10")} succeeded`, "-", `11 min ago (run ${runOf("vm-05-10")})`, "0", routing("vm-05-10"), "admin: firmware update", "-"],
      ["vm-42-43", "failed", `${failed.slice(0, 59)}…`, "-", "-", "1", routing("vm-42-43"), "-", `${lastError.slice(0, 49)}…`],
      ["vm-11-12", "resetting", "reset requested (the VM ran a job or its state is unknown)", "-", `in flight (run ${runOf("vm-11-12")})`, "1", routing("vm-11-12"), "-", "-"],
    ];
    const routingWord = (row: string[]) => row.map((cell, i) => (i === 6 ? cell.split(" ")[0] : cell));
    expect(rows.map(routingWord)).toEqual(table);
    expect(failed).toMatch(/^reset run \d+ ended with conclusion "failure" \(attempt 1\)/);

    // "11 min ago" by the app's clock (GET /api/pairs `now`), not by this machine's, here years off.
    const offClock = await run(["status", "--url", app.url], {}, 10_000, new Date("2031-06-01T00:00:00Z"));
    expect(cells(offClock.stdout).slice(2).map(routingWord)).toEqual(table);
    expect((await app.get("/api/pairs")).now).toBe(app.lab.now.value.toISOString());

    // --json prints the app's answer unchanged; LAB_RESET_URL (a trailing slash is fine) names the app.
    const json = await app.cli(["status", "--json"], { LAB_RESET_URL: `${app.url}/`, LAB_RESET_KEY: "from-env" });
    expect(json.code).toBe(0);
    expect(JSON.parse(json.stdout)).toEqual(await app.get("/api/pairs"));
  });

  it("history lists a pair's events newest first as GET /api/pairs/{id}/events answers them, --limit of them", async () => {
    const app = await startRealApp();
    expect(await app.cli(["history", "vm-25-26", "--url", app.url])).toMatchObject({ code: 0, stderr: "", stdout: "vm-25-26: no events recorded yet\n" });
    await variedLab(app);

    const { events } = await app.get("/api/pairs/vm-42-43/events?limit=3");
    const result = await app.cli(["history", "vm-42-43", "--limit", "3", "--url", app.url]);
    expect(result).toMatchObject({ code: 0, stderr: "" });
    const [header, , ...rows] = cells(result.stdout);
    expect(header).toEqual(["at", "kind", "trigger", "change", "why", "reset run"]);
    expect(rows).toEqual(
      events.map((e: { at: string; kind: string; trigger: string; from: string | null; to: string; reason: string; resetRunId: number | null }) => [
        `${e.at.slice(0, 10)} ${e.at.slice(11, 19)}Z`,
        e.kind,
        e.trigger,
        `${e.from ?? "(none)"} -> ${e.to}`,
        e.reason.length > 70 ? `${e.reason.slice(0, 69)}…` : e.reason,
        e.resetRunId === null ? "-" : String(e.resetRunId),
      ]),
    );
    expect(rows.filter((row) => row[1] === "state").map((row) => row[3])).toContain("resetting -> failed");

    const json = await app.cli(["history", "vm-42-43", "--limit", "3", "--url", app.url, "--json"]);
    expect(JSON.parse(json.stdout)).toEqual({ pair: "vm-42-43", events });
    const all = await app.cli(["history", "vm-42-43", "--url", app.url, "--json"]);
    expect(JSON.parse(all.stdout)).toEqual(await app.get("/api/pairs/vm-42-43/events"));
  });

  it("history says an unknown pair is unknown (404) with the app's list of pairs, and refuses a --limit over the app's 500 itself", async () => {
    const app = await startRealApp();
    const result = await app.cli(["history", "vm-99-98", "--url", app.url]);
    expect(result).toMatchObject({ code: 1, stdout: "" });
    expect(result.errors).toEqual([
      `lab-reset: GET /api/pairs/vm-99-98/events: No pair "vm-99-98" in the lab config; pairs: vm-25-26, vm-05-10, vm-42-43, vm-11-12. (404 from ${app.url}); lab-reset status lists the pairs (a 404 for a listed pair means the app predates this command)`,
    ]);
    expect(MAX_HISTORY_EVENTS).toBe(MAX_EVENTS);
    expect((await app.cli(["history", "vm-25-26", "--limit", String(MAX_EVENTS), "--url", app.url])).code).toBe(0);
    expect(await app.cli(["history", "vm-25-26", "--limit", String(MAX_EVENTS + 1), "--url", app.url])).toMatchObject({
      code: 2,
      stderr: "lab-reset: option '--limit <n>' argument '501' is invalid. Give a whole number from 1 to 500; see lab-reset history --help\n",
    });
  });

  it("plan shows what the next timer reconcile would decide for each pair, and the app does none of it", async () => {
    const app = await startRealApp();
    const result = await app.cli(["plan", "--url", app.url, "--key", "k"]);
    expect(result).toMatchObject({ code: 0, stderr: "" });
    const why = "reset requested (the VM ran a job or its state is unknown)";
    expect(result.stdout.split("\n")).toEqual([
      "pair      state      decision          why",
      `--------  ---------  ----------------  ${"-".repeat(why.length)}`,
      ...["vm-25-26", "vm-05-10", "vm-42-43", "vm-11-12"].map((id) => `${id}  resetting  reset-dispatched  ${why}`),
      "",
    ]);
    const json = await app.cli(["plan", "--url", app.url, "--json"]);
    expect(JSON.parse(json.stdout)).toEqual(await app.get("/api/plan"));
    expect(app.lab.github.dispatches).toEqual([]);
    expect(await app.lab.runtime.store.listPairs()).toEqual([]);

    // Once the pairs are reset and a job runs on one, the plan follows the lab.
    await variedLab(app);
    perfRun(app.lab, [vmRunnerName("vm-25-26")]);
    const later = cells((await app.cli(["plan", "--url", app.url])).stdout).slice(2);
    expect(later.map((row) => row.slice(0, 3))).toEqual([
      ["vm-25-26", "busy", "deferred-busy"],
      ["vm-05-10", "clean", "skipped-fresh"],
      ["vm-42-43", "failed", "retry-later"],
      ["vm-11-12", "resetting", "already-resetting"],
    ]);
  });
});

describe("lab-reset plan when the app cannot read GitHub", () => {
  it("prints the plan, then each of the app's errors on stderr, and exits 1", async () => {
    const app = await startRealApp();
    app.lab.github.fail({ path: /\/actions\/runners$/ }, { status: 500 }, 10);
    const result = await app.cli(["plan", "--url", app.url]);
    expect(result.code).toBe(1);
    expect(cells(result.stdout).slice(2).map((row) => row.slice(0, 3))).toEqual(["vm-25-26", "vm-05-10", "vm-42-43", "vm-11-12"].map((id) => [id, "dirty", "deferred-unknown"]));
    expect(result.errors).toEqual([expect.stringMatching(/^lab-reset: the plan is incomplete: pairs vm-25-26, vm-05-10, vm-42-43, vm-11-12 left alone: GitHub GET \/repos\/microsoft\/netperf\/actions\/runners failed with 500/)]);
    const json = await app.cli(["plan", "--url", app.url, "--json"]);
    expect(json.code).toBe(1);
    expect(JSON.parse(json.stdout).errors).toHaveLength(1);
  });
});

describe("lab-reset reset, hold and release (against a running local host)", () => {
  it("reset asks for a reset now: the pair is reset though clean; refused (409) while in flight; 404 for an unknown or oddly spelled pair", async () => {
    const app = await startRealApp();
    const { runOf } = await variedLab(app);
    const result = await app.cli(["reset", "vm-25-26", "--url", app.url, "--key", "k"]);
    expect(result).toMatchObject({ code: 0, stderr: "", stdout: "vm-25-26: reset requested by admin (was clean); it is dispatched once the VM is idle, see lab-reset status\n" });
    const resetting = await eventually(() => app.pair("vm-25-26"), (p) => p.state === "resetting" && p.resetRunId !== null && p.resetRunId !== runOf("vm-25-26"));

    const again = await app.cli(["reset", "vm-25-26", "--url", app.url]);
    expect(again).toMatchObject({ code: 1, stdout: "" });
    expect(again.errors).toEqual([
      `lab-reset: POST /api/pairs/vm-25-26/reset: Pair vm-25-26 is being reset already (request ${(await app.lab.runtime.store.getPair("vm-25-26"))!.record.resetRequestId}, run ${resetting.resetRunId}); wait for that reset to end. (409 from ${app.url}); lab-reset status shows when it ends`,
    ]);
    const unknown = await app.cli(["reset", "vm-99-98", "--url", app.url]);
    expect(unknown).toMatchObject({ code: 1, stdout: "" });
    expect(unknown.errors[0]).toMatch(/^lab-reset: POST \/api\/pairs\/vm-99-98\/reset: No pair "vm-99-98" in the lab config; pairs: vm-25-26, .*\(404 from .*\); lab-reset status lists the pairs/);
    // The id is one path segment, however it is spelled: the app sees "vm/../x", not a path.
    expect((await app.cli(["reset", "vm/../x", "--url", app.url])).errors[0]).toMatch(/^lab-reset: POST \/api\/pairs\/vm%2F..%2Fx\/reset: No pair "vm\/..\/x" in the lab config/);
    expect((await app.cli(["reset", "vm-05-10", "--url", app.url, "--json"])).stdout).toContain('"reconcile": "queued"');
  });

  it("reset of a pair whose VM runs a job waits: status shows who asked, and the reset follows the job", async () => {
    const app = await startRealApp();
    const { runOf } = await variedLab(app);
    const perf = perfRun(app.lab, [vmRunnerName("vm-05-10")]);
    expect((await app.cli(["reset", "vm-05-10", "--url", app.url])).code).toBe(0);
    await eventually(() => app.pair("vm-05-10"), (p) => p.state === "busy");
    const row = cells((await app.cli(["status", "--url", app.url])).stdout).find((cell) => cell[0] === "vm-05-10")!;
    expect(row.slice(0, 2)).toEqual(["vm-05-10", "busy"]);
    expect(row[4]).toBe("asked 0 s ago by admin");
    expect(app.lab.github.dispatches.filter((d) => d.inputs.pair === "vm-05-10")).toHaveLength(1);

    app.lab.advance(1);
    app.lab.github.setRun(perf.id, { status: "completed", conclusion: "success" });
    await fetch(`${app.url}/api/job-completed`, { method: "POST", body: JSON.stringify({ repository: "microsoft/netperf", runId: perf.id }) });
    await eventually(() => app.pair("vm-05-10"), (p) => p.state === "resetting" && p.resetRequestedAt === null && p.resetRunId !== null && p.resetRunId !== runOf("vm-05-10"));
    expect(app.lab.github.dispatches.filter((d) => d.inputs.pair === "vm-05-10")).toHaveLength(2);
  });

  it("hold takes a pair out with a reason, reset then refuses it (409), status shows it, release ends it", async () => {
    const app = await startRealApp();
    await variedLab(app);
    const held = await app.cli(["hold", "vm-42-43", "--reason", "firmware update (LAB-311)", "--url", app.url, "--key", "k"]);
    expect(held).toMatchObject({ code: 0, stderr: "", stdout: "vm-42-43: held by admin (firmware update (LAB-311)); no resets and routing closed until lab-reset release vm-42-43\n" });
    expect(await app.pair("vm-42-43")).toMatchObject({ holdBy: "admin", holdReason: "firmware update (LAB-311)" });
    expect((await app.cli(["hold", "vm-42-43", "--reason", "firmware update (LAB-311)", "--url", app.url])).stdout).toBe("vm-42-43: already held by admin (firmware update (LAB-311))\n");

    const refused = await app.cli(["reset", "vm-42-43", "--url", app.url]);
    expect(refused).toMatchObject({ code: 1, stdout: "" });
    expect(refused.errors).toEqual([
      `lab-reset: POST /api/pairs/vm-42-43/reset: Pair vm-42-43 is held by admin (firmware update (LAB-311)); release it first. (409 from ${app.url}); run lab-reset release vm-42-43 first`,
    ]);
    const row = cells((await app.cli(["status", "--url", app.url])).stdout).find((cell) => cell[0] === "vm-42-43")!;
    expect(row[7]).toBe("admin: firmware update (LAB-311)");

    const released = await app.cli(["release", "vm-42-43", "--url", app.url, "--key", "k"]);
    expect(released).toMatchObject({ code: 0, stderr: "", stdout: "vm-42-43: released (state failed); the next reconcile decides it as usual\n" });
    expect((await app.pair("vm-42-43")).holdBy).toBeNull();
    expect((await app.cli(["release", "vm-42-43", "--url", app.url])).stdout).toBe("vm-42-43: was not held\n");
    const json = JSON.parse((await app.cli(["hold", "vm-11-12", "--reason", "x", "--url", app.url, "--json"])).stdout);
    expect(json).toMatchObject({ pair: { id: "vm-11-12", holdBy: "admin", holdReason: "x" }, changed: true });

    const unknown = await app.cli(["hold", "vm-99-98", "--reason", "x", "--url", app.url]);
    expect(unknown).toMatchObject({ code: 1, stdout: "" });
    expect(unknown.errors[0]).toMatch(/^lab-reset: POST \/api\/pairs\/vm-99-98\/hold: No pair "vm-99-98" in the lab config; .*\(404 from /);
  });
});

// --- what a running app cannot easily be made to answer: a loopback stand-in ------------------------

describe("lab-reset says in one line what went wrong calling the app", () => {
  it("cannot reach the app: connection refused", async () => {
    const { url } = await startFakeApp({});
    await app!.close();
    app = undefined;
    const result = await run(["status", "--url", url]);
    expect(result).toMatchObject({ code: 1, stdout: "" });
    expect(result.errors).toEqual([`lab-reset: cannot reach lab-reset at ${url}: connection refused (ECONNREFUSED); start it (npm start) or set --url/LAB_RESET_URL`]);
  });

  it("no answer within the timeout", async () => {
    const { url } = await startFakeApp({ "GET /api/plan": "hang" });
    const result = await run(["plan", "--url", url], {}, 200);
    expect(result.errors).toEqual([`lab-reset: cannot reach lab-reset at ${url}: no answer to GET /api/plan within 0.2 s; start it (npm start) or set --url/LAB_RESET_URL`]);
  });

  it("the key is missing (401) or wrong (403)", async () => {
    const { url, seen } = await startFakeApp({ "GET /api/pairs": { status: 401, raw: "" }, "POST /api/pairs/vm-42-43/reset": { status: 403, body: { error: "forbidden" } } });
    expect((await run(["status", "--url", url])).errors).toEqual([
      `lab-reset: GET /api/pairs: the key was refused (401 from ${url}); pass --key or set LAB_RESET_KEY to the app's function key`,
    ]);
    const wrong = await run(["reset", "vm-42-43", "--url", url, "--key", "old"]);
    expect(wrong).toMatchObject({ code: 1 });
    expect(wrong.errors).toEqual([`lab-reset: POST /api/pairs/vm-42-43/reset: the key was refused (403 from ${url}: forbidden); check --key/LAB_RESET_KEY: it must be the app's function key`]);
    // The local host checks no key (as func start): the key sent is seen here, from --key or LAB_RESET_KEY.
    await run(["reset", "vm-42-43"], { LAB_RESET_URL: url, LAB_RESET_KEY: "from-env" });
    expect(seen.map((s) => [s.method, s.url, s.key])).toEqual([
      ["GET", "/api/pairs", undefined],
      ["POST", "/api/pairs/vm-42-43/reset", "old"],
      ["POST", "/api/pairs/vm-42-43/reset", "from-env"],
    ]);
  });

  it("a 409 from an app that does not say which conflict keeps the general hint", async () => {
    const { url } = await startFakeApp({ "POST /api/pairs/vm-42-43/reset": { status: 409, body: { error: "Pair vm-42-43 is held by mara (x); release it first." } } });
    expect((await run(["reset", "vm-42-43", "--url", url])).errors).toEqual([
      `lab-reset: POST /api/pairs/vm-42-43/reset: Pair vm-42-43 is held by mara (x); release it first. (409 from ${url}); see lab-reset status; a held pair needs lab-reset release vm-42-43 first`,
    ]);
  });

  it("Entra sign-in's 401 Bearer challenge says to pass --entra; a redirect elsewhere is not followed", async () => {
    const challenge = 'Bearer realm="lab-reset.azurewebsites.net" authorization_uri="https://login.microsoftonline.com/t/oauth2/v2.0/authorize"';
    const { url, seen } = await startFakeApp({
      "GET /api/pairs": { status: 401, raw: "You do not have permission to view this directory or page.", headers: { "www-authenticate": challenge } },
      "GET /api/plan": { status: 301, headers: { location: "https://lab-reset.example.net/api/plan" } },
    });
    expect((await run(["status", "--url", url, "--key", "k"])).errors).toEqual([
      `lab-reset: GET /api/pairs: lab-reset wants an Entra sign-in (401 from ${url}); pass --entra <client-id> or set LAB_RESET_ENTRA_CLIENT_ID to its app registration's client id, after az login`,
    ]);
    expect((await run(["plan", "--url", url, "--key", "k"])).errors).toEqual([
      `lab-reset: GET /api/plan: ${url} redirects to https://lab-reset.example.net/api/plan (301); give the app's own address as --url/LAB_RESET_URL`,
    ]);
    // The key went to the app only, not on to where it redirects.
    expect(seen.map((s) => s.url)).toEqual(["/api/pairs", "/api/plan"]);
  });

  it("the app failed (5xx): its error field, on one line", async () => {
    const { url } = await startFakeApp({ "GET /api/pairs": { status: 503, body: { error: "Table Storage could not be read:\nECONNRESET" } } });
    const result = await run(["status", "--url", url]);
    expect(result).toMatchObject({ code: 1, stdout: "" });
    expect(result.errors).toEqual([`lab-reset: GET /api/pairs: lab-reset failed (503 from ${url}): Table Storage could not be read: ECONNRESET; retry later, or read the app's log`]);
  });

  it("the URL is not the app: a route it lacks, an answer that is not JSON or not the app's shape", async () => {
    const { url } = await startFakeApp({ "GET /api/pairs": { status: 200, raw: "<html>hello</html>" }, "GET /api/plan": { status: 200, body: { pairs: [{ id: "x" }] } } });
    expect((await run(["status", "--url", url])).errors).toEqual([
      `lab-reset: GET /api/pairs: ${url} answered 200 with something that is not JSON; is --url/LAB_RESET_URL the lab-reset app?`,
    ]);
    expect((await run(["plan", "--url", url])).errors).toEqual([
      expect.stringMatching(/^lab-reset: GET \/api\/plan: unexpected answer from .* \(\$\.pairs\[0\]\.state: .*\); is --url the lab-reset app, at the same version as this CLI\?$/),
    ]);
    expect((await run(["reset", "vm-1-2", "--url", url])).errors).toEqual([`lab-reset: POST /api/pairs/vm-1-2/reset: no such route (404 from ${url}); lab-reset status lists the pairs (a 404 for a listed pair means the app predates this command)`]);
  });
});

describe("lab-reset status counts relative times from the app's clock", () => {
  const pairs = [{ id: "vm-42-43", state: "clean", lastJobAt: "2026-12-10T11:55:00.000Z", lastJobRunId: 7 }];
  const lastJob = async (url: string, now: Date) => cells((await run(["status", "--url", url], {}, 2000, now)).stdout)[2]![3];

  it("from the answer's now, else its Date header, else this machine's clock", async () => {
    const local = new Date("2026-12-01T12:00:00Z");
    const { url } = await startFakeApp({ "GET /api/pairs": { status: 200, body: { now: "2026-12-10T12:00:00.000Z", pairs }, headers: { date: "Thu, 10 Dec 2026 13:00:00 GMT" } } });
    expect(await lastJob(url, local)).toBe("5 min ago (run 7)");
    await app!.close();
    // An app older than this CLI sends no `now`: its Date header is the next best clock.
    const older = await startFakeApp({ "GET /api/pairs": { status: 200, body: { pairs }, headers: { date: "Thu, 10 Dec 2026 13:00:00 GMT" } } });
    expect(await lastJob(older.url, local)).toBe("1 h ago (run 7)");
    await app!.close();
    const undated = await startFakeApp({ "GET /api/pairs": { status: 200, body: { pairs }, noDate: true } });
    expect(await lastJob(undated.url, new Date("2026-12-10T12:20:00Z"))).toBe("25 min ago (run 7)");
  });
});

// --- the installed command ------------------------------------------------------------------------

/** The compiled CLI, rebuilt when a source under shared/cli is newer (npm test builds first anyway). */
function ensureBuilt() {
  const built = "dist/shared/cli/main.js";
  const newest = Math.max(...readdirSync("shared/cli", { recursive: true, withFileTypes: true }).filter((f) => f.isFile()).map((f) => statSync(join(f.parentPath, f.name)).mtimeMs));
  if (!existsSync(built) || statSync(built).mtimeMs < newest) {
    // Type errors elsewhere in the tree still emit; only a missing entry is fatal here.
    spawnSync("npm", ["run", "build"], { stdio: "pipe" });
  }
  expect(existsSync(built)).toBe(true);
}

const bin = (args: string[], env: Record<string, string> = {}) =>
  spawnSync(process.execPath, ["bin/lab-reset.mjs", ...args], { encoding: "utf8", env: { PATH: process.env.PATH, ...env }, timeout: 20_000 });

describe("bin/lab-reset.mjs", () => {
  beforeAll(ensureBuilt, 120_000);

  it("runs the compiled CLI with its exit codes: 0 for --help, 2 for a usage error, 1 for a failure", () => {
    const help = bin(["--help"]);
    expect(help.status).toBe(0);
    expect(help.stdout).toMatch(/^Usage: lab-reset/);
    expect(bin(["nope"])).toMatchObject({ status: 2, stdout: "", stderr: "lab-reset: unknown command 'nope'; see lab-reset --help\n" });
    const refused = bin(["status", "--url", "http://127.0.0.1:9"]);
    expect(refused).toMatchObject({ status: 1, stdout: "" });
    expect(refused.stderr).toMatch(/^lab-reset: cannot reach lab-reset at http:\/\/127\.0\.0\.1:9: .*\n$/);
  });

  it("talks to a running app: status --json and plan through the installed command", async () => {
    const app = await startRealApp();
    // Not spawnSync: the app answering it runs in this process.
    const binAsync = (args: string[]) =>
      new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
        const child = spawn(process.execPath, ["bin/lab-reset.mjs", ...args], { env: { PATH: process.env.PATH, LAB_RESET_URL: app.url }, stdio: ["ignore", "pipe", "pipe"] });
        let stdout = "";
        let stderr = "";
        child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
        child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
        child.once("close", (code) => resolve({ code, stdout, stderr }));
      });
    const status = await binAsync(["status", "--json"]);
    expect(status).toMatchObject({ code: 0, stderr: "" });
    expect(JSON.parse(status.stdout)).toEqual(await app.get("/api/pairs"));
    const plan = await binAsync(["plan"]);
    expect(plan).toMatchObject({ code: 0, stderr: "" });
    expect(plan.stdout.split("\n").slice(2, 6).map((line) => line.split(/ {2,}/).slice(0, 3))).toEqual(
      ["vm-25-26", "vm-05-10", "vm-42-43", "vm-11-12"].map((id) => [id, "resetting", "reset-dispatched"]),
    );
  });

  it("says how to build when dist is missing, in one line, and exits 1", () => {
    const copy = join(dir, "unbuilt", "bin");
    mkdirSync(copy, { recursive: true });
    copyFileSync("bin/lab-reset.mjs", join(copy, "lab-reset.mjs"));
    const result = spawnSync(process.execPath, [join(copy, "lab-reset.mjs"), "check-config"], { encoding: "utf8" });
    expect(result).toMatchObject({ status: 1, stdout: "", stderr: "lab-reset: not built; run npm run build\n" });
  });

  it("loads neither Octokit nor the Azure SDKs for check-config and import-matrix", () => {
    // A resolve hook logs every module the process loads.
    const log = join(dir, "modules.log");
    writeFileSync(
      join(dir, "hooks.mjs"),
      `import { appendFileSync } from "node:fs";\nexport async function resolve(specifier, context, next) {\n  const result = await next(specifier, context);\n  appendFileSync(${JSON.stringify(log)}, result.url + "\\n");\n  return result;\n}\n`,
    );
    writeFileSync(join(dir, "register.mjs"), `import { register } from "node:module";\nregister(${JSON.stringify(pathToFileURL(join(dir, "hooks.mjs")).href)});\n`);
    for (const args of [["check-config", "lab.config.json"], ["import-matrix", "test/fixtures/auto-reset-parent-or-child-lab-machine.yml", "--repo", "a/b"]]) {
      writeFileSync(log, "");
      const result = spawnSync(process.execPath, ["--import", pathToFileURL(join(dir, "register.mjs")).href, "bin/lab-reset.mjs", ...args], { encoding: "utf8" });
      expect(result.status).toBe(0);
      const loaded = readFileSync(log, "utf8");
      expect(loaded).toContain("/node_modules/zod/");
      expect(loaded).not.toMatch(/\/node_modules\/@octokit\/|\/node_modules\/@azure\/|\/dist\/shared\/(github|storage|reconcile|triggers)\//);
    }
  });
});
