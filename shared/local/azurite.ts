/**
 * Starts Azurite's table and queue services on loopback for tests and the local host: in memory (or in a
 * folder, to outlive a restart), and with telemetry off (by default Azurite would send telemetry
 * over the network).
 */
import { spawn, type ChildProcess } from "node:child_process";
import { createRequire } from "node:module";
import { createServer } from "node:net";

// Azurite's well-known development account (public, documented by Microsoft).
const ACCOUNT = "devstoreaccount1";
const KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/** Azurite did not start (a port taken, a folder not writable): its own words, on one line. */
export class AzuriteError extends Error {
  override name = "AzuriteError";
}

export interface RunningAzurite {
  /** The table service's port. */
  port: number;
  queuePort: number;
  /** The services' process ids, e.g. to see that they are gone. */
  pids: number[];
  connectionString: string;
  stop(): Promise<void>;
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() => (typeof address === "object" && address ? resolve(address.port) : reject(new Error("no port"))));
    });
  });
}

async function waitForPort(port: number, child: ChildProcess, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`Azurite exited with code ${child.exitCode} before listening`);
    try {
      await fetch(`http://127.0.0.1:${port}/`, { signal: AbortSignal.timeout(500) });
      return;
    } catch {
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  throw new Error(`Azurite did not listen on 127.0.0.1:${port} within ${timeoutMs / 1000}s`);
}

export interface AzuriteOptions {
  timeoutMs?: number;
  /** Fixed ports, e.g. to start Azurite again where a client already points (default: free ones). */
  port?: number;
  queuePort?: number;
  /** Keep the tables in this folder instead of in memory, so they outlive a stop and start. */
  location?: string;
}

export interface AzuriteService {
  name: "table" | "queue";
  port: number;
  child: ChildProcess;
}

/**
 * Loaded into each Azurite process before its own code: the process stops (as on SIGINT, which
 * saves a persisted folder) when its stdin reaches end of file, which happens however its parent
 * ends, SIGKILL included, since the kernel closes the parent's end of the pipe. The pipe is
 * unref'd, so it never keeps a stopping Azurite alive; a stop that hangs is cut short after 5 s.
 */
const WATCHDOG = `
const stop = () => { process.kill(process.pid, "SIGINT"); setTimeout(() => process.exit(0), 5000).unref(); };
process.stdin.on("end", stop).on("error", stop).resume().unref();
`;
const watchdogImport = `--import=data:text/javascript,${encodeURIComponent(WATCHDOG)}`;

async function startService(name: "table" | "queue", options: AzuriteOptions): Promise<AzuriteService> {
  const main = createRequire(import.meta.url).resolve(`azurite/dist/src/${name}/main.js`);
  const persistence = options.location ? ["--location", options.location] : ["--inMemoryPersistence"];
  const fixed = name === "table" ? options.port : options.queuePort;
  // A port taken between probing and binding makes Azurite exit; try a few.
  for (let attempt = 1; ; attempt++) {
    const port = fixed ?? (await freePort());
    const child = spawn(
      process.execPath,
      [watchdogImport, main, `--${name}Host`, "127.0.0.1", `--${name}Port`, String(port), ...persistence, "--disableTelemetry", "--silent", "--skipApiVersionCheck"],
      // stdin is the watchdog's pipe: nothing is written to it; it closes when this process ends.
      { stdio: ["pipe", "ignore", "pipe"] },
    );
    child.stdin?.on("error", () => {}); // never written to; its end is the signal
    let stderr = "";
    child.stderr?.on("data", (d: Buffer) => (stderr += d.toString()));
    try {
      await waitForPort(port, child, options.timeoutMs ?? 20_000);
      return { name, port, child };
    } catch (error) {
      child.kill();
      if (attempt < 3) continue;
      throw new AzuriteError(`Azurite ${name} service: ${(error as Error).message}${stderr ? `: ${stderr.trim().split("\n")[0]}` : ""}`);
    }
  }
}

function stopService(service: AzuriteService, location: string | undefined): Promise<void> {
  return new Promise<void>((resolve) => {
    if (service.child.exitCode !== null || service.child.signalCode !== null) return resolve();
    service.child.once("exit", () => resolve());
    // SIGINT lets Azurite write its data to the folder first; SIGTERM would lose the last seconds.
    service.child.kill(location ? "SIGINT" : "SIGTERM");
  });
}

/** Azurite's table and queue services (two processes), with a connection string naming both. */
export async function startAzurite(options: AzuriteOptions = {}): Promise<RunningAzurite> {
  const started = await Promise.allSettled([startService("table", options), startService("queue", options)]);
  const [table, queue] = started.map((s) => (s.status === "fulfilled" ? s.value : undefined));
  if (!table || !queue) {
    // One service up and the other not: stop the one, so a failed start leaves no process behind.
    await Promise.all([table, queue].filter((service) => service !== undefined).map((service) => stopService(service, options.location)));
    throw started.find((s) => s.status === "rejected")!.reason;
  }
  return {
    port: table.port,
    queuePort: queue.port,
    connectionString: `DefaultEndpointsProtocol=http;AccountName=${ACCOUNT};AccountKey=${KEY};TableEndpoint=http://127.0.0.1:${table.port}/${ACCOUNT};QueueEndpoint=http://127.0.0.1:${queue.port}/${ACCOUNT};`,
    pids: [table.child.pid!, queue.child.pid!],
    stop: async () => {
      await Promise.all([stopService(table, options.location), stopService(queue, options.location)]);
    },
  };
}
