/**
 * Starts Azurite's table service on loopback for tests and the local host: in memory (or in a
 * folder, to outlive a restart), and with telemetry off (by default Azurite would send telemetry
 * over the network).
 */
import { spawn, type ChildProcess } from "node:child_process";
import { createRequire } from "node:module";
import { createServer } from "node:net";

// Azurite's well-known development account (public, documented by Microsoft).
const ACCOUNT = "devstoreaccount1";
const KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

export interface RunningAzurite {
  port: number;
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
  /** A fixed port, e.g. to start Azurite again where a client already points (default: a free one). */
  port?: number;
  /** Keep the tables in this folder instead of in memory, so they outlive a stop and start. */
  location?: string;
}

export async function startAzurite(options: AzuriteOptions = {}): Promise<RunningAzurite> {
  const main = createRequire(import.meta.url).resolve("azurite/dist/src/table/main.js");
  const persistence = options.location ? ["--location", options.location] : ["--inMemoryPersistence"];
  // A port taken between probing and binding makes Azurite exit; try a few.
  for (let attempt = 1; ; attempt++) {
    const port = options.port ?? (await freePort());
    const child = spawn(
      process.execPath,
      [main, "--tableHost", "127.0.0.1", "--tablePort", String(port), ...persistence, "--disableTelemetry", "--silent", "--skipApiVersionCheck"],
      { stdio: ["ignore", "ignore", "pipe"] },
    );
    let stderr = "";
    child.stderr?.on("data", (d: Buffer) => (stderr += d.toString()));
    try {
      await waitForPort(port, child, options.timeoutMs ?? 20_000);
    } catch (error) {
      child.kill();
      if (attempt < 3) continue;
      throw new Error(`${(error as Error).message}${stderr ? `: ${stderr.trim()}` : ""}`);
    }
    return {
      port,
      connectionString: `DefaultEndpointsProtocol=http;AccountName=${ACCOUNT};AccountKey=${KEY};TableEndpoint=http://127.0.0.1:${port}/${ACCOUNT};`,
      stop: () =>
        new Promise<void>((resolve) => {
          if (child.exitCode !== null) return resolve();
          child.once("exit", () => resolve());
          // SIGINT lets Azurite write its tables to the folder first; SIGTERM would lose the last seconds.
          child.kill(options.location ? "SIGINT" : "SIGTERM");
        }),
    };
  }
}
