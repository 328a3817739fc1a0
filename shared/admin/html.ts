/** Small helpers for server-rendered admin pages: escaping, safe run links, times in words. */

const ENTITIES: Record<string, string> = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };

/** Escapes text for HTML text and for double- or single-quoted attribute values. */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ENTITIES[c]!);
}

/**
 * The base of a repository's run links (`https://github.com/owner/repo/actions/runs/`), or null
 * when the GitHub URL is not http(s) or the lab is not `owner/repo`: a page then shows run ids
 * without links rather than a link it cannot vouch for.
 */
export function runLinkBase(githubUrl: string, lab: string): string | null {
  let url: URL;
  try {
    url = new URL(githubUrl);
  } catch {
    return null;
  }
  if (url.protocol !== "https:" && url.protocol !== "http:") return null;
  const parts = lab.split("/");
  if (parts.length !== 2 || parts.some((p) => p === "")) return null;
  // origin drops any user:password@; the path keeps a GHES instance's prefix, if any.
  const path = url.pathname.replace(/\/+$/, "");
  return `${url.origin}${path}/${parts.map(encodeURIComponent).join("/")}/actions/runs/`;
}

/** A link to a run, text only when there is no trustworthy base or the id is not a run id. */
export function runLink(base: string | null, runId: number | null): string {
  if (runId === null) return "";
  const text = escapeHtml(`run ${runId}`);
  if (base === null || !Number.isSafeInteger(runId) || runId <= 0) return text;
  return `<a href="${escapeHtml(base + runId)}" rel="noreferrer">${text}</a>`;
}

/** "under a minute", "4 min", "2 h 5 min", "3 d": how long, to the minute. */
export function duration(ms: number): string {
  const minutes = Math.floor(Math.abs(ms) / 60_000);
  if (minutes < 1) return "under a minute";
  if (minutes < 60) return `${minutes} min`;
  if (minutes < 48 * 60) return `${Math.floor(minutes / 60)} h${minutes % 60 ? ` ${minutes % 60} min` : ""}`;
  return `${Math.floor(minutes / (24 * 60))} d`;
}

/** "ago" or "in", in words relative to when the page was drawn. */
export function relative(at: Date, drawnAt: Date): string {
  const ms = drawnAt.getTime() - at.getTime();
  if (Math.abs(ms) < 60_000) return "just now";
  return ms > 0 ? `${duration(ms)} ago` : `in ${duration(ms)}`;
}

const pad = (n: number) => String(n).padStart(2, "0");
const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

/** UTC clock time, with the date when it is not the day the page was drawn. */
export function clock(at: Date, drawnAt: Date): string {
  const hm = `${pad(at.getUTCHours())}:${pad(at.getUTCMinutes())}`;
  const sameDay = at.toISOString().slice(0, 10) === drawnAt.toISOString().slice(0, 10);
  return sameDay ? hm : `${MONTHS[at.getUTCMonth()]} ${at.getUTCDate()} ${hm}`;
}

/** "12-07 22:10": a UTC date and time, for ranges that may cross midnight. */
export function dayClock(at: Date): string {
  return `${pad(at.getUTCMonth() + 1)}-${pad(at.getUTCDate())} ${pad(at.getUTCHours())}:${pad(at.getUTCMinutes())}`;
}

/** A stored time, or null when it is not one (then pages show the stored text as it is). */
function parse(iso: string): Date | null {
  const at = new Date(iso);
  return Number.isNaN(at.getTime()) ? null : at;
}

const timeTag = (at: Date, text: string) => `<time datetime="${at.toISOString()}" title="${at.toISOString()}">${text}</time>`;

/** "11:14 (46 min ago)": when, in UTC, and how long before the page was drawn. */
export function timeHtml(iso: string | null, drawnAt: Date): string {
  if (iso === null) return "";
  const at = parse(iso);
  return at === null ? escapeHtml(iso) : `${timeTag(at, clock(at, drawnAt))} <span class="ago">(${relative(at, drawnAt)})</span>`;
}

/** "for 39 min": how long something has lasted at the page's drawing; the time itself on hover. */
export function forHtml(iso: string | null, drawnAt: Date): string {
  if (iso === null) return "";
  const at = parse(iso);
  return at === null ? escapeHtml(iso) : `for ${timeTag(at, duration(drawnAt.getTime() - at.getTime()))}`;
}
