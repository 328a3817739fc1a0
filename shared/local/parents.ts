/**
 * `npm start` runs the local host as npm → `sh -c "node …/start.js"` → node. On SIGTERM npm passes
 * the signal to the shell only, which ends without passing it on; when npm is killed outright the
 * shell stays. Either way the local host would keep running and holding its port, so it watches
 * its parent and, when that parent is such a shell, the shell's parent (npm) too.
 */
import { readFileSync } from "node:fs";

/** The parent of `pid` (Linux, from /proc), or null when it cannot be read (gone, or no /proc). */
function parentOf(pid: number): number | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
  } catch {
    return null;
  }
}

/** Whether `pid` is a shell running one command (`sh -c …`), as npm runs a script. */
function isScriptShell(pid: number): boolean {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0")[1] === "-c";
  } catch {
    return false;
  }
}

function exists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

/**
 * Calls `onGone` once when the parent ends, or the npm above a script shell does: a process's
 * children get a new parent when it ends (Linux, macOS), and on Windows the parent's pid stops
 * answering. Returns a function that stops watching; the watch never keeps the process alive.
 */
export function watchParents(onGone: () => void, intervalMs = 250): () => void {
  const parent = process.ppid;
  const grandparent = isScriptShell(parent) ? parentOf(parent) : null;
  const timer = setInterval(() => {
    const gone = process.ppid !== parent || !exists(parent) || (grandparent !== null && grandparent > 1 && parentOf(parent) !== grandparent);
    if (!gone) return;
    clearInterval(timer);
    onGone();
  }, intervalMs);
  timer.unref();
  return () => clearInterval(timer);
}
