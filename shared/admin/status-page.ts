/**
 * The lab admins' status page (`GET /api/status`): one table row per pair, drawn on the server
 * from the pairs' records and events. Pure: the caller reads the store and passes `drawnAt`.
 * The page has no script and loads nothing; its one inline stylesheet is allowed by its hash.
 */
import { createHash } from "node:crypto";
import type { PairEvent, PairRecord } from "../lab/pair-record.js";
import { escapeHtml, forHtml, runLink, runLinkBase, timeHtml } from "./html.js";
import { REPORT_STYLE, reportSection, type ReportView } from "./report-svg.js";
import { holdSpans, knownState, STRIP_DEFS, STRIP_HOURS, stripSegments, stripSvg, type StripState } from "./strip.js";

export interface StatusPageInput {
  /** "owner/repo", e.g. "microsoft/netperf". */
  lab: string;
  /** The GitHub web URL run links start with, e.g. "https://github.com". */
  githubUrl: string;
  drawnAt: Date;
  /** Set when `drawnAt` and every time on the page are a simulated lab's clock (`npm start` without GitHub). */
  simulatedClock?: { speed: number };
  /**
   * Events newest first, covering at least the last 24 hours; `fromFirstRecord` when they are all
   * the pair has (the strip shows "no record" before the oldest).
   */
  pairs: Array<{ record: PairRecord; vmRunnerLabel: string; events: PairEvent[]; fromFirstRecord?: boolean }>;
  /** The capacity report drawn under the pairs; left out when not given. */
  report?: ReportView;
}

const REFRESH_SECONDS = 30;

const STATE_COLORS: Record<StripState, { strong: string; tint: string }> = {
  clean: { strong: "#2e7d32", tint: "#edf7ee" },
  busy: { strong: "#1565c0", tint: "#eaf2fc" },
  dirty: { strong: "#c2410c", tint: "#fdf0e7" },
  resetting: { strong: "#6a1b9a", tint: "#f5ecf8" },
  failed: { strong: "#c62828", tint: "#fdecec" },
  offline: { strong: "#546e7a", tint: "#eef1f3" },
  unknown: { strong: "#9e9e9e", tint: "#f5f5f5" },
};

const LEGEND: Record<StripState, string> = {
  clean: "reset, no job since",
  busy: "a job runs on the VM",
  dirty: "job ran, not reset",
  resetting: "reset in flight",
  failed: "last reset failed",
  offline: "runner offline or host busy",
  unknown: "before the first record",
};

const stateRules = Object.entries(STATE_COLORS)
  .map(([s, c]) => `.st-${s}{--strong:${c.strong};--tint:${c.tint}}`)
  .join("\n");

/** The page's only style; fixed, so its hash is computed once and named in the CSP. */
export const STATUS_PAGE_STYLE = `
:root{color-scheme:light;font:13px/1.45 "Segoe UI",Roboto,"Helvetica Neue",Arial,"Liberation Sans",sans-serif;color:#1f2328;background:#fff}
body{margin:14px 16px}
h1{font-size:19px;margin:0 0 2px}
.meta{margin:0 0 8px;color:#57606a}
.simulated{margin:0 0 8px;padding:4px 8px;border:1px solid #d4a72c;border-radius:4px;background:#fff8c5}
.legend{display:flex;flex-wrap:wrap;gap:4px 14px;list-style:none;padding:0;margin:0 0 10px;font-size:12px;color:#57606a}
.legend li{display:flex;align-items:center;gap:5px}
.legend b{color:#1f2328}
.swatch{display:inline-block;width:12px;height:12px;border-radius:2px;background:var(--strong)}
table{border-collapse:collapse;width:100%;table-layout:fixed}
th,td{text-align:left;vertical-align:top;padding:6px 7px;border-bottom:1px solid #d0d7de;overflow-wrap:anywhere}
thead th{font-size:12px;color:#57606a;font-weight:600;border-bottom:2px solid #d0d7de;background:#f6f8fa;vertical-align:bottom}
.pairs tbody tr{background:var(--tint)}
.pairs tbody th{border-left:6px solid var(--strong);font-weight:600;font-size:14px}
.badge{display:inline-block;padding:0 8px;border-radius:9px;background:var(--strong);color:#fff;font-weight:600}
.sub,.ago,.none{color:#57606a;font-size:12px}
.sub{display:block;font-weight:400}
.run{white-space:nowrap}
.error{color:#b42318}
a{color:#0550ae}
.strip{display:block;box-sizing:border-box;width:100%;height:26px;border:1px solid #afb8c1;background:#fff}
.seg{fill:var(--strong)}
.held{fill:url(#held-hatch)}
.defs{position:absolute;width:0;height:0;overflow:hidden}
.held-swatch{background:repeating-linear-gradient(90deg,#1f2328 0 2px,transparent 2px 4px);border:1px solid #1f2328;box-sizing:border-box}
.scale{display:flex;justify-content:space-between;font-weight:400}
.c-pair{width:9%}.c-state{width:7.5%}.c-why{width:16%}.c-job{width:9.5%}.c-reset{width:10%}
.c-attempts{width:6%}.c-routing{width:6.5%}.c-hold{width:8.5%}.c-error{width:12%}.c-strip{width:15%}
${stateRules}
${REPORT_STYLE}`;

const styleHash = createHash("sha256").update(STATUS_PAGE_STYLE, "utf8").digest("base64");

/** Nothing but the page's own stylesheet: no script, no request, no form, no frame, no base. */
const policy = ["default-src 'none'", `style-src 'sha256-${styleHash}'`, "script-src 'none'", "base-uri 'none'", "form-action 'none'"];

export const STATUS_PAGE_CSP = [...policy, "frame-ancestors 'none'"].join("; ");

export const STATUS_PAGE_HEADERS: Record<string, string> = {
  "Content-Type": "text/html; charset=utf-8",
  "Content-Security-Policy": STATUS_PAGE_CSP,
  // A key in ?code= must not travel to GitHub in a Referer.
  "Referrer-Policy": "no-referrer",
  "X-Content-Type-Options": "nosniff",
  "Cache-Control": "no-store",
};

export function renderStatusPage(input: StatusPageInput): string {
  const { drawnAt } = input;
  const links = runLinkBase(input.githubUrl, input.lab);
  const rows = input.pairs.map((pair) => pairRow(pair, drawnAt, links));
  const body = rows.length > 0 ? rows.join("\n") : `<tr><td colspan="${COLUMNS.length}">No pairs are configured.</td></tr>`;
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="${escapeHtml(policy.join("; "))}">
<meta name="referrer" content="no-referrer">
<meta http-equiv="refresh" content="${REFRESH_SECONDS}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(`Lab pairs · ${input.lab}`)}</title>
<style>${STATUS_PAGE_STYLE}</style>
</head>
<body>
${STRIP_DEFS}
<h1>Lab pairs · ${escapeHtml(input.lab)}</h1>
${simulatedNote(input)}<p class="meta">Drawn <time datetime="${drawnAt.toISOString()}">${drawnAt.toISOString().slice(0, 16).replace("T", " ")} UTC</time> · refreshes every ${REFRESH_SECONDS} s · times in UTC · ${countsText(input.pairs.map((p) => p.record))}</p>
${legend()}
<table class="pairs">
<thead><tr>${COLUMNS.map(([cls, text]) => `<th scope="col" class="${cls}">${text}</th>`).join("")}</tr></thead>
<tbody>
${body}
</tbody>
</table>
${input.report ? reportSection(input.report) : ""}
</body>
</html>
`;
}

const COLUMNS: Array<[string, string]> = [
  ["c-pair", "Pair"],
  ["c-state", "State"],
  ["c-why", "Why"],
  ["c-job", "Last job"],
  ["c-reset", "Last reset"],
  ["c-attempts", "Attempts"],
  ["c-routing", "Routing"],
  ["c-hold", "Hold"],
  ["c-error", "Last error"],
  ["c-strip", `Last ${STRIP_HOURS} h<span class="scale"><span>−24 h</span><span>−18</span><span>−12</span><span>−6</span><span>now</span></span>`],
];

/** Times on a simulated lab's page are not the reader's: said before anything else. */
function simulatedNote({ simulatedClock, drawnAt }: StatusPageInput): string {
  if (!simulatedClock) return "";
  const now = `<time datetime="${drawnAt.toISOString()}">${drawnAt.toISOString().slice(0, 16).replace("T", " ")} UTC</time>`;
  return `<p class="simulated" role="note"><b>Simulated lab:</b> no real VM is reset, and the clock is simulated: it runs ${escapeHtml(String(simulatedClock.speed))}× as fast as real time (simulated time now ${now}). Every time on this page is simulated time.</p>\n`;
}

function legend(): string {
  const items = Object.entries(LEGEND).map(([state, meaning]) => `<li class="st-${state}"><span class="swatch"></span><b>${state === "unknown" ? "no record" : state}</b> ${escapeHtml(meaning)}</li>`);
  const held = `<li><span class="swatch held-swatch"></span><b>held</b> striped band on top: an admin's hold</li>`;
  return `<ul class="legend" aria-label="States">${items.join("")}${held}</ul>`;
}

/** "4 pairs: 1 clean, 2 busy, 1 failed; 1 held". */
function countsText(records: PairRecord[]): string {
  const counts = new Map<string, number>();
  for (const r of records) counts.set(knownState(r.state), (counts.get(knownState(r.state)) ?? 0) + 1);
  const held = records.filter(isHeld).length;
  const states = [...counts].map(([state, n]) => `${n} ${state}`).join(", ");
  return `${records.length} pair${records.length === 1 ? "" : "s"}${states ? `: ${states}` : ""}${held ? `; ${held} held` : ""}`;
}

const isHeld = (r: PairRecord) => r.holdBy !== null || r.holdReason !== null || r.holdSince !== null;
const none = `<span class="none">—</span>`;
const text = (value: string | null) => (value === null || value === "" ? none : escapeHtml(value));

function pairRow(pair: StatusPageInput["pairs"][number], drawnAt: Date, links: string | null): string {
  const r = pair.record;
  const state = knownState(r.state);
  const id = escapeHtml(r.pairId);
  const cells = [
    `<th scope="row">${id}<span class="sub">runner ${escapeHtml(pair.vmRunnerLabel)}</span></th>`,
    `<td>${stateCell(r, state, pair.events, drawnAt)}</td>`,
    `<td>${text(r.reason)}</td>`,
    `<td>${lastJobCell(r, drawnAt, links)}</td>`,
    `<td>${lastResetCell(r, drawnAt, links)}</td>`,
    `<td>${attemptsCell(r, drawnAt)}</td>`,
    `<td>${routingCell(r, drawnAt)}</td>`,
    `<td>${holdCell(r, drawnAt)}</td>`,
    `<td class="error">${text(r.lastError)}</td>`,
    `<td>${stripSvg(stripSegments(pair.events, r.state, drawnAt, { fromFirstRecord: pair.fromFirstRecord ?? false }), holdSpans(pair.events, r, drawnAt), drawnAt, r.pairId)}</td>`,
  ];
  return `<tr class="st-${state}" data-pair="${id}" data-state="${state}">${cells.join("")}</tr>`;
}

/** The state in colour and in words, and for how long (since the latest event that moved the pair into it). */
function stateCell(r: PairRecord, state: StripState, events: PairEvent[], drawnAt: Date): string {
  const entered = events.find((e) => e.to === r.state && e.from !== e.to);
  return `<span class="badge">${state}</span>${entered ? `<span class="sub">${forHtml(entered.at, drawnAt)}</span>` : ""}`;
}

function lastJobCell(r: PairRecord, drawnAt: Date, links: string | null): string {
  if (r.lastJobRunId === null && r.lastJobAt === null) return none;
  const dirty = r.jobSinceReset ? `<span class="sub">not reset since</span>` : "";
  return `<span class="run">${runLink(links, r.lastJobRunId)}</span><span class="sub">${timeHtml(r.lastJobAt, drawnAt)}</span>${dirty}`;
}

/** The latest reset run; when it was requested if it has not completed since, and the last one that did. */
function lastResetCell(r: PairRecord, drawnAt: Date, links: string | null): string {
  if (r.resetRunId === null && r.resetDispatchedAt === null && r.resetCompletedAt === null) return none;
  const parts = [`<span class="run">${runLink(links, r.resetRunId)}</span>`];
  const pending = r.resetDispatchedAt !== null && (r.resetCompletedAt === null || r.resetDispatchedAt > r.resetCompletedAt);
  if (pending) parts.push(`<span class="sub">requested ${timeHtml(r.resetDispatchedAt, drawnAt)}</span>`);
  if (r.resetCompletedAt !== null) parts.push(`<span class="sub">${pending ? "last done" : "done"} ${timeHtml(r.resetCompletedAt, drawnAt)}</span>`);
  return parts.join("");
}

function attemptsCell(r: PairRecord, drawnAt: Date): string {
  const retry = r.retryAfter === null ? "" : `<span class="sub">retry ${timeHtml(r.retryAfter, drawnAt)}</span>`;
  return `${escapeHtml(String(r.attempts))}${retry}`;
}

function routingCell(r: PairRecord, drawnAt: Date): string {
  const since = r.routingSince === null ? "" : `<span class="sub">${forHtml(r.routingSince, drawnAt)}</span>`;
  const error = r.routingError === null ? "" : `<span class="sub error">${escapeHtml(r.routingError)}</span>`;
  return `${text(r.routing)}${since}${error}`;
}

function holdCell(r: PairRecord, drawnAt: Date): string {
  if (!isHeld(r)) return none;
  const by = r.holdBy === null ? "held" : `held by ${escapeHtml(r.holdBy)}`;
  const since = r.holdSince === null ? "" : `<span class="sub">${forHtml(r.holdSince, drawnAt)}</span>`;
  const reason = r.holdReason === null ? "" : `<span class="sub">${escapeHtml(r.holdReason)}</span>`;
  return `${by}${since}${reason}`;
}
