/**
 * GET /api/report?days=N (the capacity report) and GET /api/workload?days=N (the recorded
 * workload `lab-reset advise` replays). Both read storage only.
 */
import type { Logger } from "../logger.js";
import { DEFAULT_REPORT_DAYS, readReport, readWorkload, type ReportRuntime } from "../report/read.js";
import { refuse, unavailable, type JsonResponse } from "../triggers/http.js";

/** The window in days, or the refusal: a whole number from 1 to `historyDays`. */
export function reportDays(text: string | null, historyDays: number): number | JsonResponse {
  if (text === null || text === "") return Math.min(DEFAULT_REPORT_DAYS, historyDays);
  const days = Number(text);
  if (!/^\d+$/.test(text) || days < 1 || days > historyDays) {
    return refuse(400, `days must be a whole number from 1 to ${historyDays} (historyDays in the lab config), not ${JSON.stringify(text)}.`);
  }
  return days;
}

/** A window's answer read from storage, or the refusal of a bad `days`. */
async function windowAnswer(runtime: ReportRuntime, daysText: string | null, logger: Logger, read: (runtime: ReportRuntime, days: number) => Promise<unknown>): Promise<JsonResponse> {
  const days = reportDays(daysText, runtime.config.historyDays);
  if (typeof days !== "number") return days;
  try {
    return { status: 200, body: await read(runtime, days) };
  } catch (cause) {
    return unavailable(cause, logger, "Retry later.");
  }
}

export const report = (runtime: ReportRuntime, daysText: string | null, logger: Logger) => windowAnswer(runtime, daysText, logger, readReport);
export const workload = (runtime: ReportRuntime, daysText: string | null, logger: Logger) => windowAnswer(runtime, daysText, logger, readWorkload);
