/**
 * Table Storage that a test takes away and brings back: a loopback relay in front of the shared
 * Azurite's table service. Cut, it refuses connections (ECONNREFUSED) and resets open ones, as a
 * stopped Azurite does; restored on the same port, the same tables are there. Cheaper than
 * stopping and restarting an Azurite of the test's own (seconds each).
 */
import { createServer, connect, type Server, type Socket } from "node:net";

export interface TableOutage {
  /** The shared Azurite's connection string with its table endpoint through the relay. */
  connectionString: string;
  cut(): Promise<void>;
  restore(): Promise<void>;
  close(): Promise<void>;
}

export async function tableOutage(azuriteConnectionString: string): Promise<TableOutage> {
  const endpoint = /TableEndpoint=http:\/\/127\.0\.0\.1:(\d+)/.exec(azuriteConnectionString);
  if (!endpoint) throw new Error("the connection string names no loopback TableEndpoint");
  const tablePort = Number(endpoint[1]);
  const sockets = new Set<Socket>();
  const track = (socket: Socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket)).on("error", () => socket.destroy());
  };
  const server: Server = createServer((client) => {
    const upstream = connect(tablePort, "127.0.0.1");
    track(client);
    track(upstream);
    client.on("close", () => upstream.destroy());
    upstream.on("close", () => client.destroy());
    client.pipe(upstream).pipe(client);
  });
  const listen = (port: number) =>
    new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(port, "127.0.0.1", () => {
        server.off("error", reject);
        resolve();
      });
    });
  const stop = () =>
    new Promise<void>((resolve) => {
      for (const socket of sockets) socket.destroy();
      if (!server.listening) return resolve();
      server.close(() => resolve());
    });
  await listen(0);
  const port = (server.address() as { port: number }).port;
  return {
    connectionString: azuriteConnectionString.replace(`TableEndpoint=http://127.0.0.1:${tablePort}`, `TableEndpoint=http://127.0.0.1:${port}`),
    cut: stop,
    restore: () => listen(port),
    close: stop,
  };
}
