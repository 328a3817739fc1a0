/**
 * `npm start` as a new admin meets it: the simulator's settings checked in one line, a taken
 * PORT said before the build, and the local host (with its Azurite) gone with the npm that
 * started it, however npm ends. Loopback only; npm runs offline with its update check off.
 */
import { spawn, spawnSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { createServer, type Server } from "node:net";
import { randomBytes } from "node:crypto";
import { describe, expect, inject, it } from "vitest";
import { freePort } from "../shared/local/azurite.js";
import { routingWarnings } from "../shared/lab/routing.js";
import { NO_REDELIVERY_WARNING } from "../shared/settings.js";
import { simulatorSettings, StartupError } from "../shared/local/startup-settings.js";
import { alive, procStat } from "./support/procs.js";

const linux = existsSync("/proc/self/stat");
const NPM_ENV = { npm_config_update_notifier: "false", npm_config_offline: "true", npm_config_fund: "false", npm_config_audit: "false" };
const baseEnv = () => ({ PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "/tmp", OIDC_DISABLED: "true", ...NPM_ENV });

/** Runs `command` to its end; its exit code and output. */
function run(command: string, args: string[], env: Record<string, string>, timeoutMs = 20_000) {
  return new Promise<{ code: number | null; stdout: string; stderr: string; ms: number }>((resolve) => {
    const started = Date.now();
    const child = spawn(command, args, { env: { ...baseEnv(), ...env }, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
    child.once("exit", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr, ms: Date.now() - started });
    });
  });
}

const startJs = (env: Record<string, string>) => run(process.execPath, ["dist/shared/local/start.js"], env);

describe("npm start: SIM_SPEED and SIM_SEED", () => {
  const mistakes: [string, string, RegExp][] = [
    ["SIM_SPEED", "abc", /^SIM_SPEED "abc" is not a clock speed: set SIM_SPEED to the simulated minutes per real minute, a number above 0 and at most 10000 \(default 60\)$/],
    ["SIM_SPEED", "0", /^SIM_SPEED "0" is not a clock speed: .* above 0 /],
    ["SIM_SPEED", "-5", /^SIM_SPEED "-5" is not a clock speed/],
    ["SIM_SPEED", "20000", /^SIM_SPEED "20000" is not a clock speed: .* at most 10000 /],
    ["SIM_SPEED", "Infinity", /^SIM_SPEED "Infinity" is not a clock speed/],
    ["SIM_SEED", "1.5", /^SIM_SEED "1\.5" is not a seed: set SIM_SEED to a whole number, e.g\. 1 \(the default\); the same seed gives the same perf runs$/],
    ["SIM_SEED", "x", /^SIM_SEED "x" is not a seed/],
  ];

  it.each(mistakes)("%s=%s: one line naming it, what it got and what to give", (name, value, line) => {
    let thrown: unknown;
    try {
      simulatorSettings({ [name]: value });
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toBeInstanceOf(StartupError);
    expect((thrown as Error).message).toMatch(line);
    expect((thrown as Error).message).not.toContain("\n");
  });

  it("are 60 simulated minutes per minute and seed 1 when unset or blank", () => {
    expect(simulatorSettings({})).toEqual({ speed: 60, seed: 1 });
    expect(simulatorSettings({ SIM_SPEED: " ", SIM_SEED: "" })).toEqual({ speed: 60, seed: 1 });
  });

  // One process per setting: the line is all start.js prints, and it exits before anything starts.
  it.each(mistakes.filter(([, value]) => value === "abc" || value === "x"))("%s=%s: npm start prints that line alone and exits 1 before anything starts", async (name, value, line) => {
    const app = await startJs({ PORT: String(await freePort()), [name]: value });
    expect(app.code).toBe(1);
    expect(app.stderr.endsWith("\n") && app.stderr.indexOf("\n") === app.stderr.length - 1, app.stderr).toBe(true);
    expect(app.stderr.trimEnd()).toMatch(line);
    expect(app.stdout).toBe("");
  });
});

/** Something already listening on a loopback port. */
async function busyPort(): Promise<{ port: number; server: Server }> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { port: (server.address() as { port: number }).port, server };
}

const inUse = (port: number) => `PORT ${port} is in use (by another lab-reset or func start?): stop it or set PORT to a free port, e.g. PORT=${port + 1} npm start`;

describe("npm start: a taken or wrong PORT is said before the build", () => {
  it("bin/check-port.mjs: one line and exit 1 for a taken port or one that is not a port; silent exit 0 for a free one", async () => {
    const { port, server } = await busyPort();
    try {
      expect(await run(process.execPath, ["bin/check-port.mjs"], { PORT: String(port) })).toMatchObject({ code: 1, stdout: "", stderr: `${inUse(port)}\n` });
      expect(await run(process.execPath, ["bin/check-port.mjs"], { PORT: "http" })).toMatchObject({ code: 1, stderr: 'PORT "http" is not a port number: set PORT to a free port, e.g. 7071\n' });
      expect(await run(process.execPath, ["bin/check-port.mjs"], { PORT: "70710" })).toMatchObject({ code: 1 });
      expect(await run(process.execPath, ["bin/check-port.mjs"], { PORT: String(await freePort()) })).toMatchObject({ code: 0, stdout: "", stderr: "" });
    } finally {
      server.close();
    }
  });

  it("npm start on a taken port stops in its prestart with that line, without building", async () => {
    const { port, server } = await busyPort();
    try {
      const started = await run("npm", ["start"], { PORT: String(port) });
      expect(started.code).not.toBe(0);
      expect(started.stderr).toContain(`${inUse(port)}\n`);
      expect(started.stdout).not.toMatch(/tsc|start\.js/);
      expect(started.ms).toBeLessThan(10_000);
    } finally {
      server.close();
    }
  });

  it("the local host says the same line when the port is taken after the check", async () => {
    const { port, server } = await busyPort();
    try {
      // On the tests' Azurite, in tables and a queue of its own: its own Azurite's start and stop are errors.test.ts's.
      const storage = { AzureWebJobsStorage: inject("azuriteConnectionString"), LAB_TABLE_PREFIX: `t${randomBytes(6).toString("hex")}`, RECONCILE_QUEUE: `q${randomBytes(6).toString("hex")}` };
      const app = await startJs({ PORT: String(port), GITHUB_WEBHOOK_SECRET: "x".repeat(32), ...storage });
      expect(app.code).toBe(1);
      // The simulated lab's app signs in as its GitHub App: no warning that failed deliveries are not redelivered comes first.
      expect(app.stderr).toBe(`${inUse(port)}\n`);
    } finally {
      server.close();
    }
  }, 40_000);

  it("package.json runs the check before the build", () => {
    const scripts = JSON.parse(readFileSync("package.json", "utf8")).scripts;
    expect(scripts.prestart).toMatch(/^node bin\/check-port\.mjs && npm run build$/);
  });
});


/** Every process below `root` now: npm's shell, start.js, its Azurite services. */
function descendants(root: number): number[] {
  const parents = new Map(readdirSync("/proc").filter((e) => /^\d+$/.test(e)).map((e) => [Number(e), procStat(Number(e))?.ppid]));
  const found: number[] = [];
  for (let frontier = [root]; frontier.length > 0; ) {
    frontier = [...parents].filter(([, ppid]) => ppid !== undefined && frontier.includes(ppid)).map(([pid]) => pid);
    found.push(...frontier);
  }
  return found;
}

async function listening(port: number): Promise<boolean> {
  try {
    await fetch(`http://127.0.0.1:${port}/api/pairs`, { signal: AbortSignal.timeout(1000) });
    return true;
  } catch {
    return false;
  }
}

async function until(check: () => boolean | Promise<boolean>, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, 100));
  }
  return true;
}

describe.runIf(linux)("npm start ends with its npm", () => {
  // dist is built by `npm test`'s pretest; --ignore-scripts skips prestart's build here.
  it.each(["SIGTERM", "SIGKILL"] as const)("%s to npm: start.js and its Azurite are gone and the port is free within seconds", async (signal) => {
    expect(spawnSync("sh", ["-c", "command -v npm"]).status).toBe(0);
    const port = await freePort();
    const npm = spawn("npm", ["start", "--ignore-scripts"], { env: { ...baseEnv(), PORT: String(port), SIM_SPEED: "60" }, stdio: ["ignore", "pipe", "pipe"] });
    let output = "";
    npm.stdout.on("data", (d: Buffer) => (output += d.toString()));
    npm.stderr.on("data", (d: Buffer) => (output += d.toString()));
    const below = new Set<number>();
    try {
      expect(await until(() => /GET {2}http:\/\/127\.0\.0\.1:\d+\/api\/pairs/.test(output) || npm.exitCode !== null, 30_000), output).toBe(true);
      expect(await listening(port), output).toBe(true);
      descendants(npm.pid!).forEach((pid) => below.add(pid));
      // npm's shell, start.js and Azurite's table and queue services.
      expect(below.size, output).toBeGreaterThanOrEqual(3);
      // The page of this simulated lab says its clock is simulated.
      expect(await (await fetch(`http://127.0.0.1:${port}/api/status`)).text()).toContain("the clock is simulated: it runs 60× as fast as real time");

      npm.kill(signal);
      expect(await until(async () => !(await listening(port)), 10_000), `port ${port} still served:\n${output}`).toBe(true);
      expect(await until(() => [...below].every((pid) => !alive(pid)), 10_000), `still running: ${[...below].filter(alive).join(", ")}\n${output}`).toBe(true);
    } finally {
      for (const pid of [npm.pid!, ...below]) if (alive(pid)) process.kill(pid, "SIGKILL");
    }
  }, 60_000);
});

describe("npm start's simulated lab: the recommended set-up", () => {
  // start.js itself (as npm start runs it, minus the build), on the tests' Azurite: its own Azurite is the tests above's.
  it.each([
    ["the lab's own", {}, "the lab's own, as GITHUB_WEBHOOK_SECRET is unset"],
    // Two while rotating: the lab signs with the first, as GitHub with the App's new secret.
    ["the GITHUB_WEBHOOK_SECRET", { GITHUB_WEBHOOK_SECRET: `${randomBytes(16).toString("hex")},${randomBytes(16).toString("hex")}` }, "GITHUB_WEBHOOK_SECRET"],
  ])("its lab's workflow_job deliveries, signed with %s secret, reach the webhook: a pair busy from a job's start, no missing-webhook warning, the page's simulated banner", async (_, env, secret) => {
    const port = await freePort();
    const storage = { AzureWebJobsStorage: inject("azuriteConnectionString"), LAB_TABLE_PREFIX: `t${randomBytes(6).toString("hex")}`, RECONCILE_QUEUE: `q${randomBytes(6).toString("hex")}` };
    const app = spawn(process.execPath, ["dist/shared/local/start.js"], { env: { ...baseEnv(), PORT: String(port), ...storage, ...env }, stdio: ["ignore", "pipe", "pipe"] });
    let output = "";
    app.stdout.on("data", (d: Buffer) => (output += d.toString()));
    app.stderr.on("data", (d: Buffer) => (output += d.toString()));
    try {
      // The first perf run starts a simulated minute in; only the webhook's in_progress says so with trigger `webhook`.
      expect(await until(() => /: \S+ → busy \(webhook: /.test(output) || app.exitCode !== null, 30_000), output).toBe(true);
      const { pairs } = (await (await fetch(`http://127.0.0.1:${port}/api/pairs`)).json()) as { pairs: { id: string; state: string }[] };
      const busy = /(\S+): \S+ → busy \(webhook: /.exec(output)![1];
      expect(pairs.find((p) => p.id === busy), JSON.stringify(pairs)).toMatchObject({ state: "busy" });
      // Routed on `lab`, the VM is taken out of routing as its job starts.
      expect(await until(() => output.includes(`${busy}: busy → busy (webhook: routing closed`), 10_000), output).toBe(true);

      expect(output).toContain(`the simulated lab sends signed workflow_job webhook deliveries (secret: ${secret}) to /api/github-webhook`);
      expect(output).toContain(`POST http://127.0.0.1:${port}/api/github-webhook\n`);
      for (const warning of [...routingWarnings({ webhookSecrets: [] }, { routingLabels: ["lab"] }), NO_REDELIVERY_WARNING]) expect(output).not.toContain(warning);
      // Nothing went wrong; a delivery the lab lost on its way (~1 %, by the seed) is the lab's doing.
      expect(output.split("\n").filter((line) => !line.includes("lost on its way")).join("\n")).not.toMatch(/warn|error|failed/i);
      expect(await (await fetch(`http://127.0.0.1:${port}/api/status`)).text()).toContain("the clock is simulated: it runs 60× as fast as real time");
    } finally {
      app.kill("SIGTERM");
      await until(() => app.exitCode !== null, 20_000);
    }
  }, 60_000);
});

describe("npm start's simulated lab: its own story", () => {
  it("fills the capacity report within a few simulated hours; lab-reset report prints it, advise says it is too little", async () => {
    const port = await freePort();
    const storage = { AzureWebJobsStorage: inject("azuriteConnectionString"), LAB_TABLE_PREFIX: `t${randomBytes(6).toString("hex")}`, RECONCILE_QUEUE: `q${randomBytes(6).toString("hex")}` };
    // 10 simulated minutes per real second: three simulated hours in about 20 s.
    const app = spawn(process.execPath, ["dist/shared/local/start.js"], { env: { ...baseEnv(), PORT: String(port), SIM_SPEED: "600", ...storage }, stdio: ["ignore", "pipe", "pipe"] });
    let output = "";
    app.stdout.on("data", (d: Buffer) => (output += d.toString()));
    app.stderr.on("data", (d: Buffer) => (output += d.toString()));
    const url = `http://127.0.0.1:${port}`;
    let report: { jobs: { count: number }; resets: { ok: number }; queueWaitSeconds: { byLabels: unknown[] }; pairs: unknown[] } | undefined;
    try {
      const filled = await until(async () => {
        if (app.exitCode !== null) return true;
        const answer = await fetch(`${url}/api/report?days=1`).catch(() => null);
        report = answer?.ok ? ((await answer.json()) as typeof report) : undefined;
        return (report?.jobs.count ?? 0) >= 2 && (report?.resets.ok ?? 0) >= 2;
      }, 45_000);
      expect(filled && app.exitCode === null, `${JSON.stringify(report)}\n${output}`).toBe(true);
      expect(report!.queueWaitSeconds.byLabels.length).toBeGreaterThan(0);
      expect(report!.pairs).toHaveLength(4);
      const cli = spawnSync(process.execPath, ["bin/lab-reset.mjs", "report", "--days", "1", "--url", url], { encoding: "utf8", env: baseEnv() });
      expect(cli.status, cli.stderr).toBe(0);
      expect(cli.stdout).toMatch(/^jobs: \d+ perf jobs, \d+ dirty starts?, 0 killed by a reset$/m);
      // A few simulated hours are too few jobs for advice, and advise says so in one line.
      const advice = spawnSync(process.execPath, ["bin/lab-reset.mjs", "advise", "--days", "1", "--url", url], { encoding: "utf8", env: baseEnv() });
      expect(advice.status, advice.stderr).toBe(1);
      expect(advice.stderr.trim().split("\n").at(-1)).toMatch(/^lab-reset: \d+ perf jobs? in [\d.]+ days?: too few to say anything/);
    } finally {
      app.kill("SIGTERM");
      await until(() => app.exitCode !== null, 20_000);
    }
  }, 90_000);
});
