/**
 * The `lab-reset` command line: check-config, usage errors, and the commands that call a running
 * app, here a loopback stand-in answering the app's shapes (`startFakeApp`). To run the remote
 * tests against the real local host instead, give `run` that host's URL.
 */
import { spawnSync } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { createServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { main } from "../shared/cli/main.js";

const NOW = new Date("2026-12-01T12:00:00Z");
const minutesAgo = (m: number) => new Date(NOW.getTime() - m * 60_000).toISOString();

async function run(argv: string[], env: Record<string, string> = {}, timeoutMs = 2000) {
  let stdout = "";
  let stderr = "";
  const code = await main(argv, { stdout: (t) => void (stdout += t), stderr: (t) => void (stderr += t), env, now: () => NOW, timeoutMs });
  return { code, stdout, stderr, errors: stderr.split("\n").filter((line) => line !== "") };
}

const dir = mkdtempSync(join(tmpdir(), "lab-reset-cli-test-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

// --- the app stand-in ---------------------------------------------------------------------------

interface Seen {
  method: string;
  url: string;
  key: string | undefined;
  body: string;
}
type Answer = { status: number; body?: unknown; raw?: string } | "hang";

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
      response.writeHead(answer.status, { "content-type": "application/json" });
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

const pairStatus = (id: string, fields: Record<string, unknown> = {}) => ({
  id,
  vmRunnerLabel: id,
  state: "clean",
  jobSinceReset: false,
  lastJobRunId: null,
  lastJobAt: null,
  resetRequestId: null,
  resetRunId: null,
  resetDispatchedAt: null,
  resetCompletedAt: null,
  attempts: 0,
  lastError: null,
  reason: "reset run 456 succeeded",
  updatedAt: minutesAgo(1),
  routing: null,
  routingSince: null,
  holdBy: null,
  holdReason: null,
  holdSince: null,
  ...fields,
});

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
      `lab-reset: ${bad} is invalid; fix these and restart:`,
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
    for (const command of ["check-config", "import-matrix", "status", "history", "plan", "reset", "hold", "release"]) {
      expect(program.stdout).toContain(command);
      const help = await run([command, "--help"]);
      expect(help.code).toBe(0);
      expect(help.stdout).toMatch(new RegExp(`^Usage: lab-reset ${command}`));
    }
  });

  it("exits 2 with one line naming the mistake and the help to read", async () => {
    const cases: [string[], string][] = [
      [["nope"], "lab-reset: unknown command 'nope'; see lab-reset --help"],
      [["status", "--bogus"], "lab-reset: unknown option '--bogus'; see lab-reset status --help"],
      [["history"], "lab-reset: missing required argument 'pair'; see lab-reset history --help"],
      [["history", "vm-42-43", "--limit", "0"], "lab-reset: option '--limit <n>' argument '0' is invalid. Give a whole number, 1 or more; see lab-reset history --help"],
      [["hold", "vm-42-43"], "lab-reset: required option '--reason <text>' not specified; see lab-reset hold --help"],
      [["hold", "vm-42-43", "--reason", " "], "lab-reset: option '--reason <text>' argument ' ' is invalid. Say why the pair is held; see lab-reset hold --help"],
      [["reset", "a", "b"], "lab-reset: too many arguments for 'reset'. Expected 1 argument but got 2; see lab-reset reset --help"],
      [["status", "--url", "not a url"], "lab-reset: --url not a url is not a URL; give the app's address, e.g. http://127.0.0.1:7071"],
    ];
    for (const [argv, message] of cases) {
      const result = await run(argv);
      expect({ argv, code: result.code, errors: result.errors, stdout: result.stdout }).toEqual({ argv, code: 2, errors: [message], stdout: "" });
    }
  });

  it("exits 2 with the help on stderr when no command is given", async () => {
    const result = await run([]);
    expect(result).toMatchObject({ code: 2, stdout: "" });
    expect(result.stderr).toMatch(/^Usage: lab-reset/);
  });
});

// --- commands that call the app -----------------------------------------------------------------

describe("lab-reset status, history and plan", () => {
  it("shows each pair's state, why, last job, last reset, attempts, routing and hold", async () => {
    const pairs = [
      pairStatus("vm-25-26", { state: "clean", lastJobRunId: 123, lastJobAt: minutesAgo(90), resetRunId: 456, resetCompletedAt: minutesAgo(40), routing: "open", routingSince: minutesAgo(40) }),
      pairStatus("vm-05-10", { state: "resetting", attempts: 1, reason: "reset requested", resetRunId: 1001, resetCompletedAt: minutesAgo(600) }),
      pairStatus("vm-42-43", { state: "failed", attempts: 2, reason: "reset run 789 concluded failure", resetRunId: 789, resetCompletedAt: minutesAgo(300), holdBy: "alice", holdReason: "firmware update", holdSince: minutesAgo(5), routing: "closed" }),
      pairStatus("vm-11-12", { state: "dirty", reason: "no reset recorded yet", updatedAt: null }),
    ];
    const { url, seen } = await startFakeApp({ "GET /api/pairs": { status: 200, body: { pairs } } });
    const result = await run(["status", "--url", url, "--key", "k3y"]);
    expect(result).toMatchObject({ code: 0, stderr: "" });
    expect(seen).toEqual([{ method: "GET", url: "/api/pairs", key: "k3y", body: "" }]);
    expect(result.stdout.split("\n")).toEqual([
      "pair      state      why                              last job           last reset            attempts  routing      hold",
      "--------  ---------  -------------------------------  -----------------  --------------------  --------  -----------  ----------------------",
      "vm-25-26  clean      reset run 456 succeeded          1 h ago (run 123)  40 min ago (run 456)  0         open 40 min  -",
      "vm-05-10  resetting  reset requested                  -                  in flight (run 1001)  1         -            -",
      "vm-42-43  failed     reset run 789 concluded failure  -                  5 h ago               2         closed       alice: firmware update",
      "vm-11-12  dirty      no reset recorded yet            -                  -                     0         -            -",
      "",
    ]);
  });

  it("prints the app's answer unchanged with --json, and takes the URL and key from LAB_RESET_URL and LAB_RESET_KEY", async () => {
    const body = { pairs: [pairStatus("vm-25-26", { extra: "kept" })] };
    const { url, seen } = await startFakeApp({ "GET /api/pairs": { status: 200, body } });
    const result = await run(["status", "--json"], { LAB_RESET_URL: `${url}/`, LAB_RESET_KEY: "from-env" });
    expect(result.code).toBe(0);
    expect(JSON.parse(result.stdout)).toEqual(body);
    expect(seen[0]).toMatchObject({ url: "/api/pairs", key: "from-env" });
  });

  it("lists a pair's events newest first, asking for --limit of them", async () => {
    const events = [
      { at: "2026-12-01T11:50:00.000Z", kind: "state", trigger: "job-completed", from: "resetting", to: "clean", reason: "reset run 456 succeeded", resetRequestId: "r1", resetRunId: 456 },
      { at: "2026-12-01T11:40:00.000Z", kind: "dispatch", trigger: "timer", from: "dirty", to: "resetting", reason: "job since reset", resetRequestId: "r1", resetRunId: null },
    ];
    const { url, seen } = await startFakeApp({ "GET /api/pairs/vm-42-43/events?limit=2": { status: 200, body: { pair: "vm-42-43", events } } });
    const result = await run(["history", "vm-42-43", "--limit", "2", "--url", url]);
    expect(result).toMatchObject({ code: 0, stderr: "" });
    expect(seen[0]).toMatchObject({ method: "GET", key: undefined });
    expect(result.stdout.split("\n")).toEqual([
      "at                    kind      trigger        change              why                      reset run",
      "--------------------  --------  -------------  ------------------  -----------------------  ---------",
      "2026-12-01 11:50:00Z  state     job-completed  resetting -> clean  reset run 456 succeeded  456",
      "2026-12-01 11:40:00Z  dispatch  timer          dirty -> resetting  job since reset          -",
      "",
    ]);
    const json = await run(["history", "vm-42-43", "--limit", "2", "--url", url, "--json"]);
    expect(JSON.parse(json.stdout)).toEqual({ pair: "vm-42-43", events });
  });

  it("says an unknown pair is unknown (404) and how to list the pairs", async () => {
    const { url } = await startFakeApp({ "GET /api/pairs/vm-99-98/events": { status: 404, body: { error: "unknown pair vm-99-98" } } });
    const result = await run(["history", "vm-99-98", "--url", url]);
    expect(result).toMatchObject({ code: 1, stdout: "" });
    expect(result.errors).toEqual([`lab-reset: GET /api/pairs/vm-99-98/events: unknown pair vm-99-98 (404 from ${url}); lab-reset status lists the pairs (a 404 for a listed pair means the app predates this command)`]);
  });

  it("shows what a reconcile would decide for each pair", async () => {
    const pairs = [
      { id: "vm-25-26", state: "dirty", decision: "reset-dispatched", reason: "a job ran since the last reset" },
      { id: "vm-42-43", state: "busy", decision: "deferred-busy", reason: "VM runner VM-42-43 is busy" },
    ];
    const { url, seen } = await startFakeApp({ "GET /api/plan": { status: 200, body: { pairs } } });
    const result = await run(["plan", "--url", url, "--key", "k"]);
    expect(seen[0]).toMatchObject({ method: "GET", url: "/api/plan", key: "k" });
    expect(result.stdout.split("\n")).toEqual([
      "pair      state  decision          why",
      "--------  -----  ----------------  ------------------------------",
      "vm-25-26  dirty  reset-dispatched  a job ran since the last reset",
      "vm-42-43  busy   deferred-busy     VM runner VM-42-43 is busy",
      "",
    ]);
    expect(JSON.parse((await run(["plan", "--url", url, "--json"])).stdout)).toEqual({ pairs });
  });
});

describe("lab-reset reset, hold and release", () => {
  it("asks for a reset with POST and says what the app did", async () => {
    const { url, seen } = await startFakeApp({ "POST /api/pairs/vm-42-43/reset": { status: 202, body: { pair: "vm-42-43", state: "resetting", decision: "reset-dispatched", resetRunId: 456 } } });
    const result = await run(["reset", "vm-42-43", "--url", url, "--key", "k"]);
    expect(result).toMatchObject({ code: 0, stderr: "", stdout: "vm-42-43: reset requested; state resetting, decision reset-dispatched, reset run 456\n" });
    expect(seen).toEqual([{ method: "POST", url: "/api/pairs/vm-42-43/reset", key: "k", body: "" }]);
  });

  it("says a held pair or a reset in flight is refused (409) with the app's reason", async () => {
    const { url } = await startFakeApp({ "POST /api/pairs/vm-42-43/reset": { status: 409, body: { error: "pair vm-42-43 is held by alice: firmware update" } } });
    const result = await run(["reset", "vm-42-43", "--url", url]);
    expect(result).toMatchObject({ code: 1, stdout: "" });
    expect(result.errors).toEqual([
      `lab-reset: POST /api/pairs/vm-42-43/reset: pair vm-42-43 is held by alice: firmware update (409 from ${url}); see lab-reset status; a held pair needs lab-reset release vm-42-43 first`,
    ]);
  });

  it("holds a pair with POST { reason } and releases it with DELETE", async () => {
    const { url, seen } = await startFakeApp({
      "POST /api/pairs/vm-42-43/hold": { status: 200, body: { pair: { id: "vm-42-43", state: "clean", holdBy: "cli", holdReason: "firmware update" } } },
      "DELETE /api/pairs/vm-42-43/hold": { status: 200, body: { pair: { id: "vm-42-43", state: "clean" } } },
    });
    const held = await run(["hold", "vm-42-43", "--reason", "firmware update", "--url", url, "--key", "k"]);
    expect(held).toMatchObject({ code: 0, stdout: "vm-42-43: held (firmware update); state clean\n" });
    expect(seen[0]).toMatchObject({ method: "POST", url: "/api/pairs/vm-42-43/hold", key: "k" });
    expect(JSON.parse(seen[0]!.body)).toEqual({ reason: "firmware update" });
    const released = await run(["release", "vm-42-43", "--url", url, "--key", "k"]);
    expect(released).toMatchObject({ code: 0, stdout: "vm-42-43: released; state clean\n" });
    expect(seen[1]).toMatchObject({ method: "DELETE", url: "/api/pairs/vm-42-43/hold", key: "k", body: "" });
  });

  it("encodes a pair id in the path", async () => {
    const { url, seen } = await startFakeApp({});
    await run(["release", "vm/../x", "--url", url]);
    expect(seen[0]!.url).toBe("/api/pairs/vm%2F..%2Fx/hold");
  });
});

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
    const { url } = await startFakeApp({ "GET /api/pairs": { status: 401, raw: "" }, "POST /api/pairs/vm-42-43/reset": { status: 403, body: { error: "forbidden" } } });
    expect((await run(["status", "--url", url])).errors).toEqual([
      `lab-reset: GET /api/pairs: the key was refused (401 from ${url}); pass --key or set LAB_RESET_KEY to the app's function key`,
    ]);
    const wrong = await run(["reset", "vm-42-43", "--url", url, "--key", "old"]);
    expect(wrong).toMatchObject({ code: 1 });
    expect(wrong.errors).toEqual([`lab-reset: POST /api/pairs/vm-42-43/reset: the key was refused (403 from ${url}: forbidden); check --key/LAB_RESET_KEY: it must be the app's function key`]);
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
