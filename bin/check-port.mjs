#!/usr/bin/env node
// `npm start`'s first step (prestart, before the ~15 s build): a PORT that is taken or not a port
// is said at once, in one line, with the same words the local host uses (shared/local/start.ts).
import { createServer } from "node:net";
import process from "node:process";

const text = process.env.PORT?.trim() || "7071";
const port = Number(text);

/** @param {string} line */
function refuse(line) {
  process.stderr.write(`${line}\n`);
  process.exit(1);
}

if (!/^\d+$/.test(text) || port > 65535) refuse(`PORT "${text}" is not a port number: set PORT to a free port, e.g. 7071`);

// The local host listens on 127.0.0.1; a listener on any address of that port also refuses this.
const server = createServer();
server.once("error", (/** @type {NodeJS.ErrnoException} */ error) => {
  if (error.code === "EADDRINUSE") refuse(`PORT ${port} is in use (by another lab-reset or func start?): stop it or set PORT to a free port, e.g. PORT=${port + 1} npm start`);
  if (error.code === "EACCES") refuse(`PORT ${port} is not allowed for this user (EACCES): set PORT to 1024 or above`);
  refuse(`PORT ${port} cannot be opened on 127.0.0.1: ${error.message}`);
});
server.listen(port, "127.0.0.1", () => server.close());
