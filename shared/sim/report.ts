/** Figures and pictures of simulated weeks: a markdown table per profile, JSON, and an SVG timeline. */
import type { VmActivity } from "./lab.js";
import type { PolicyName, SimulationResult } from "./simulate.js";

import { percentile } from "../report/percentile.js";

export { percentile };

export interface PolicyFigures {
  policy: PolicyName;
  perfJobs: number;
  dirtyStartShare: number;
  dirtyStarts: number;
  killedByReset: number;
  resetsRefused: number;
  dirtyIdleP50: number;
  dirtyIdleP95: number;
  queueWaitP50: number;
  queueWaitP95: number;
  /** Every request GitHub received, retries and 304s included. */
  githubRequestsPerDay: number;
  /** Those charged to the rate limit: all but the 304s (a conditional request's hit is free). */
  /** Of all requests, the redelivery timer's (the recommended set-up's look at the App's delivery log). */
  githubRedeliveryRequestsPerDay: number;
  githubChargedRequestsPerDay: number;
  rateLimitPointsPerDay: number;
  pairResetsPerDay: number;
  /**
   * Percent of VM-hours a VM could take no perf job because of a reset: offline while restored,
   * or idle out of routing (a routing label missing); a VM running its own job loses nothing.
   */
  vmCapacityLostShare: number;
  /** The floor under it: each completed pair reset's own time offline, as a percent of VM-hours. */
  vmCapacityFloorShare: number;
  /** Minutes from a pair reset's end until its VM runner carried its routing labels again. */
  labelsBackP50: number;
  labelsBackP95: number;
}

const round = (n: number, digits = 1) => Math.round(n * 10 ** digits) / 10 ** digits;

export function figures(result: SimulationResult): PolicyFigures {
  const m = result.metrics;
  return {
    policy: result.policy,
    perfJobs: m.perfJobsStarted,
    dirtyStarts: m.dirtyStarts,
    dirtyStartShare: m.perfJobsStarted === 0 ? 0 : round((100 * m.dirtyStarts) / m.perfJobsStarted),
    killedByReset: m.killed,
    resetsRefused: m.resetsRefused,
    dirtyIdleP50: round(percentile(m.dirtyIdleMinutes, 50)),
    dirtyIdleP95: round(percentile(m.dirtyIdleMinutes, 95)),
    queueWaitP50: round(percentile(m.queueWaitMinutes, 50)),
    queueWaitP95: round(percentile(m.queueWaitMinutes, 95)),
    githubRequestsPerDay: Math.round(result.githubRequests / result.days),
    githubRedeliveryRequestsPerDay: Math.round(result.githubRedeliveryRequests / result.days),
    githubChargedRequestsPerDay: Math.round(result.githubChargedRequests / result.days),
    rateLimitPointsPerDay: Math.round(result.rateLimitPoints / result.days),
    pairResetsPerDay: round(m.pairResets / result.days),
    vmCapacityLostShare: m.vmMinutes === 0 ? 0 : round((100 * m.vmUnavailableMinutes) / m.vmMinutes),
    vmCapacityFloorShare: m.vmMinutes === 0 ? 0 : round((100 * m.resetOfflineMinutes) / m.vmMinutes),
    labelsBackP50: round(percentile(m.labelsBackMinutes, 50)),
    labelsBackP95: round(percentile(m.labelsBackMinutes, 95)),
  };
}

const POLICY_LABEL: Record<PolicyName, string> = {
  "lab-reset": "lab-reset: routing labels + webhook (recommended)",
  "lab-reset-calls": "lab-reset: job-completed calls only",
  today: "today's workflows",
  none: "no resets",
};

export function markdownTable(results: SimulationResult[]): string {
  const header =
    "| policy | perf jobs | dirty starts | killed by a reset | resets refused (VM busy) | dirty & idle p50 / p95 (min) | queue wait p50 / p95 (min) | GitHub requests / day | charged (not 304) / day | rate-limit points / day | pair resets / day | VM capacity lost to resets | floor: resets' own offline time | labels back after reset p50 / p95 (min) |\n" +
    "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|";
  const rows = results.map((r) => {
    const f = figures(r);
    return `| ${POLICY_LABEL[f.policy]} | ${f.perfJobs} | ${f.dirtyStarts} (${f.dirtyStartShare} %) | ${f.killedByReset} | ${f.resetsRefused} | ${f.dirtyIdleP50} / ${f.dirtyIdleP95} | ${f.queueWaitP50} / ${f.queueWaitP95} | ${f.githubRequestsPerDay} | ${f.githubChargedRequestsPerDay} | ${f.rateLimitPointsPerDay} | ${f.pairResetsPerDay} | ${f.vmCapacityLostShare} % | ${f.vmCapacityFloorShare} % | ${f.labelsBackP50} / ${f.labelsBackP95} |`;
  });
  return [header, ...rows].join("\n");
}

const COLORS: Record<VmActivity, string> = { clean: "#4caf50", running: "#1e88e5", dirty: "#fb8c00", resetting: "#8e24aa" };

const escape = (s: string) => s.replace(/[<>&"]/g, (c) => ({ "<": "&lt;", ">": "&gt;", "&": "&amp;", '"': "&quot;" })[c]!);

/** One panel per policy, one lane per pair, coloured by what the pair's VM was doing. */
export function timelineSvg(title: string, results: SimulationResult[]): string {
  const width = 1400;
  const left = 150;
  const lane = 12;
  const gap = 3;
  const panelGap = 36;
  const plot = width - left - 20;
  const pairs = results[0]?.timelines.length ?? 0;
  const panelHeight = pairs * (lane + gap);
  const height = 60 + results.length * (panelHeight + panelGap) + 30;
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="11">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="10" y="20" font-size="15" font-weight="bold">${escape(title)}</text>`,
  ];
  // Legend.
  let lx = left;
  for (const [activity, color] of Object.entries(COLORS)) {
    parts.push(`<rect x="${lx}" y="30" width="12" height="12" fill="${color}"/><text x="${lx + 16}" y="40">${activity === "dirty" ? "dirty, idle" : activity}</text>`);
    lx += 110;
  }
  parts.push(`<line x1="${lx}" y1="30" x2="${lx}" y2="42" stroke="black" stroke-width="2"/><text x="${lx + 6}" y="40">perf job started on a dirty VM</text>`);
  lx += 200;
  parts.push(`<text x="${lx}" y="41" fill="#d32f2f" font-weight="bold">✕</text><text x="${lx + 12}" y="40">job killed by a reset</text>`);

  results.forEach((result, index) => {
    const top = 60 + index * (panelHeight + panelGap);
    const x = (t: number) => left + ((t - result.start) / (result.end - result.start)) * plot;
    parts.push(`<text x="10" y="${top + 12}" font-weight="bold">${escape(POLICY_LABEL[result.policy])}</text>`);
    for (let day = 0; day <= result.days; day++) {
      const dx = x(result.start + day * 86_400_000);
      parts.push(`<line x1="${dx}" y1="${top + 16}" x2="${dx}" y2="${top + 16 + panelHeight}" stroke="#ccc"/>`);
      if (day < result.days) parts.push(`<text x="${dx + 3}" y="${top + 28 + panelHeight}" fill="#666">day ${day + 1}</text>`);
    }
    result.timelines.forEach((pair, p) => {
      const y = top + 16 + p * (lane + gap);
      parts.push(`<text x="${left - 6}" y="${y + lane - 2}" text-anchor="end">${escape(pair.pairId)}</text>`);
      pair.timeline.forEach((segment, s) => {
        const next = pair.timeline[s + 1]?.at ?? result.end;
        const w = Math.max(0.5, x(next) - x(segment.at));
        parts.push(`<rect x="${x(segment.at).toFixed(1)}" y="${y}" width="${w.toFixed(1)}" height="${lane}" fill="${COLORS[segment.activity]}"/>`);
      });
      for (const job of pair.jobs) {
        if (job.dirtyStart) parts.push(`<line x1="${x(job.start).toFixed(1)}" y1="${y}" x2="${x(job.start).toFixed(1)}" y2="${y + lane}" stroke="black" stroke-width="1"/>`);
        if (job.killed) parts.push(`<text x="${x(job.end).toFixed(1)}" y="${y + lane - 1}" fill="#d32f2f" font-weight="bold" text-anchor="middle">✕</text>`);
      }
    });
  });
  parts.push("</svg>");
  return parts.join("\n");
}
