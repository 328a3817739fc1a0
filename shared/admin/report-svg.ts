/**
 * The capacity report's section of the status page (shared/report/report.ts): inline SVG with
 * the numbers written beside each picture, so it needs no script and reads without the pictures.
 * Pure: the page's handler reads the report.
 */
import type { PairReport, Report } from "../report/report.js";
import { dayClock, duration, escapeHtml } from "./html.js";

/** The report the page shows, over `days`; null when it could not be read (`problem` says why, in one line). */
export interface ReportView {
  days: number;
  report: Report | null;
  problem?: string;
}

type ShareField = "busyShare" | "resettingShare" | "outOfRoutingIdleShare" | "cleanIdleShare" | "offlineShare";

/** The five shares of a pair's recorded time, in the order the bar stacks them. */
const SHARES: { field: ShareField; css: string; name: string; meaning: string; color: string }[] = [
  { field: "busyShare", css: "busy", name: "busy", meaning: "a perf job ran", color: "#1565c0" },
  { field: "resettingShare", css: "resetting", name: "resetting", meaning: "a reset ran", color: "#6a1b9a" },
  { field: "outOfRoutingIdleShare", css: "closed", name: "out of routing, idle", meaning: "idle, but dirty, failed, held or routing closed", color: "#c2410c" },
  { field: "cleanIdleShare", css: "clean", name: "clean, idle", meaning: "idle and open to perf jobs", color: "#2e7d32" },
  { field: "offlineShare", css: "offline", name: "offline", meaning: "a runner offline or a host busy", color: "#546e7a" },
];

/** The section's rules, part of the page's one stylesheet (so its CSP hash covers them). */
export const REPORT_STYLE = `
.report{margin-top:22px}
.report h2{font-size:16px;margin:0 0 2px}
.report h3{font-size:13px;margin:14px 0 4px}
.report table{table-layout:auto}
.report td.num,.report th.num{text-align:right;white-space:nowrap;font-variant-numeric:tabular-nums}
.figures{display:flex;flex-wrap:wrap;gap:4px 18px;list-style:none;padding:0;margin:6px 0 4px}
.figures b{font-size:15px}
.share-bar,.wait-bar{display:block;width:100%;height:16px;min-width:120px}
.c-bar{width:34%}
.wait-bar .p95{fill:#9ecbff}.wait-bar .p50{fill:#0969da}
.charts{display:grid;grid-template-columns:minmax(0,1fr) minmax(0,1fr);gap:8px 24px}
.hourly{display:block;width:100%;height:auto;max-width:720px}
.hourly .axis{stroke:#8c959f;stroke-width:1}.hourly .grid{stroke:#d0d7de;stroke-width:1}
.hourly text{font-size:11px;fill:#57606a}
.hourly polyline{fill:none;stroke:#0969da;stroke-width:1.5}.hourly circle{fill:#0969da}
.key{display:inline-block;width:10px;height:10px;border-radius:2px;margin-right:4px;vertical-align:-1px;background:var(--share)}
${SHARES.map((s) => `.sh-${s.css}{--share:${s.color};fill:${s.color}}`).join("\n")}
`;

/** "40 s", "12 min", "1 h 5 min": how long, in seconds below a minute. */
export function seconds(value: number): string {
  // To the nearest minute (duration() floors, as "how long ago" should): the CLI's advice rounds too.
  return value < 59.5 ? `${Math.round(value)} s` : duration(Math.round(value / 60) * 60_000);
}

/** "32 %", "<1 %" for a sliver that is not nothing. */
export function percent(share: number): string {
  return share > 0 && share < 0.005 ? "<1 %" : `${Math.round(share * 100)} %`;
}

const plural = (n: number, one: string, many = `${one}s`) => `${n} ${n === 1 ? one : many}`;

/** The section under the pairs: the unavailable line, the empty-history line, or the report. */
export function reportSection(view: ReportView): string {
  const title = `Capacity, last ${plural(view.days, "day")}`;
  const open = `<section class="report" aria-labelledby="report-title">\n<h2 id="report-title">${escapeHtml(title)}</h2>\n`;
  const { report } = view;
  if (report === null) return `${open}<p class="error">The capacity report is unavailable${view.problem ? `: ${escapeHtml(view.problem)}` : ""}; the pairs above are current.</p>\n</section>`;
  const window = `<p class="meta">${dayClock(new Date(report.from))} – ${dayClock(new Date(report.to))} UTC · a pair's shares are of the time it has a record for · queue wait is from queued to started, per perf job</p>\n`;
  if (report.jobs.count === 0 && report.resets.ok + report.resets.failed === 0) {
    return `${open}<p class="none">No jobs recorded in the last ${plural(view.days, "day")}.</p>\n</section>`;
  }
  const waits =
    report.jobs.count === 0
      ? `<p class="none">No jobs recorded in the last ${plural(view.days, "day")}.</p>`
      : `<div class="charts"><div><h3>Queue wait by label set</h3>${waitsTable(report)}</div><div><h3>Queue wait p95 by hour</h3>${hourlyChart(report)}</div></div>`;
  return `${open}${window}${figures(report)}\n<h3>Where each pair's time went</h3>\n${sharesTable(report)}\n${waits}\n</section>`;
}

function figures(report: Report): string {
  const { jobs, queueWaitSeconds: wait, resets } = report;
  const counted = (n: number, one: string) => plural(n, one).replace(/^\d+/, (d) => `<b>${d}</b>`);
  const items = [
    counted(jobs.count, "perf job"),
    counted(jobs.dirtyStarts, "dirty start"),
    `<b>${jobs.killedByReset}</b> killed by a reset`,
    `queue wait <b>${seconds(wait.p50)}</b> p50, <b>${seconds(wait.p95)}</b> p95`,
    `resets <b>${resets.ok}</b> ok, <b>${resets.failed}</b> failed`,
    `reset time <b>${seconds(resets.secondsP50)}</b> p50, <b>${seconds(resets.secondsP95)}</b> p95`,
  ];
  return `<ul class="figures" aria-label="The window's figures">${items.map((i) => `<li>${i}</li>`).join("")}</ul>`;
}

function sharesTable(report: Report): string {
  const head = SHARES.map((s) => `<th scope="col" class="num" title="${escapeHtml(s.meaning)}"><span class="key sh-${s.css}"></span>${s.name}</th>`).join("");
  const windowSeconds = (Date.parse(report.to) - Date.parse(report.from)) / 1000;
  const rows = report.pairs.map((pair) => {
    const recorded = pair.recordedSeconds > 0;
    const cells = SHARES.map((s) => `<td class="num">${recorded ? percent(pair[s.field]) : "—"}</td>`).join("");
    const bar = recorded ? shareBar(pair) : `<span class="none">no record in the window</span>`;
    // A pair recorded for only part of the window (added to the lab, or new history) says how much.
    const of = recorded && pair.recordedSeconds < windowSeconds - 3600 ? `<span class="sub">of ${seconds(pair.recordedSeconds)} recorded</span>` : "";
    return `<tr data-report-pair="${escapeHtml(pair.id)}"><th scope="row">${escapeHtml(pair.id)}${of}</th><td>${bar}</td>${cells}<td class="num">${pair.jobs}</td><td class="num">${pair.resets.ok} / ${pair.resets.failed}</td></tr>`;
  });
  return `<table class="shares"><thead><tr><th scope="col">Pair</th><th scope="col" class="c-bar">Share of its recorded time</th>${head}<th scope="col" class="num">jobs</th><th scope="col" class="num">resets ok / failed</th></tr></thead>\n<tbody>\n${rows.join("\n")}\n</tbody></table>`;
}

/** One pair's time as five stacked bars, in percent units stretched to the cell. */
export function shareBar(pair: PairReport): string {
  let x = 0;
  const words = SHARES.map((s) => `${s.name} ${percent(pair[s.field])}`).join(", ");
  const rects = SHARES.map((s) => {
    const width = pair[s.field] * 100;
    const rect = `<rect class="sh-${s.css}" data-share="${s.css}" x="${x.toFixed(2)}" y="0" width="${width.toFixed(2)}" height="10"><title>${s.name} ${percent(pair[s.field])}</title></rect>`;
    x += width;
    return width > 0 ? rect : "";
  });
  const label = `${pair.id}: ${words}`;
  return `<svg class="share-bar" viewBox="0 0 100 10" preserveAspectRatio="none" role="img" aria-label="${escapeHtml(label)}"><title>${escapeHtml(label)}</title>${rects.join("")}</svg>`;
}

function waitsTable(report: Report): string {
  const wait = report.queueWaitSeconds;
  const rows = [{ labels: "all perf jobs", jobs: report.jobs.count, p50: wait.p50, p95: wait.p95, all: true }, ...wait.byLabels.map((l) => ({ ...l, all: false }))];
  const longest = Math.max(1, ...rows.map((r) => r.p95));
  const body = rows.map((r) => {
    const label = `${r.labels}: p50 ${seconds(r.p50)}, p95 ${seconds(r.p95)}`;
    const bar =
      `<svg class="wait-bar" viewBox="0 0 100 10" preserveAspectRatio="none" role="img" aria-label="${escapeHtml(label)}"><title>${escapeHtml(label)}</title>` +
      `<rect class="p95" x="0" y="0" width="${((r.p95 / longest) * 100).toFixed(2)}" height="10"></rect>` +
      `<rect class="p50" x="0" y="2.5" width="${((r.p50 / longest) * 100).toFixed(2)}" height="5"></rect></svg>`;
    const name = r.all ? `<b>${escapeHtml(r.labels)}</b>` : escapeHtml(r.labels);
    return `<tr data-labels="${escapeHtml(r.labels)}"><th scope="row">${name}</th><td class="num">${r.jobs}</td><td class="num">${seconds(r.p50)}</td><td class="num">${seconds(r.p95)}</td><td>${bar}</td></tr>`;
  });
  return `<table class="waits"><thead><tr><th scope="col">runs-on labels</th><th scope="col" class="num">jobs</th><th scope="col" class="num">p50</th><th scope="col" class="num">p95</th><th scope="col" class="c-bar">p50 (dark) and p95 (light), to scale</th></tr></thead>\n<tbody>\n${body.join("\n")}\n</tbody></table>`;
}

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const CHART = { width: 640, height: 190, left: 56, right: 22, top: 10, bottom: 26 };
/** The y axis ends at the first of these (seconds) that holds the highest p95. */
const Y_TOPS = [60, 120, 300, 600, 900, 1200, 1800, 3600, 2 * 3600, 3 * 3600, 6 * 3600, 12 * 3600, DAY / 1000, 2 * DAY / 1000];

/** The hourly p95 queue wait over the window: a line through consecutive hours, a dot for a lone one, axes labelled. */
export function hourlyChart(report: Report): string {
  const hours = report.queueWaitSeconds.byHour;
  const from = Date.parse(report.from);
  const to = Date.parse(report.to);
  const highest = Math.max(0, ...hours.map((h) => h.p95));
  const top = Y_TOPS.find((t) => t >= highest) ?? Math.ceil(highest / (DAY / 1000)) * (DAY / 1000);
  const { width, height, left, right, bottom } = CHART;
  const plotWidth = width - left - right;
  const plotHeight = height - CHART.top - bottom;
  const x = (t: number) => left + ((t - from) / Math.max(1, to - from)) * plotWidth;
  const y = (s: number) => CHART.top + plotHeight - (s / top) * plotHeight;
  const point = (h: (typeof hours)[number]) => [x(Date.parse(h.hour) + HOUR / 2), y(h.p95)] as const;

  const yTicks = [0, top / 2, top].map((s) => `<line class="grid" x1="${left}" x2="${width - right}" y1="${y(s).toFixed(1)}" y2="${y(s).toFixed(1)}"></line><text x="${left - 6}" y="${(y(s) + 4).toFixed(1)}" text-anchor="end">${s === 0 ? "0" : seconds(s)}</text>`);
  const xTicks = timeTicks(from, to).map(({ at, text }) => `<line class="axis" x1="${x(at).toFixed(1)}" x2="${x(at).toFixed(1)}" y1="${height - bottom}" y2="${height - bottom + 4}"></line><text x="${x(at).toFixed(1)}" y="${height - bottom + 16}" text-anchor="middle">${text}</text>`);
  const lines = runsOfHours(hours)
    .filter((run) => run.length > 1)
    .map((run) => `<polyline points="${run.map((h) => point(h).map((v) => v.toFixed(1)).join(",")).join(" ")}"></polyline>`);
  const dots = hours.map((h) => {
    const [cx, cy] = point(h);
    return `<circle cx="${cx.toFixed(1)}" cy="${cy.toFixed(1)}" r="2"><title>${dayClock(new Date(h.hour))} UTC: p95 ${seconds(h.p95)} over ${plural(h.jobs, "job")}</title></circle>`;
  });
  const peak = hours.reduce<(typeof hours)[number] | null>((best, h) => (best === null || h.p95 > best.p95 ? h : best), null);
  const said = peak === null ? "no job started" : `highest ${seconds(peak.p95)} in the hour from ${dayClock(new Date(peak.hour))} UTC; ${plural(hours.length, "hour")} with job starts`;
  const label = `Queue wait p95 per hour, ${dayClock(new Date(from))} to ${dayClock(new Date(to))} UTC: ${said}`;
  const axes = `<line class="axis" x1="${left}" x2="${left}" y1="${CHART.top}" y2="${height - bottom}"></line><line class="axis" x1="${left}" x2="${width - right}" y1="${height - bottom}" y2="${height - bottom}"></line>`;
  return (
    `<svg class="hourly" viewBox="0 0 ${width} ${height}" role="img" aria-label="${escapeHtml(label)}"><title>${escapeHtml(label)}</title>` +
    yTicks.join("") + xTicks.join("") + axes + lines.join("") + dots.join("") +
    `</svg><p class="sub">${escapeHtml(said[0]!.toUpperCase() + said.slice(1))}. Hours without a job start are left out.</p>`
  );
}

/** Hours one after another, as runs: a line joins the hours of a run, never a gap. */
function runsOfHours<T extends { hour: string }>(hours: T[]): T[][] {
  const runs: T[][] = [];
  for (const h of hours) {
    const run = runs.at(-1);
    const last = run?.at(-1);
    if (run && last && Date.parse(h.hour) - Date.parse(last.hour) === HOUR) run.push(h);
    else runs.push([h]);
  }
  return runs;
}

/** Labels under the time axis: every 6 hours ("18:00") over up to two days, else midnights ("11-24"), at most about 8. */
function timeTicks(from: number, to: number): { at: number; text: string }[] {
  const short = to - from <= 2 * DAY;
  const step = short ? 6 * HOUR : Math.ceil((to - from) / DAY / 8) * DAY;
  const ticks: { at: number; text: string }[] = [];
  for (let at = Math.ceil(from / step) * step; at <= to; at += step) {
    const text = dayClock(new Date(at));
    ticks.push({ at, text: short ? text.slice(6) : text.slice(0, 5) });
  }
  return ticks;
}
