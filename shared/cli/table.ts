/** Plain-text tables and times for people; scripts use --json. */

/** Columns padded to their widest cell, a header and a rule; cells are flattened to one line. */
export function renderTable(headers: string[], rows: string[][]): string {
  const cells = [headers, ...rows].map((row) => row.map((cell) => cell.replace(/\s+/g, " ")));
  const widths = headers.map((_, c) => Math.max(...cells.map((row) => row[c]?.length ?? 0)));
  const line = (row: string[]) => row.map((cell, c) => (c === row.length - 1 ? cell : cell.padEnd(widths[c] ?? 0))).join("  ").trimEnd();
  return [line(cells[0]!), line(widths.map((w) => "-".repeat(w))), ...cells.slice(1).map(line)].join("\n") + "\n";
}

/** How long ago, in the largest unit that fits: "40 s ago", "12 min ago", "5 h ago", "3 d ago". */
export function ago(iso: string | null | undefined, now: Date): string {
  if (!iso) return "-";
  const seconds = Math.max(0, Math.round((now.getTime() - Date.parse(iso)) / 1000));
  if (Number.isNaN(seconds)) return iso;
  if (seconds < 60) return `${seconds} s ago`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ago`;
  if (seconds < 48 * 3600) return `${Math.floor(seconds / 3600)} h ago`;
  return `${Math.floor(seconds / 86400)} d ago`;
}

/** A UTC time to the second, e.g. "2026-12-01 10:02:03Z". */
export function utc(iso: string): string {
  const time = new Date(iso);
  return Number.isNaN(time.getTime()) ? iso : `${time.toISOString().slice(0, 19).replace("T", " ")}Z`;
}

/** Long reasons would make a table unreadable; --json has them whole. */
export function clip(text: string | null | undefined, max = 60): string {
  if (!text) return "-";
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}
