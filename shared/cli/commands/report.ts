import { z } from "zod";
// The page's own words for lengths and shares, so the CLI and the status page say the same.
import { percent, seconds as inWords } from "../../admin/report-svg.js";
import { answerAs, appFrom, callApp, type RemoteOptions } from "../client.js";
import type { CliContext } from "../context.js";
import { EXIT_OK } from "../errors.js";
import { renderTable, utc } from "../table.js";

// Loose: an app newer than the CLI may add fields; only what the summary shows is required.
const count = z.number();
const Waits = { p50: z.number(), p95: z.number() };
const ReportAnswerSchema = z.looseObject({
  from: z.string(),
  to: z.string(),
  jobs: z.looseObject({ count, dirtyStarts: count, killedByReset: count }),
  queueWaitSeconds: z.looseObject({ ...Waits, byLabels: z.array(z.looseObject({ labels: z.string(), jobs: count, ...Waits })) }),
  resets: z.looseObject({ ok: count, failed: count, secondsP50: z.number(), secondsP95: z.number() }),
  pairs: z.array(
    z.looseObject({
      id: z.string(),
      jobs: count,
      busyShare: z.number(),
      resettingShare: z.number(),
      outOfRoutingIdleShare: z.number(),
      cleanIdleShare: z.number(),
      offlineShare: z.number(),
      recordedSeconds: z.number(),
      resets: z.looseObject({ ok: count, failed: count }),
    }),
  ),
});
type ReportAnswer = z.infer<typeof ReportAnswerSchema>;

export interface ReportOptions extends RemoteOptions {
  days?: number;
}

/** `report`: the capacity report of the last N days (GET /api/report), as a summary and two tables. */
export async function report(context: CliContext, options: ReportOptions): Promise<number> {
  const app = appFrom(options, context);
  const call = { method: "GET", path: `/api/report${options.days !== undefined ? `?days=${options.days}` : ""}` } as const;
  const body = await callApp(app, call);
  const answer = answerAs(ReportAnswerSchema, body, app, call);
  if (options.json) {
    context.stdout(`${JSON.stringify(body, null, 2)}\n`);
    return EXIT_OK;
  }
  context.stdout(summary(answer));
  return EXIT_OK;
}

function summary(report: ReportAnswer): string {
  const days = Math.round((Date.parse(report.to) - Date.parse(report.from)) / 86_400_000);
  const window = `${utc(report.from)} to ${utc(report.to)} (${counted(days, "day")})`;
  const { jobs, queueWaitSeconds: wait, resets } = report;
  const lines = [`report: ${window}`];
  if (jobs.count === 0) lines.push(`jobs: no jobs recorded in the last ${counted(days, "day")}`);
  else {
    lines.push(`jobs: ${counted(jobs.count, "perf job")}, ${counted(jobs.dirtyStarts, "dirty start")}, ${jobs.killedByReset} killed by a reset`);
    lines.push(`queue wait: p50 ${inWords(wait.p50)}, p95 ${inWords(wait.p95)}`);
  }
  lines.push(`resets: ${resets.ok} ok, ${resets.failed} failed${resets.ok + resets.failed > 0 ? `; reset time p50 ${inWords(resets.secondsP50)}, p95 ${inWords(resets.secondsP95)}` : ""}`);
  const tables = [];
  if (wait.byLabels.length > 0) {
    tables.push(renderTable(["runs-on labels", "jobs", "wait p50", "wait p95"], wait.byLabels.map((l) => [l.labels, String(l.jobs), inWords(l.p50), inWords(l.p95)])));
  }
  const share = (pair: ReportAnswer["pairs"][number], value: number) => (pair.recordedSeconds > 0 ? percent(value) : "-");
  tables.push(
    renderTable(
      ["pair", "jobs", "busy", "resetting", "out of routing, idle", "clean, idle", "offline", "resets ok", "failed"],
      report.pairs.map((pair) => [
        pair.id,
        String(pair.jobs),
        ...[pair.busyShare, pair.resettingShare, pair.outOfRoutingIdleShare, pair.cleanIdleShare, pair.offlineShare].map((v) => share(pair, v)),
        String(pair.resets.ok),
        String(pair.resets.failed),
      ]),
    ),
  );
  return `${lines.join("\n")}\n\n${tables.join("\n")}`;
}

const counted = (n: number, one: string) => `${n} ${one}${n === 1 ? "" : "s"}`;
