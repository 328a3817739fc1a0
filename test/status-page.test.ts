/**
 * The admins' status page: the pure renderer, then the page in a real headless chromium served
 * with its headers from loopback. `UPDATE_SCREENSHOT=1` also writes docs/status-page.png.
 */
import { writeFileSync } from "node:fs";
import type { Browser } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { renderStatusPage, STATUS_PAGE_CSP, STATUS_PAGE_HEADERS, STATUS_PAGE_STYLE, type StatusPageInput } from "../shared/admin/status-page.js";
import { holdSpans, stripSegments, stripSvg } from "../shared/admin/strip.js";
import { newPairRecord, type PairEvent, type PairRecord, type PairState, type Trigger } from "../shared/lab/pair-record.js";
import { functionDefinitions } from "../functions/definitions.js";
import { startLocalHost } from "../shared/local/host.js";
import { silentLogger } from "../shared/logger.js";
import { launchBrowser, openPage, startPageServer, type OpenedPage, type PageServer, type ServedPage } from "./support/browser.js";
import { finishReset, perfRun, startTestLab, vmRunnerName } from "./support/lab.js";

const drawnAt = new Date("2026-11-27T12:00:00.000Z");
const ago = (minutes: number) => new Date(drawnAt.getTime() - minutes * 60_000).toISOString();
const RUNS = "https://github.com/microsoft/netperf/actions/runs/";

const HOSTILE_IMG = `<img src=x onerror="window.__pwned=1">`;
const HOSTILE_SCRIPT = `<script>window.__pwned=1</script>`;

function record(pairId: string, fields: Partial<PairRecord>): PairRecord {
  return { ...newPairRecord(pairId, new Date(ago(0))), ...fields };
}

type Step = [minutesAgo: number, to: PairState, reason: string, extra?: Partial<PairEvent>];

/** A pair's events, newest first as the store returns them, each `from` the state before it. */
function history(pairId: string, start: PairState, steps: Step[], trigger: Trigger = "job-completed"): PairEvent[] {
  let from = start;
  const events = steps.map(([minutesAgo, to, reason, extra]) => {
    const event: PairEvent = { pairId, at: ago(minutesAgo), kind: "state", trigger, from, to, reason, resetRequestId: null, resetRunId: null, ...extra };
    from = to;
    return event;
  });
  return events.reverse();
}

/** A perf job on the VM, then its reset, as the app records them. */
function jobAndReset(startAgo: number, jobMinutes: number, runId: number, resetRunId: number): Step[] {
  const end = startAgo - jobMinutes;
  return [
    [startAgo, "busy", `run ${runId} has a job on the VM`, { trigger: "webhook" }],
    [end, "dirty", "the VM's job finished"],
    [end - 1, "resetting", "reset requested (the VM ran a job or its state is unknown)"],
    [end - 1, "resetting", "reset workflow dispatched", { kind: "dispatch", resetRunId }],
    [end - 7, "clean", `reset run ${resetRunId} succeeded`, { resetRunId }],
  ];
}

/** The seed lab's four pairs at noon: one clean, one busy, one failing its resets, one offline and held. */
function seedLab(): StatusPageInput {
  const failure = (run: number, attempt: number) => `reset run ${run} ended with conclusion "failure" (attempt ${attempt}); see ${RUNS}${run}`;
  return {
    lab: "microsoft/netperf",
    githubUrl: "https://github.com",
    drawnAt,
    pairs: [
      {
        vmRunnerLabel: "vm-25-26",
        record: record("vm-25-26", {
          state: "clean", jobSinceReset: false, lastJobRunId: 19712000412, lastJobAt: ago(46), resetRunId: 19712000498, resetRequestId: "7f1c",
          resetDispatchedAt: ago(45), resetCompletedAt: ago(38), routing: "open", routingSince: ago(38), reason: "reset run 19712000498 succeeded",
        }),
        events: history("vm-25-26", "clean", [
          ...jobAndReset(1330, 52, 19711800123, 19711800201), ...jobAndReset(1090, 38, 19711840877, 19711840950),
          ...jobAndReset(830, 95, 19711871302, 19711871411), ...jobAndReset(505, 61, 19711912006, 19711912090),
          ...jobAndReset(250, 44, 19711960544, 19711960602), ...jobAndReset(104, 58, 19712000412, 19712000498),
        ]),
      },
      {
        vmRunnerLabel: "vm-05-10",
        record: record("vm-05-10", {
          state: "busy", lastJobRunId: 19712003310, lastJobAt: ago(1), resetRunId: 19711990777, resetDispatchedAt: ago(91), resetCompletedAt: ago(84),
          routing: "closed", routingSince: ago(27), reason: "run 19712003310 has a job on the VM",
        }),
        events: history("vm-05-10", "dirty", [
          [1410, "resetting", "reset requested (the VM ran a job or its state is unknown)"], [1403, "clean", "reset run 19711788120 succeeded"],
          ...jobAndReset(1200, 70, 19711820016, 19711820144), ...jobAndReset(960, 120, 19711855400, 19711855530),
          ...jobAndReset(610, 80, 19711901777, 19711901850), ...jobAndReset(320, 140, 19711950310, 19711990777),
          [27, "busy", "run 19712003310 has a job on the VM", { trigger: "webhook" }],
        ]),
      },
      {
        vmRunnerLabel: "vm-42-43",
        record: record("vm-42-43", {
          state: "failed", lastJobRunId: 19711978200, lastJobAt: ago(175), resetRunId: 19711999041, resetDispatchedAt: ago(55), resetCompletedAt: ago(420),
          attempts: 2, retryAfter: ago(-12), lastError: failure(19711999041, 2), routing: "closed", routingSince: ago(175),
          reason: `${failure(19711999041, 2)}; retrying after ${ago(-12)}`,
        }),
        events: history("vm-42-43", "clean", [
          ...jobAndReset(1260, 66, 19711811203, 19711811290), ...jobAndReset(700, 110, 19711890022, 19711890140),
          ...jobAndReset(520, 93, 19711907750, 19711907801),
          [245, "busy", "run 19711978200 has a job on the VM", { trigger: "webhook" }], [175, "dirty", "the VM's job finished"],
          [174, "resetting", "reset requested (the VM ran a job or its state is unknown)"], [148, "failed", failure(19711978303, 1)],
          [58, "resetting", "reset requested (retrying a failed reset)", { trigger: "timer" }], [35, "failed", failure(19711999041, 2), { trigger: "timer" }],
        ]),
      },
      {
        vmRunnerLabel: "vm-11-12",
        record: record("vm-11-12", {
          state: "offline", jobSinceReset: false, lastJobRunId: 19711870001, lastJobAt: ago(790), resetRunId: 19711872210, resetDispatchedAt: ago(788),
          resetCompletedAt: ago(781), routing: "closed", routingSince: ago(372), holdBy: "mara", holdReason: "rr1-netperf-12 firmware update (LAB-311)",
          holdSince: ago(372), reason: "host runner RR1-NETPERF-12 is offline",
        }),
        events: history("vm-11-12", "clean", [
          ...jobAndReset(1150, 85, 19711830500, 19711830612), ...jobAndReset(880, 90, 19711870001, 19711872210),
          [372, "clean", "held by mara: rr1-netperf-12 firmware update (LAB-311)", { kind: "hold", trigger: "admin", held: true }],
          [365, "offline", "host runner RR1-NETPERF-12 is offline", { trigger: "timer" }],
        ]),
      },
    ],
  };
}

/** One pair whose every outside text is hostile. */
function hostileLab(): StatusPageInput {
  const pairId = `vm-99-98${HOSTILE_IMG}`;
  return {
    ...seedLab(),
    pairs: [{
      vmRunnerLabel: `runner ${HOSTILE_SCRIPT}`,
      record: record(pairId, {
        state: "failed", reason: `reason ${HOSTILE_IMG}`, lastError: `error ${HOSTILE_SCRIPT}`, holdBy: `"><b>x</b>`, holdReason: HOSTILE_IMG,
        holdSince: ago(10), routingError: HOSTILE_SCRIPT,
      }),
      events: history(pairId, "clean", [[30, "failed", `event ${HOSTILE_SCRIPT}`]]),
    }],
  };
}

describe("status page (rendered)", () => {
  it("escapes every text from GitHub, the config and the store, in text and in attributes", () => {
    const html = renderStatusPage(hostileLab());
    expect(html).not.toContain("<img");
    expect(html).not.toContain("<script");
    expect(html).not.toContain("<b>x</b>");
    expect(html).toContain(`data-pair="vm-99-98&lt;img src=x onerror=&quot;window.__pwned=1&quot;&gt;"`);
    expect(html).toContain("error &lt;script&gt;window.__pwned=1&lt;/script&gt;");
  });

  it("links runs to https URLs built from the lab and numeric run ids, with rel noreferrer", () => {
    const html = renderStatusPage(seedLab());
    const hrefs = [...html.matchAll(/<a href="([^"]*)" rel="noreferrer">/g)].map((m) => m[1]);
    expect(hrefs).toContain(`${RUNS}19712000498`);
    expect(hrefs).toContain(`${RUNS}19712003310`);
    for (const href of hrefs) expect(href).toMatch(/^https:\/\/github\.com\/microsoft\/netperf\/actions\/runs\/\d+$/);
    expect(html.match(/<a /g)?.length).toBe(hrefs.length);
  });

  it("shows run ids without links when the GitHub URL is not http(s)", () => {
    const html = renderStatusPage({ ...seedLab(), githubUrl: "javascript:alert(1)//" });
    expect(html).not.toContain("<a ");
    expect(html).not.toContain("javascript:");
    expect(html).toContain("run 19712000498");
  });

  it("shows a pair's hold: who, why and for how long", () => {
    const row = renderStatusPage(seedLab()).split("\n").find((line) => line.includes('data-pair="vm-11-12"'))!;
    expect(row).toContain("held by mara");
    expect(row).toContain("rr1-netperf-12 firmware update (LAB-311)");
    expect(row).toContain(`for <time datetime="${ago(372)}" title="${ago(372)}">6 h 12 min</time>`);
  });

  it("draws the strip from the state before the window, then the state each event moved to", () => {
    const events = history("vm-42-43", "dirty", [
      [25 * 60, "resetting", "older than the window"],
      [600, "clean", "reset run 1 succeeded"],
      [300, "busy", "run 2 has a job on the VM"],
      [300, "busy", "seen again"],
      [120, "dirty", "the VM's job finished"],
    ]);
    const segments = stripSegments(events, "dirty", drawnAt);
    expect(segments.map((s) => [s.state, s.start.toISOString(), s.end.toISOString()])).toEqual([
      ["resetting", ago(24 * 60), ago(600)],
      ["clean", ago(600), ago(300)],
      ["busy", ago(300), ago(120)],
      ["dirty", ago(120), ago(0)],
    ]);
    expect(segments[2]!.reason).toBe("run 2 has a job on the VM");
  });

  it("draws one segment of the record's state when no event falls in the last 24 hours", () => {
    const segments = stripSegments(history("vm-11-12", "clean", [[30 * 60, "offline", "old"]]), "offline", drawnAt);
    expect(segments.map((s) => [s.state, s.start.toISOString(), s.end.toISOString()])).toEqual([["offline", ago(24 * 60), ago(0)]]);
  });

  it("draws the time before a pair's first record as unknown", () => {
    const events = history("vm-05-10", "clean", [[200, "dirty", "no reset recorded yet"]]).map((e) => ({ ...e, from: null }));
    expect(stripSegments(events, "dirty", drawnAt).map((s) => s.state)).toEqual(["unknown", "dirty"]);
  });

  it("draws no record before a pair's first event when its events reach back that far, whatever that event's `from`", () => {
    // A pair's first reconcile records its move from the new record's "dirty": that is no history.
    const events = history("vm-05-10", "dirty", [[600, "resetting", "reset requested (the VM ran a job or its state is unknown)"], [590, "clean", "reset run 1 succeeded"]]);
    const drawn = (fromFirstRecord: boolean) => stripSegments(events, "clean", drawnAt, { fromFirstRecord }).map((s) => [s.state, s.start.toISOString()]);
    expect(drawn(true)).toEqual([["unknown", ago(1440)], ["resetting", ago(600)], ["clean", ago(590)]]);
    // Events that may not reach back (as many as were asked for): the oldest one's `from` stands before it.
    expect(drawn(false)).toEqual([["dirty", ago(1440)], ["resetting", ago(600)], ["clean", ago(590)]]);
    // A first record older than the window leaves no unknown time in it.
    const older = history("vm-05-10", "dirty", [[2000, "clean", "reset run 1 succeeded"], [300, "busy", "run 2 has a job on the VM"]]);
    expect(stripSegments(older, "busy", drawnAt, { fromFirstRecord: true }).map((s) => s.state)).toEqual(["clean", "busy"]);
    // No event at all: nothing is recorded of the pair yet.
    expect(stripSegments([], "dirty", drawnAt, { fromFirstRecord: true }).map((s) => [s.state, s.start.toISOString(), s.end.toISOString()])).toEqual([["unknown", ago(1440), ago(0)]]);
  });

  it("finds a pair's holds from its hold events, their `held` stamps, and the record's hold now", () => {
    const unheld = { holdBy: null, holdReason: null, holdSince: null };
    const events = history("vm-42-43", "clean", [
      [900, "clean", "held by mara: re-taking the checkpoint", { kind: "hold", trigger: "admin" }],
      [800, "offline", "host runner RR1-NETPERF-42 is offline", { held: true }],
      [700, "offline", "released by mara (held by mara since …: re-taking the checkpoint)", { kind: "hold", trigger: "admin" }],
      [100, "offline", "held by li: LAB-312", { kind: "hold", trigger: "admin", held: true }],
      [60, "clean", "reset run 9 succeeded", { held: false }],
    ]);
    expect(holdSpans(events, unheld, drawnAt).map((h) => [h.start.toISOString(), h.end.toISOString(), h.reason])).toEqual([
      [ago(900), ago(700), "held by mara: re-taking the checkpoint"],
      [ago(100), ago(60), "held by li: LAB-312"],
    ]);
    // Held now, by the record, though no event in hand says when it began: from its holdSince.
    const held = { holdBy: "mara", holdReason: "firmware (LAB-311)", holdSince: ago(30) };
    expect(holdSpans([], held, drawnAt).map((h) => [h.start.toISOString(), h.end.toISOString(), h.reason])).toEqual([[ago(30), ago(0), "held by mara: firmware (LAB-311)"]]);
    // A hold older than the window is cut at the window's start.
    expect(holdSpans([], { ...held, holdSince: ago(3000) }, drawnAt)[0]!.start.toISOString()).toBe(ago(1440));
  });

  it("titles each segment and hold with its dated range, its length and why", () => {
    const events = history("vm-25-26", "clean", [[830, "busy", "run 2 has a job on the VM"], [630, "dirty", "the VM's job finished"], [120, "dirty", "held by mara: LAB-311", { kind: "hold", held: true }]]);
    const record = { holdBy: "mara", holdReason: "LAB-311", holdSince: ago(120) };
    const svg = stripSvg(stripSegments(events, "dirty", drawnAt), holdSpans(events, record, drawnAt), drawnAt, "vm-25-26");
    const titles = [...svg.matchAll(/<title>([^<]*)<\/title>/g)].map((m) => m[1]);
    expect(titles).toEqual([
      "clean 11-26 12:00 – 11-26 22:10 UTC (10 h 10 min)",
      "busy 11-26 22:10 – 11-27 01:30 UTC (3 h 20 min): run 2 has a job on the VM",
      "dirty 11-27 01:30 – 11-27 12:00 UTC (10 h 30 min): the VM&#39;s job finished",
      "on hold 11-27 10:00 – 11-27 12:00 UTC (2 h): held by mara: LAB-311",
    ]);
    expect(svg).toContain('<rect class="held" data-held="" x="1320.0" y="0" width="120.0" height="7">');
    expect(svg).toMatch(/aria-label="vm-25-26, last 24 hours: [^"]*; on hold 2 h"/);
  });

  it("allows only its own stylesheet, by hash, and no script, request, form, frame or base", async () => {
    const { createHash } = await import("node:crypto");
    const hash = createHash("sha256").update(STATUS_PAGE_STYLE).digest("base64");
    expect(renderStatusPage(seedLab())).toContain(`<style>${STATUS_PAGE_STYLE}</style>`);
    expect(STATUS_PAGE_CSP).toBe(`default-src 'none'; style-src 'sha256-${hash}'; script-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'`);
    expect(STATUS_PAGE_HEADERS).toMatchObject({ "Referrer-Policy": "no-referrer", "X-Content-Type-Options": "nosniff", "Cache-Control": "no-store" });
    expect(STATUS_PAGE_HEADERS["Content-Type"]).toBe("text/html; charset=utf-8");
  });

  it("refreshes itself every 30 seconds and says when it was drawn", () => {
    const html = renderStatusPage(seedLab());
    expect(html).toContain(`<meta http-equiv="refresh" content="30">`);
    expect(html).toContain(`<time datetime="2026-11-27T12:00:00.000Z">2026-11-27 12:00 UTC</time>`);
  });
});

/** The page as `GET /api/status` serves it. */
const served = (input: StatusPageInput): ServedPage => ({ body: renderStatusPage(input), headers: STATUS_PAGE_HEADERS });

/** The page with no CSP at all, neither header nor meta: what its markup does by itself. */
function withoutCsp(input: StatusPageInput): ServedPage {
  const headers = Object.fromEntries(Object.entries(STATUS_PAGE_HEADERS).filter(([name]) => name !== "Content-Security-Policy"));
  const body = renderStatusPage(input).replace(/<meta http-equiv="Content-Security-Policy"[^>]*>/, "");
  if (body.includes("Content-Security-Policy")) throw new Error("the page's CSP meta tag was not found to remove");
  return { body, headers };
}

describe("status page (in chromium)", { timeout: 60_000 }, () => {
  let browser: Browser;
  let server: PageServer;
  beforeAll(async () => {
    [browser, server] = await Promise.all([launchBrowser(), startPageServer()]);
  }, 90_000);
  afterAll(async () => {
    await server?.close();
    await browser?.close();
  }, 30_000);

  /** Serves the page, opens it in a fresh context, and closes that afterwards. */
  const withPage = async (served: ServedPage, check: (opened: OpenedPage) => Promise<void>, viewport?: { width: number; height: number }) => {
    server.show(served);
    const opened = await openPage(browser, server.url, viewport);
    try {
      await check(opened);
    } finally {
      await opened.close();
    }
  };

  it("shows every pair with its state, in colour and in words", async () => {
    await withPage(served(seedLab()), async ({ page }) => {
      const rows = await page.locator("tbody tr").evaluateAll((trs) => trs.map((tr) => [tr.getAttribute("data-pair"), tr.getAttribute("data-state"), tr.querySelector(".badge")?.textContent]));
      expect(rows).toEqual([["vm-25-26", "clean", "clean"], ["vm-05-10", "busy", "busy"], ["vm-42-43", "failed", "failed"], ["vm-11-12", "offline", "offline"]]);
      const badge = await page.locator('tr[data-pair="vm-42-43"] .badge').evaluate((badge) => badge.ownerDocument.defaultView!.getComputedStyle(badge).backgroundColor);
      expect(badge).toBe("rgb(198, 40, 40)");
      expect(await page.locator("th[scope=col]").count()).toBe(10);
    });
  });

  it.each([
    ["with its CSP", served(hostileLab())],
    ["even without a CSP", withoutCsp(hostileLab())],
  ])("shows hostile runner labels, reasons and errors as text and runs none of them, %s", async (_, page) => {
    await withPage(page, async ({ page }) => {
      expect(await page.evaluate("window.__pwned")).toBeUndefined();
      expect(await page.locator("body img, body script").count()).toBe(0);
      const row = page.locator("tbody tr").first();
      expect(await row.getAttribute("data-pair")).toBe(`vm-99-98${HOSTILE_IMG}`);
      for (const text of [`reason ${HOSTILE_IMG}`, `error ${HOSTILE_SCRIPT}`, `runner ${HOSTILE_SCRIPT}`]) {
        expect(await row.getByText(text, { exact: false }).first().isVisible()).toBe(true);
      }
    });
  });

  it("is served with its CSP and applies its own stylesheet without a violation", async () => {
    await withPage(served(seedLab()), async (opened) => {
      const response = await opened.page.request.get(server.url);
      expect(response.headers()["content-security-policy"]).toBe(STATUS_PAGE_CSP);
      expect(response.headers()["referrer-policy"]).toBe("no-referrer");
      // The stylesheet applied: the table is laid out at full width with fixed columns.
      expect(await opened.page.locator("table.pairs").evaluate((table) => table.ownerDocument.defaultView!.getComputedStyle(table).tableLayout)).toBe("fixed");
      expect(opened.console.filter((m) => /content security policy|refused/i.test(m))).toEqual([]);
    });
  });

  it("requests nothing but itself, and nothing off the loopback host, even without its CSP", async () => {
    await withPage(withoutCsp(seedLab()), async (opened) => {
      await opened.page.waitForLoadState("networkidle");
      expect(opened.offLoopback).toEqual([]);
      expect(opened.requests).toEqual([server.url]);
    });
  });

  it("draws a segment of the 24 h strip for each state the pair was in, in time order", async () => {
    await withPage(served(seedLab()), async ({ page }) => {
      const segments = await page.locator('tr[data-pair="vm-42-43"] svg.strip rect').evaluateAll((rects) =>
        rects.map((r) => ({ state: r.getAttribute("data-state"), x: r.getBoundingClientRect().x, width: r.getBoundingClientRect().width })),
      );
      expect(segments.map((s) => s.state)).toEqual([
        "clean", "busy", "dirty", "resetting", "clean", "busy", "dirty", "resetting", "clean", "busy", "dirty", "resetting", "clean",
        "busy", "dirty", "resetting", "failed", "resetting", "failed",
      ]);
      for (let i = 1; i < segments.length; i++) expect(segments[i]!.x).toBeGreaterThan(segments[i - 1]!.x);
      // 24 hours across the cell: the last 35 minutes of `failed` are about 2.4 % of the strip.
      const strip = await page.locator('tr[data-pair="vm-42-43"] svg.strip').boundingBox();
      expect(segments.at(-1)!.width / strip!.width).toBeCloseTo(35 / 1440, 2);
    });
  });

  it("draws a pair's hold as a striped band along the top of its strip, the hold's words in its title", async () => {
    await withPage(served(seedLab()), async ({ page }) => {
      const strip = (await page.locator('tr[data-pair="vm-11-12"] svg.strip').boundingBox())!;
      const band = page.locator('tr[data-pair="vm-11-12"] svg.strip rect.held');
      expect(await band.count()).toBe(1);
      const box = (await band.boundingBox())!;
      expect(box.width / strip.width).toBeCloseTo(372 / 1440, 2);
      expect(box.x + box.width).toBeCloseTo(strip.x + strip.width - 1, 0);
      // The state shows (and answers a hover) below the band.
      expect(box.height / strip.height).toBeLessThan(0.4);
      expect(await band.locator("title").textContent()).toBe("on hold 11-27 05:48 – 11-27 12:00 UTC (6 h 12 min): held by mara: rr1-netperf-12 firmware update (LAB-311)");
      expect(await band.evaluate((rect) => rect.ownerDocument.defaultView!.getComputedStyle(rect).fill)).toBe('url("#held-hatch")');
      expect(await page.locator("pattern#held-hatch").count()).toBe(1);
      expect(await page.locator("tr[data-pair] rect.held").count()).toBe(1);
    });
  });

  it("links runs to their GitHub run pages with rel noreferrer", async () => {
    await withPage(served(seedLab()), async ({ page }) => {
      const links = await page.locator('tr[data-pair="vm-05-10"] a').evaluateAll((as) => as.map((a) => [a.getAttribute("href"), a.getAttribute("rel"), a.textContent]));
      expect(links).toEqual([
        [`${RUNS}19712003310`, "noreferrer", "run 19712003310"],
        [`${RUNS}19711990777`, "noreferrer", "run 19711990777"],
      ]);
    });
  });

  it("served by GET /api/status of a local host over the seed lab, shows every pair with the state /api/pairs reports", async () => {
    const lab = await startTestLab();
    const host = await startLocalHost({ definitions: functionDefinitions(() => Promise.resolve(lab.runtime), { resetSchedule: "0 0 */6 * * *", reconcileQueue: "unused" }), port: 0, logger: silentLogger });
    try {
      // Four pairs in four states: reset and clean, running a job, its reset failed, its reset in flight.
      await lab.timer();
      const runOf = (id: string) => lab.github.dispatches.find((d) => d.inputs.pair === id)!.runId!;
      finishReset(lab, runOf("vm-25-26"));
      finishReset(lab, runOf("vm-05-10"));
      finishReset(lab, runOf("vm-42-43"), "failure");
      lab.advance(10);
      await lab.timer();
      perfRun(lab, [vmRunnerName("vm-05-10")]);
      lab.advance(1);
      await lab.timer();

      const reported = ((await (await fetch(`${host.url}/api/pairs`)).json()) as { pairs: { id: string; state: string }[] }).pairs.map((p) => [p.id, p.state]);
      expect(reported).toEqual([["vm-25-26", "clean"], ["vm-05-10", "busy"], ["vm-42-43", "failed"], ["vm-11-12", "resetting"]]);
      const opened = await openPage(browser, `${host.url}/api/status?code=secret-function-key`);
      try {
        const rows = await opened.page.locator("table.pairs tbody tr").evaluateAll((trs) => trs.map((tr) => [tr.getAttribute("data-pair"), tr.getAttribute("data-state"), tr.querySelector(".badge")?.textContent]));
        expect(rows).toEqual(reported.map(([id, state]) => [id, state, state]));
        expect(opened.console).toEqual([]);
      } finally {
        await opened.close();
      }
    } finally {
      await host.close();
      await lab.close();
    }
  });

  it("draws the seed lab legibly at 1280 px (UPDATE_SCREENSHOT=1 writes docs/status-page.png)", async () => {
    await withPage(served(seedLab()), async ({ page }) => {
      expect(await page.evaluate("document.documentElement.scrollWidth")).toBeLessThanOrEqual(1280);
      const png = await page.screenshot({ fullPage: true });
      expect(png.length).toBeGreaterThan(10_000);
      if (process.env.UPDATE_SCREENSHOT === "1") writeFileSync("docs/status-page.png", png);
    }, { width: 1280, height: 600 });
  });
});

describe("status page on a simulated clock", () => {
  it("says plainly that its clock is simulated, how fast it runs and what time it is there; a real lab's page does not", () => {
    const html = renderStatusPage({ ...seedLab(), simulatedClock: { speed: 60 } });
    const note = /<p class="simulated" role="note">(.*?)<\/p>/.exec(html)?.[1]?.replace(/<[^>]+>/g, "");
    expect(note).toBe("Simulated lab: no real VM is reset, and the clock is simulated: it runs 60× as fast as real time (simulated time now 2026-11-27 12:00 UTC). Every time on this page is simulated time.");
    // Before the table and the "Drawn" line, which shows the same simulated time.
    expect(html.indexOf('class="simulated"')).toBeLessThan(html.indexOf('class="meta"'));
    expect(renderStatusPage(seedLab())).not.toMatch(/class="simulated"|Simulated lab|simulated time/);
  });

  it("GET /api/status of a runtime on the simulated lab's clock carries the note, with that clock's time", async () => {
    const lab = await startTestLab();
    lab.runtime.simulatedClock = { speed: 600 };
    const host = await startLocalHost({ definitions: functionDefinitions(() => Promise.resolve(lab.runtime), { resetSchedule: "0 0 */6 * * *", reconcileQueue: "unused" }), port: 0, logger: silentLogger });
    try {
      const page = await (await fetch(`${host.url}/api/status`)).text();
      const now = lab.runtime.clock().toISOString().slice(0, 16).replace("T", " ");
      expect(page).toContain(`it runs 600× as fast as real time (simulated time now <time datetime="${lab.runtime.clock().toISOString()}">${now} UTC</time>)`);
      delete lab.runtime.simulatedClock;
      expect(await (await fetch(`${host.url}/api/status`)).text()).not.toMatch(/class="simulated"|Simulated lab|simulated time/);
    } finally {
      await host.close();
      await lab.close();
    }
  });
});
