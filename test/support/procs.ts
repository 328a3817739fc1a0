/** Processes as Linux's /proc shows them: for tests that check what `npm start` leaves running. */
import { readFileSync } from "node:fs";

/** A process's state letter and parent, or null when it is gone (or there is no /proc). */
export function procStat(pid: number): { state: string; ppid: number } | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const [state, ppid] = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return { state: state!, ppid: Number(ppid) };
  } catch {
    return null;
  }
}

/** Running, not gone and not a zombie waiting for its parent. */
export const alive = (pid: number) => (procStat(pid)?.state ?? "Z") !== "Z";
