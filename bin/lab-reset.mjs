#!/usr/bin/env node
// The `lab-reset` command (package.json "bin"). It runs the compiled CLI, which `npm ci` builds
// through the "prepare" script; without it, say how to build instead of showing a module error.
import { existsSync } from "node:fs";
import process from "node:process";
import { URL } from "node:url";

const entry = new URL("../dist/shared/cli/main.js", import.meta.url);
if (!existsSync(entry)) {
  process.stderr.write("lab-reset: not built; run npm run build\n");
  process.exit(1);
}
/** @type {unknown} */
const loaded = await import(entry.href);
const { main } = /** @type {typeof import("../shared/cli/main.js")} */ (loaded);
// exitCode, not exit(): stdout piped to a file or jq is flushed first.
process.exitCode = await main(process.argv.slice(2));
