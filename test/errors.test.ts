/**
 * Mistakes in settings and surroundings are said in one line that names the setting or thing at
 * fault, what was found and what to do; never a stack. The local host stops its Azurite on every
 * way out. Loopback only: closed ports are ports nothing listens on.
 */
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { TableClient, RestError } from "@azure/data-tables";
import { QueueClient } from "@azure/storage-queue";
import { describe, expect, inject, it, vi } from "vitest";
import { createOctokit, GitHubError, OctokitLabGitHub } from "../shared/github/client.js";
import { ConfigurationError, appFolder, loadLabConfigFile } from "../shared/lab/config.js";
import { freePort } from "../shared/local/azurite.js";
import { silentLogger } from "../shared/logger.js";
import { createRuntime } from "../shared/runtime.js";
import { checkConnectionString, NO_REDELIVERY_WARNING, readSettings } from "../shared/settings.js";
import { openTable, StoreError, tableClient } from "../shared/storage/connection.js";
import { StorageReconcileQueue } from "../shared/storage/queue.js";
import { seedConfig } from "./support/lab.js";
import { alive, procStat } from "./support/procs.js";

/** A plain token's start-up warning, said before whatever stops start-up. */
const withoutWarning = (stderr: string) => stderr.replace(`${NO_REDELIVERY_WARNING}\n`, "");

const NOT_A_CONNECTION_STRING = 'AzureWebJobsStorage is not a connection string (expected "AccountName=…;AccountKey=…" or "UseDevelopmentStorage=true")';

function settingsProblems(env: Record<string, string>): string[] {
  try {
    readSettings(env);
    return [];
  } catch (error) {
    if (error instanceof ConfigurationError) return error.problems;
    throw error;
  }
}

describe("AzureWebJobsStorage is checked before an SDK sees it", () => {
  it("says a value that is no connection string is not one, instead of the SDK's TypeError", () => {
    expect(settingsProblems({ AzureWebJobsStorage: "foo" })).toEqual([NOT_A_CONNECTION_STRING]);
    expect(settingsProblems({ AzureWebJobsStorage: "foo=bar" })).toEqual([NOT_A_CONNECTION_STRING]);
  });

  it("keeps UseDevelopmentStorage=true and Azurite's explicit endpoints as they are", () => {
    const azurite = inject("azuriteConnectionString");
    for (const value of ["UseDevelopmentStorage=true", azurite]) {
      expect(readSettings({ AzureWebJobsStorage: value }).storage).toEqual({ kind: "connectionString", connectionString: value });
    }
  });

  it("completes an account-key string without protocol or endpoints with https and core.windows.net, so both SDKs take it", () => {
    const completed = checkConnectionString("accountname=labstore;accountkey=a2V5");
    expect(completed).toEqual({ connectionString: "AccountName=labstore;AccountKey=a2V5;DefaultEndpointsProtocol=https;EndpointSuffix=core.windows.net" });
    const { connectionString } = completed as { connectionString: string };
    expect(TableClient.fromConnectionString(connectionString, "t").url).toBe("https://labstore.table.core.windows.net");
    expect(new QueueClient(connectionString, "q-q").url).toBe("https://labstore.queue.core.windows.net/q-q");
  });

  it.each([
    ["AccountName=labstore;AccountKey=a2V5;TableEndpoint=http://127.0.0.1:10002/labstore", "AzureWebJobsStorage has a TableEndpoint but no QueueEndpoint (nor EndpointSuffix): add QueueEndpoint=…; lab-reset uses the account's tables and queues"],
    ["TableEndpoint=https://h/a;SharedAccessSignature=sv=1&sig=x", "AzureWebJobsStorage has a SharedAccessSignature but no QueueEndpoint: add QueueEndpoint=…; lab-reset uses the account's tables and queues"],
    ["AccountName=labstore", "AzureWebJobsStorage has no AccountKey (nor SharedAccessSignature): copy the whole connection string from the storage account's Access keys"],
    ["AccountName=labstore;AccountKey=not base64!", "AzureWebJobsStorage has an AccountKey that is not base64: copy the key again from the storage account's Access keys"],
  ])("names what is missing or wrong in %s", (value, problem) => {
    expect(settingsProblems({ AzureWebJobsStorage: value })).toEqual([problem]);
  });

  it("an SDK's own refusal of a string that got past the check is one line naming the setting", () => {
    const open = () => tableClient({ kind: "connectionString", connectionString: "foo" }, "t");
    expect(open).toThrow(StoreError);
    expect(open).toThrow(/^AzureWebJobsStorage is not a connection string Table Storage accepts \(.*\): expected "AccountName=…;AccountKey=…" or "UseDevelopmentStorage=true"$/);
  });
});

/** How a promise failed: the error's name and message. */
const failure = (promise: Promise<unknown>) =>
  promise.then(
    () => "resolved",
    (error: unknown) => `${(error as Error).name}: ${(error as Error).message}`,
  );

describe("storage refusals and unreachable endpoints", () => {
  const azurite = () => inject("azuriteConnectionString");
  const wrongKey = () => azurite().replace(/AccountKey=[^;]+/, `AccountKey=${Buffer.alloc(64, 7).toString("base64")}`);
  const closed = async () => {
    const port = await freePort();
    return { port, connectionString: azurite().replace(/127\.0\.0\.1:\d+/g, `127.0.0.1:${port}`) };
  };

  it("a wrong key is one line naming AzureWebJobsStorage, for tables and for the queue", async () => {
    const connection = { kind: "connectionString" as const, connectionString: wrongKey() };
    expect(await failure(openTable(connection, "errorsWrongKey"))).toBe(
      "StoreError: Table Storage refused the key in AzureWebJobsStorage (403 AuthorizationFailure): check its AccountKey and the account's firewall",
    );
    expect(await failure(StorageReconcileQueue.open(connection, "errors-wrong-key"))).toBe(
      "StoreError: Queue Storage refused the key in AzureWebJobsStorage (403 AuthenticationFailed): check its AccountKey and the account's firewall",
    );
  });

  it("a closed port names the endpoint and what to check", async () => {
    // One try each (the SDKs' default retries wait ~7 s and ~28 s for the same error).
    const { port, connectionString } = await closed();
    const connection = { kind: "connectionString" as const, connectionString, retry: { maxTries: 1 } };
    expect(await failure(openTable(connection, "errorsClosed"))).toBe(
      `StoreError: Table Storage create table errorsClosed failed: cannot reach http://127.0.0.1:${port}: ECONNREFUSED; check AzureWebJobsStorage and that the account (or Azurite) is running`,
    );
    expect(await failure(StorageReconcileQueue.open(connection, "errors-closed"))).toBe(
      `StoreError: Queue Storage create queue errors-closed failed: cannot reach http://127.0.0.1:${port}: ECONNREFUSED; check AzureWebJobsStorage and that the account (or Azurite) is running`,
    );
  });

  it("tries a call as often as the connection's retry says, tables and queues alike", async () => {
    const server = await answering(503);
    try {
      const connectionString = azurite().replace(/127\.0\.0\.1:\d+/g, `127.0.0.1:${new URL(server.url).port}`);
      const connection = { kind: "connectionString" as const, connectionString, retry: { maxTries: 3, retryDelayInMs: 1, maxRetryDelayInMs: 5 } };
      await expect(openTable(connection, "errorsRetried")).rejects.toThrow(/^Table Storage create table errorsRetried failed: 503/);
      expect(server.requests()).toBe(3);
      await expect(StorageReconcileQueue.open(connection, "errors-retried")).rejects.toThrow(/^Queue Storage create queue errors-retried failed: 503/);
      expect(server.requests()).toBe(6);
    } finally {
      await server.close();
    }
  });

  it("tries every table and the queue createRuntime opens as often as its storageRetry says", async () => {
    const server = await answering(503);
    try {
      const connectionString = azurite().replace(/127\.0\.0\.1:\d+/g, `127.0.0.1:${new URL(server.url).port}`);
      const settings = readSettings({ GITHUB_TOKEN: "t", OIDC_DISABLED: "true", AzureWebJobsStorage: connectionString });
      await expect(createRuntime(settings, seedConfig, { logger: silentLogger, storageRetry: { maxTries: 5, retryDelayInMs: 1, maxRetryDelayInMs: 5 } })).rejects.toThrow(StoreError);
      // Six tables and the queue, five tries each: more than the SDKs' own four tries could ever make.
      await vi.waitFor(() => expect(server.requests()).toBe(35), { timeout: 10_000 });
      await new Promise((r) => setTimeout(r, 200));
      expect(server.requests()).toBe(35);
    } finally {
      await server.close();
    }
  });

  it("a managed identity refused is told which role it lacks", () => {
    tableClient({ kind: "identity", tableServiceUrl: "https://labstore.table.core.windows.net", queueServiceUrl: "https://labstore.queue.core.windows.net", credential: { getToken: () => Promise.resolve(null) } }, "labresetPairs");
    const refused = new RestError("This request is not authorized to perform this operation using this permission.", {
      statusCode: 403,
      code: "AuthorizationPermissionMismatch",
      request: { url: "https://labstore.table.core.windows.net/Tables" } as never,
    });
    expect(new StoreError("create table labresetPairs", refused).message).toBe(
      "Table Storage refused the app's managed identity (403 AuthorizationPermissionMismatch): give it the Storage Table Data Contributor role on the storage account",
    );
  });

  it("other storage errors keep the call and storage's own words, not the XML's first line", () => {
    const busy = new RestError('<?xml version="1.0" encoding="utf-8"?>\n<Error><Code>ServerBusy</Code></Error>', {
      statusCode: 503,
      code: "ServerBusy",
      request: { url: "http://127.0.0.1:1/devstoreaccount1/Tables" } as never,
    });
    (busy as { details?: unknown }).details = { errorCode: "ServerBusy", Message: "The server is busy.\nRequestId:1" };
    expect(new StoreError("list labresetPairs", busy).message).toBe("Table Storage list labresetPairs failed: 503 ServerBusy: The server is busy.");
  });
});

/** An HTTP server on loopback that answers every request with `status`, counting them. */
async function answering(status: number): Promise<{ url: string; requests: () => number; close: () => Promise<void> }> {
  let requests = 0;
  const server: Server = createServer((_req, res) => {
    requests++;
    res.writeHead(status, { "content-type": "application/json" }).end(JSON.stringify({ message: "Bad gateway" }));
  });
  await new Promise<void>((done) => server.listen(0, "127.0.0.1", done));
  const { port } = server.address() as { port: number };
  return { url: `http://127.0.0.1:${port}`, requests: () => requests, close: () => new Promise((done) => server.close(() => done())) };
}

describe("GitHub that cannot be reached", () => {
  it("is reported as a connection failure, not a 500, and fails in well under a second with the default retries", async () => {
    const port = await freePort();
    const github = new OctokitLabGitHub(createOctokit({ baseUrl: `http://127.0.0.1:${port}`, auth: { kind: "token", token: "t" }, logger: silentLogger }), seedConfig);
    const started = Date.now();
    const error = await github.listRunners().catch((e: unknown) => e);
    const elapsed = Date.now() - started;
    expect(error).toBeInstanceOf(GitHubError);
    expect((error as GitHubError).message).toBe(`GitHub GET /repos/microsoft/netperf/actions/runners failed: cannot connect to http://127.0.0.1:${port}: ECONNREFUSED; check GITHUB_API_URL`);
    expect((error as GitHubError).status).toBeNull();
    // Before: the retry plugin's backoff, 1 + 4 + 9 s.
    expect(elapsed).toBeLessThan(2_000);
  });

  it("still retries a real 5xx answer as often as configured", async () => {
    const server = await answering(502);
    try {
      const github = new OctokitLabGitHub(createOctokit({ baseUrl: server.url, auth: { kind: "token", token: "t" }, logger: silentLogger, retryBaseMs: 5 }), seedConfig);
      await expect(github.listRunners()).rejects.toThrow(/^GitHub GET \/repos\/microsoft\/netperf\/actions\/runners failed with 502: /);
      expect(server.requests()).toBe(4);
    } finally {
      await server.close();
    }
  });
});

describe("GitHub that drops the connection", () => {
  it("is retried as before, and reported as no answer rather than as a 500", async () => {
    let requests = 0;
    const server = createServer((req) => {
      requests++;
      req.socket.destroy();
    });
    await new Promise<void>((done) => server.listen(0, "127.0.0.1", done));
    const { port } = server.address() as { port: number };
    try {
      const github = new OctokitLabGitHub(createOctokit({ baseUrl: `http://127.0.0.1:${port}`, auth: { kind: "token", token: "t" }, logger: silentLogger, retryBaseMs: 5 }), seedConfig);
      expect(await failure(github.listRunners())).toBe(`GitHubError: GitHub GET /repos/microsoft/netperf/actions/runners failed: no answer from http://127.0.0.1:${port}: UND_ERR_SOCKET`);
      expect(requests).toBe(4);
    } finally {
      await new Promise((done) => server.close(done));
    }
  });
});

describe("LAB_CONFIG_PATH", () => {
  it("is the app folder's when relative, whatever the working directory, and stays as it is when absolute", async () => {
    expect(appFolder()).toBe(resolve("."));
    const elsewhere = mkdtempSync(join(tmpdir(), "lab-reset-cwd-"));
    const absolute = join(elsewhere, "lab.json");
    writeFileSync(absolute, JSON.stringify({ ...seedConfig, pairs: [seedConfig.pairs[0]] }));
    expect(loadLabConfigFile(absolute).pairs).toHaveLength(1);
    // A process in another folder, loading the built module as `npm start` does.
    const script = `const { loadLabConfigFile } = await import(${JSON.stringify(resolve("dist/shared/lab/config.js"))});
      console.log(loadLabConfigFile("lab.config.json").pairs.length, loadLabConfigFile(${JSON.stringify(absolute)}).pairs.length);`;
    const child = spawn(process.execPath, ["--input-type=module", "-e", script], { cwd: elsewhere, stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    child.stderr.on("data", (d: Buffer) => (out += d.toString()));
    expect(await new Promise((done) => child.once("exit", done))).toBe(0);
    expect(out.trim()).toBe(`${seedConfig.pairs.length} 1`);
  });

  it("that names no file says where it looked", () => {
    expect(() => loadLabConfigFile("absent.json")).toThrow(
      `Cannot read the lab config:\n  - ${resolve("absent.json")}: ENOENT: no such file. Set LAB_CONFIG_PATH to the lab config file (absolute, or relative to ${resolve(".")}).`,
    );
  });
});

// ---- `npm start` as a process: what it prints, and that no Azurite outlives it ----

const linux = existsSync("/proc/self/stat");


/** Azurite processes whose parent is `parent`. */
function azuriteChildren(parent: number): number[] {
  return readdirSync("/proc")
    .filter((entry) => /^\d+$/.test(entry) && procStat(Number(entry))?.ppid === parent)
    .filter((entry) => {
      try {
        return readFileSync(`/proc/${entry}/cmdline`, "utf8").includes("azurite");
      } catch {
        return false;
      }
    })
    .map(Number);
}

async function allGone(pids: number[], ms: number): Promise<number[]> {
  const deadline = Date.now() + ms;
  while (pids.some(alive) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  return pids.filter(alive);
}

/** `node dist/shared/local/start.js`, its output, and every Azurite process it started (watched while it runs). */
function startApp(env: Record<string, string>, cwd = process.cwd()) {
  const child = spawn(process.execPath, [resolve("dist/shared/local/start.js")], { cwd, env: { PATH: process.env.PATH ?? "", OIDC_DISABLED: "true", ...env }, stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
  child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
  const azurite = new Set<number>();
  const watch = setInterval(() => azuriteChildren(child.pid!).forEach((pid) => azurite.add(pid)), 25);
  const exited = new Promise<number | null>((done) =>
    child.once("exit", (code) => {
      clearInterval(watch);
      done(code);
    }),
  );
  const waitFor = async (pattern: RegExp, ms = 20_000) => {
    const deadline = Date.now() + ms;
    while (!pattern.test(stdout)) {
      if (Date.now() > deadline || child.exitCode !== null) throw new Error(`did not see ${pattern} in:\n${stdout}\n${stderr}`);
      await new Promise((r) => setTimeout(r, 25));
    }
  };
  return { child, exited, waitFor, stdout: () => stdout, stderr: () => stderr, azurite: () => [...azurite] };
}

describe.runIf(linux)("npm start on a mistake or a way out", () => {
  it("AzureWebJobsStorage=foo: the settings message only, exit 1, no Azurite", async () => {
    const app = startApp({ AzureWebJobsStorage: "foo", PORT: String(await freePort()) });
    expect(await app.exited).toBe(1);
    expect(app.stderr()).toBe(`App settings are invalid; fix these and restart:\n  - ${NOT_A_CONNECTION_STRING}\n`);
    expect(app.azurite()).toEqual([]);
  });

  it("a busy PORT: one line, exit 1, and its Azurite stopped; the lab config is found from another working directory", async () => {
    const busy = await answering(200);
    const port = Number(new URL(busy.url).port);
    try {
      // With the webhook secret set, start-up has no warning to print about routing labels; with a
      // plain token, only that failed deliveries are not redelivered.
      const app = startApp({ PORT: String(port), GITHUB_WEBHOOK_SECRET: "x".repeat(32) }, mkdtempSync(join(tmpdir(), "lab-reset-cwd-")));
      expect(await app.exited).toBe(1);
      expect(withoutWarning(app.stderr())).toBe(`PORT ${port} is in use (by another lab-reset or func start?): stop it or set PORT to a free port, e.g. PORT=${port + 1} npm start\n`);
      expect(app.azurite()).toHaveLength(2);
      expect(app.azurite().filter(alive)).toEqual([]);
    } finally {
      await busy.close();
    }
  }, 40_000);

  it("a job-completed whose GitHub cannot be reached answers 503 within 10 s; SIGTERM then stops Azurite", async () => {
    const github = await freePort();
    const port = await freePort();
    const app = startApp({ GITHUB_API_URL: `http://127.0.0.1:${github}`, GITHUB_TOKEN: "t", PORT: String(port) });
    await app.waitFor(/POST http:\/\/127\.0\.0\.1:\d+\/admin\/functions\/scheduledReset/);
    const started = Date.now();
    const response = await fetch(`http://127.0.0.1:${port}/api/job-completed`, { method: "POST", body: JSON.stringify({ repository: "microsoft/netperf", runId: 123 }), signal: AbortSignal.timeout(15_000) });
    const elapsed = Date.now() - started;
    expect(response.status).toBe(503);
    expect(((await response.json()) as { error: string }).error).toMatch(
      new RegExp(`^GitHub GET /repos/microsoft/netperf/actions/runs/123/jobs failed: cannot connect to http://127\\.0\\.0\\.1:${github}: ECONNREFUSED; check GITHUB_API_URL\\.`),
    );
    expect(elapsed).toBeLessThan(10_000);
    const azurite = app.azurite();
    expect(azurite).toHaveLength(2);
    app.child.kill("SIGTERM");
    expect(await app.exited).toBe(0);
    expect(azurite.filter(alive)).toEqual([]);
  }, 40_000);

  it("SIGINT while starting: exits 0 and leaves no Azurite", async () => {
    const app = startApp({ PORT: String(await freePort()) });
    await app.waitFor(/^lab-reset: SIMULATED LAB/);
    app.child.kill("SIGINT");
    expect(await app.exited).toBe(0);
    expect(await allGone(app.azurite(), 10_000)).toEqual([]);
  }, 40_000);

  it("SIGKILL of the local host: its Azurite processes notice and stop by themselves", async () => {
    const app = startApp({ PORT: String(await freePort()) });
    await app.waitFor(/^Storage: Azurite/m);
    const azurite = azuriteChildren(app.child.pid!);
    expect(azurite).toHaveLength(2);
    app.child.kill("SIGKILL");
    await app.exited;
    expect(await allGone(azurite, 10_000)).toEqual([]);
  }, 40_000);
});
