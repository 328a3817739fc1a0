/**
 * The capacity report on the status page: the pure SVG and HTML (shared/admin/report-svg.ts), the
 * page's handler reading it from the stores, and the section in a real headless chromium under the
 * page's CSP.
 */
import type { Browser } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { hourlyChart, percent, reportSection, seconds, shareBar, type ReportView } from "../shared/admin/report-svg.js";
import { statusPage, type StatusPageRuntime } from "../shared/admin/routes.js";
import { renderStatusPage, STATUS_PAGE_CSP, STATUS_PAGE_HEADERS, type StatusPageInput } from "../shared/admin/status-page.js";
import { loadLabConfigFile } from "../shared/lab/config.js";
import { newPairRecord } from "../shared/lab/pair-record.js";
import { silentLogger, type Logger } from "../shared/logger.js";
import { ReportSchema, type PairReport, type Report } from "../shared/report/report.js";
import { StoreError } from "../shared/storage/connection.js";
import { MemoryHistoryStore } from "../shared/storage/history.js";
import { MemoryStore } from "../shared/storage/memory.js";
import { launchBrowser, openPage, startPageServer, type PageServer } from "./support/browser.js";

const to = new Date("2026-11-27T12:00:00.000Z");
const HOUR = 3_600_000;
const HOSTILE = `<img src=x onerror="window.__pwned=1">`;

function pair(id: string, shares: [busy: number, resetting: number, closed: number, clean: number, offline: number], jobs: number, resets: [number, number]): PairReport {
  const [busyShare, resettingShare, outOfRoutingIdleShare, cleanIdleShare, offlineShare] = shares;
  return { id, jobs, busyShare, resettingShare, outOfRoutingIdleShare, cleanIdleShare, offlineShare, recordedSeconds: 7 * 86_400, resets: { ok: resets[0], failed: resets[1] } };
}

/** A week of a busy lab: four pairs, two label sets, job starts in most daytime hours. */
function weekReport(): Report {
  const from = new Date(to.getTime() - 7 * 24 * HOUR);
  // Starts from 06:00 to 21:00 each day, none at night: the line breaks each night.
  const byHour = Array.from({ length: 7 * 24 }, (_, i) => from.getTime() + i * HOUR)
    .filter((t) => new Date(t).getUTCHours() >= 6 && new Date(t).getUTCHours() <= 21)
    .map((t, i) => ({ hour: new Date(t).toISOString(), jobs: 2 + (i % 5), p95: 60 + ((i * 97) % 1500) }));
  return ReportSchema.parse({
    from: from.toISOString(),
    to: to.toISOString(),
    jobs: { count: 412, dirtyStarts: 3, killedByReset: 1 },
    queueWaitSeconds: {
      p50: 95,
      p95: 1_380,
      byLabels: [
        { labels: "lab, os-windows-2022", jobs: 309, p50: 80, p95: 1_200 },
        { labels: "lab, os-linux", jobs: 103, p50: 240, p95: 3_900 },
      ],
      byHour,
    },
    resets: { ok: 398, failed: 6, secondsP50: 372, secondsP95: 545 },
    pairs: [
      pair("vm-25-26", [0.42, 0.08, 0.05, 0.45, 0], 130, [127, 1]),
      pair("vm-05-10", [0.5, 0.1, 0.1, 0.3, 0], 150, [148, 2]),
      pair("vm-42-43", [0.2, 0.06, 0.3, 0.44, 0], 90, [85, 3]),
      pair("vm-11-12", [0.1, 0.02, 0.08, 0.2, 0.6], 42, [38, 0]),
    ],
  });
}

const emptyReport = (): Report => ({
  ...weekReport(),
  jobs: { count: 0, dirtyStarts: 0, killedByReset: 0 },
  queueWaitSeconds: { p50: 0, p95: 0, byLabels: [], byHour: [] },
  resets: { ok: 0, failed: 0, secondsP50: 0, secondsP95: 0 },
});

/** The section's text as a reader sees it: tags dropped, entities of the fixture's text undone. */
const textOf = (html: string) => html.replace(/<title>[^<]*<\/title>/g, "").replace(/<[^>]+>/g, " ").replace(/\s+/g, " ").replace(/&#39;/g, "'").replace(/&quot;/g, '"');

describe("the capacity report's section (rendered)", () => {
  it("stacks each pair's five shares in order, each rect as wide as its share of 100", () => {
    const svg = shareBar(pair("vm-42-43", [0.2, 0.06, 0.3, 0.44, 0], 90, [85, 3]));
    const rects = [...svg.matchAll(/<rect class="sh-(\w+)" data-share="\w+" x="([\d.]+)" y="0" width="([\d.]+)"/g)].map((m) => [m[1], Number(m[2]), Number(m[3])]);
    // An empty share (offline 0) draws nothing.
    expect(rects).toEqual([["busy", 0, 20], ["resetting", 20, 6], ["closed", 26, 30], ["clean", 56, 44]]);
    expect(svg).toMatch(/^<svg class="share-bar" viewBox="0 0 100 10" preserveAspectRatio="none" role="img" aria-label="vm-42-43: busy 20 %, resetting 6 %, out of routing, idle 30 %, clean, idle 44 %, offline 0 %"><title>/);
  });

  it("writes beside the pictures every figure: jobs, dirty starts, killed, waits overall and per label set, resets and their times, each pair's shares", () => {
    const html = reportSection({ days: 7, report: weekReport() });
    const text = textOf(html);
    expect(text).toContain("Capacity, last 7 days 11-20 12:00 – 11-27 12:00 UTC");
    for (const figure of ["412 perf jobs", "3 dirty starts", "1 killed by a reset", "queue wait 2 min p50, 23 min p95", "resets 398 ok, 6 failed", "reset time 6 min p50, 9 min p95"]) expect(text).toContain(figure);
    expect(text).toContain("all perf jobs 412 2 min 23 min");
    expect(text).toContain("lab, os-windows-2022 309 1 min 20 min");
    expect(text).toContain("lab, os-linux 103 4 min 1 h 5 min");
    expect(text).toContain("vm-11-12 10 % 2 % 8 % 20 % 60 % 42 38 / 0");
    expect(html.match(/<svg class="share-bar"/g)).toHaveLength(4);
    expect(html.match(/<svg class="wait-bar"/g)).toHaveLength(3);
    // Bars to one scale: the longest p95 (os-linux's 1 h 5 min) spans the cell.
    expect(html).toContain(`<rect class="p95" x="0" y="0" width="100.00" height="10"></rect><rect class="p50" x="0" y="2.5" width="6.15" height="5">`);
  });

  it("says how much of the window a pair has a record for when it is not all of it, and draws no bar for a pair with none", () => {
    const report = weekReport();
    report.pairs[0]!.recordedSeconds = 30 * 3600;
    report.pairs[1]!.recordedSeconds = 7 * 86_400 - 60;
    report.pairs[2]!.recordedSeconds = 0;
    const rows = reportSection({ days: 7, report }).split("\n").filter((line) => line.startsWith("<tr data-report-pair="));
    expect(rows.map((row) => textOf(row).trim())).toEqual([
      "vm-25-26 of 30 h recorded 42 % 8 % 5 % 45 % 0 % 130 127 / 1",
      "vm-05-10 50 % 10 % 10 % 30 % 0 % 150 148 / 2",
      "vm-42-43 no record in the window — — — — — 90 85 / 3",
      "vm-11-12 10 % 2 % 8 % 20 % 60 % 42 38 / 0",
    ]);
    expect(rows[2]).not.toContain("<svg");
  });

  it("draws the hourly p95 as lines through consecutive hours, broken where no job started, with labelled axes", () => {
    const report = weekReport();
    const svg = hourlyChart(report);
    // 06:00–21:00 each day from 11-20 12:00 to 11-27 12:00: a line a day, a titled dot on each hour.
    const lines = [...svg.matchAll(/<polyline points="([^"]*)">/g)].map((m) => m[1]!.split(" ").map((p) => p.split(",").map(Number)));
    expect(lines.map((l) => l.length)).toEqual([10, 16, 16, 16, 16, 16, 16, 6]);
    for (const line of lines) for (let i = 1; i < line.length; i++) expect(line[i]![0]).toBeGreaterThan(line[i - 1]![0]!);
    expect(svg.match(/<circle /g)).toHaveLength(report.queueWaitSeconds.byHour.length);
    const highest = Math.max(...report.queueWaitSeconds.byHour.map((h) => h.p95));
    // The y axis ends at the first round length over the highest p95 (25 min here: 30 min), labelled in words.
    const labels = [...svg.matchAll(/<text [^>]*>([^<]*)<\/text>/g)].map((m) => m[1]);
    expect(highest).toBeLessThanOrEqual(1800);
    expect(labels.slice(0, 3)).toEqual(["0", "15 min", "30 min"]);
    expect(labels.slice(3)).toEqual(["11-21", "11-22", "11-23", "11-24", "11-25", "11-26", "11-27"]);
    expect(svg).toMatch(/role="img" aria-label="Queue wait p95 per hour, 11-20 12:00 to 11-27 12:00 UTC: highest \d+ min in the hour from 11-\d\d \d\d:00 UTC; 112 hours with job starts"/);
    expect(svg).toContain("<title>11-20 12:00 UTC: p95 1 min over 2 jobs</title>");
  });

  it("says no jobs were recorded, rather than drawing empty charts, when the history is empty", () => {
    const html = reportSection({ days: 3, report: emptyReport() });
    expect(textOf(html)).toBe(" Capacity, last 3 days No jobs recorded in the last 3 days. ");
    expect(html).not.toContain("<svg");
    // Resets without a job (a lab just set up): the pairs and resets, and the line instead of the waits.
    const resetsOnly = reportSection({ days: 1, report: { ...emptyReport(), resets: { ok: 4, failed: 0, secondsP50: 360, secondsP95: 420 } } });
    expect(textOf(resetsOnly)).toContain("No jobs recorded in the last 1 day.");
    expect(resetsOnly).toContain(`<svg class="share-bar"`);
    expect(resetsOnly).not.toContain(`class="hourly"`);
  });

  it("says in one line that the report is unavailable, and why", () => {
    const html = reportSection({ days: 7, report: null, problem: "the lab's history could not be read from storage" });
    expect(html.match(/<p[ >]/g)).toHaveLength(1);
    expect(textOf(html)).toContain("The capacity report is unavailable: the lab's history could not be read from storage; the pairs above are current.");
  });

  it("escapes label sets and pair ids from GitHub and the config, in text and in attributes", () => {
    const report = weekReport();
    report.queueWaitSeconds.byLabels[0]!.labels = `lab, ${HOSTILE}`;
    report.pairs[0]!.id = `vm-1"><script>x</script>`;
    const html = reportSection({ days: 7, report });
    expect(html).not.toContain("<img");
    expect(html).not.toContain("<script");
    expect(html).toContain(`data-labels="lab, &lt;img src=x onerror=&quot;window.__pwned=1&quot;&gt;"`);
    expect(html).toContain(`data-report-pair="vm-1&quot;&gt;&lt;script&gt;x&lt;/script&gt;"`);
  });

  it("writes seconds and shares as people read them", () => {
    expect([seconds(0), seconds(42.4), seconds(720), seconds(3_900), seconds(3 * 86_400)]).toEqual(["0 s", "42 s", "12 min", "1 h 5 min", "3 d"]);
    expect([percent(0), percent(0.001), percent(0.326), percent(1)]).toEqual(["0 %", "<1 %", "33 %", "100 %"]);
  });
});

// --- the page's handler: reads the report beside the pairs ---------------------------------------

const config = loadLabConfigFile("lab.config.json");

async function pageRuntime(history: StatusPageRuntime["history"] = new MemoryHistoryStore(() => to)): Promise<StatusPageRuntime> {
  const store = new MemoryStore();
  await store.createPair({ ...newPairRecord("vm-25-26", to), state: "clean" });
  return { settings: { githubApiUrl: "https://api.github.com" }, config, store, history, clock: () => to };
}

const logged = () => {
  const lines: string[] = [];
  const logger: Logger = { ...silentLogger, error: (line: string) => void lines.push(line) };
  return { logger, lines };
};

describe("GET /api/status with the capacity report", () => {
  it("reads the report of the last 7 days, or of ?days=, from the history and draws it under the pairs", async () => {
    const history = new MemoryHistoryStore(() => to);
    const vm = config.pairs[0]!;
    await history.recordRunners([{ runnerName: "VM-25-26", pairId: vm.id, role: "vm", labels: ["lab", vm.vmRunnerLabel] }]);
    await history.recordJobs([{ jobId: 1, runId: 10, labels: ["lab", "os-windows-2022"], runnerName: "VM-25-26", queuedAt: new Date(to.getTime() - 2 * HOUR).toISOString(), startedAt: new Date(to.getTime() - 2 * HOUR + 90_000).toISOString(), completedAt: new Date(to.getTime() - HOUR).toISOString(), conclusion: "success" }]);
    const page = await statusPage(await pageRuntime(history), silentLogger);
    expect(page.status).toBe(200);
    const html = page.html;
    expect(html.indexOf('<section class="report"')).toBeGreaterThan(html.indexOf("</table>"));
    expect(textOf(html)).toContain("Capacity, last 7 days 11-20 12:00 – 11-27 12:00 UTC");
    expect(textOf(html)).toContain("1 perf job 0 dirty starts");
    expect(textOf(html)).toContain("lab, os-windows-2022 1 2 min 2 min");
    expect(textOf((await statusPage(await pageRuntime(history), silentLogger, "2")).html)).toContain("Capacity, last 2 days 11-25 12:00 – 11-27 12:00 UTC");
  });

  it("draws the strip of a pair whose events reach back to its first record with no record before it (here: none at all)", async () => {
    const html = (await statusPage(await pageRuntime(), silentLogger)).html;
    const row = html.split("\n").find((line) => line.includes('data-pair="vm-05-10"'))!;
    expect([...row.matchAll(/<rect class="seg st-(\w+)"/g)].map((m) => m[1])).toEqual(["unknown"]);
  });

  it("says no jobs were recorded when the history is empty", async () => {
    expect(textOf((await statusPage(await pageRuntime(), silentLogger)).html)).toContain("Capacity, last 7 days No jobs recorded in the last 7 days.");
  });

  it("still shows every pair when the history cannot be read, and says in one line that the report is unavailable", async () => {
    const { logger, lines } = logged();
    const broken = { read: () => Promise.reject(new StoreError("read the lab's history", new Error("ECONNREFUSED"))) };
    const page = await statusPage(await pageRuntime(broken), logger);
    expect(page.status).toBe(200);
    expect([...page.html.matchAll(/<tr[^>]* data-pair="([^"]*)"/g)].map((m) => m[1])).toEqual(config.pairs.map((p) => p.id));
    expect(textOf(page.html)).toContain("The capacity report is unavailable: the lab's history could not be read from storage; reload in a minute; the pairs above are current.");
    expect(lines.join("\n")).toMatch(/status page: the capacity report is unavailable: .*read the lab's history/);
  });

  it("shows the app's refusal of a ?days= out of range in the report's place", async () => {
    const page = await statusPage(await pageRuntime(), silentLogger, "9999");
    expect(page.status).toBe(200);
    expect(textOf(page.html)).toContain(`The capacity report is unavailable: days must be a whole number from 1 to ${config.historyDays} (historyDays in the lab config), not "9999"; the pairs above are current.`);
  });
});

// --- in chromium ---------------------------------------------------------------------------------

function pageWith(report: ReportView): StatusPageInput {
  const pairs = config.pairs.map((p) => ({ record: { ...newPairRecord(p.id, to), state: "clean" as const }, vmRunnerLabel: p.vmRunnerLabel, events: [] }));
  return { lab: "microsoft/netperf", githubUrl: "https://github.com", drawnAt: to, pairs, report };
}

describe("the capacity report in chromium", { timeout: 60_000 }, () => {
  let browser: Browser;
  let server: PageServer;
  beforeAll(async () => {
    [browser, server] = await Promise.all([launchBrowser(), startPageServer()]);
  }, 90_000);
  afterAll(async () => {
    await server?.close();
    await browser?.close();
  }, 30_000);

  it("renders under the page's CSP without a violation: bars as wide as their shares, the hourly line, the figures readable", async () => {
    server.show({ body: renderStatusPage(pageWith({ days: 7, report: weekReport() })), headers: STATUS_PAGE_HEADERS });
    const opened = await openPage(browser, server.url);
    try {
      const { page } = opened;
      expect((await page.request.get(server.url)).headers()["content-security-policy"]).toBe(STATUS_PAGE_CSP);
      const section = page.locator("section.report");
      expect(await section.isVisible()).toBe(true);
      expect(await page.getByRole("heading", { name: "Capacity, last 7 days" }).isVisible()).toBe(true);
      // Each share's rect spans its share of the bar, as laid out.
      const bar = page.locator('tr[data-report-pair="vm-11-12"] svg.share-bar');
      const box = (await bar.boundingBox())!;
      const widths = await bar.locator("rect").evaluateAll((rects) => rects.map((r) => [r.getAttribute("data-share"), r.getBoundingClientRect().width]));
      expect(widths.map(([share, width]) => [share, Math.round((Number(width) / box.width) * 100)])).toEqual([["busy", 10], ["resetting", 2], ["closed", 8], ["clean", 20], ["offline", 60]]);
      // The stylesheet coloured the shares (an unstyled rect is black).
      expect(await bar.locator('rect[data-share="offline"]').evaluate((r) => r.ownerDocument.defaultView!.getComputedStyle(r).fill)).toBe("rgb(84, 110, 122)");
      expect(await page.getByRole("img", { name: /^Queue wait p95 per hour/ }).isVisible()).toBe(true);
      expect(await page.locator("svg.hourly polyline").count()).toBe(8);
      expect(await section.locator(".figures li").first().innerText()).toBe("412 perf jobs");
      expect(await section.locator("table.waits tbody tr").count()).toBe(3);
      // The report sits below the pairs, within the page's width.
      expect((await section.boundingBox())!.y).toBeGreaterThan((await page.locator("table.pairs").boundingBox())!.y);
      expect(await page.evaluate("document.documentElement.scrollWidth")).toBeLessThanOrEqual(1280);
      expect(opened.console).toEqual([]);
      expect(opened.requests).toEqual([server.url]);
    } finally {
      await opened.close();
    }
  });

  it("shows hostile label sets as text and runs nothing, and the empty history's one line", async () => {
    const report = weekReport();
    report.queueWaitSeconds.byLabels[1]!.labels = `lab, ${HOSTILE}`;
    server.show({ body: renderStatusPage(pageWith({ days: 7, report })), headers: STATUS_PAGE_HEADERS });
    const hostile = await openPage(browser, server.url);
    try {
      expect(await hostile.page.evaluate("window.__pwned")).toBeUndefined();
      expect(await hostile.page.locator("body img").count()).toBe(0);
      expect(await hostile.page.locator("table.waits").getByText(`lab, ${HOSTILE}`, { exact: true }).isVisible()).toBe(true);
      expect(hostile.console).toEqual([]);
    } finally {
      await hostile.close();
    }
    server.show({ body: renderStatusPage(pageWith({ days: 7, report: emptyReport() })), headers: STATUS_PAGE_HEADERS });
    const empty = await openPage(browser, server.url);
    try {
      expect((await empty.page.locator("section.report").innerText()).replace(/\s+/g, " ")).toBe("Capacity, last 7 days No jobs recorded in the last 7 days.");
      expect(empty.console).toEqual([]);
    } finally {
      await empty.close();
    }
  });
});
