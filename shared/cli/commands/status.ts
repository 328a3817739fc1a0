import { z } from "zod";
import { answerAs, appFrom, callAppDated, type RemoteOptions } from "../client.js";
import type { CliContext } from "../context.js";
import { EXIT_OK } from "../errors.js";
import { ago, clip, renderTable } from "../table.js";

// Loose: an app newer than the CLI may add fields; only what the table shows is required.
const text = z.string().nullish();
const runId = z.number().nullish();
const PairStatusSchema = z.looseObject({
  id: z.string(),
  state: z.string(),
  reason: text,
  lastJobRunId: runId,
  lastJobAt: text,
  resetRunId: runId,
  resetCompletedAt: text,
  attempts: z.number().nullish(),
  routing: text,
  routingSince: text,
  holdBy: text,
  holdReason: text,
  resetRequestedAt: text,
  resetRequestedBy: text,
  lastError: text,
});
const StatusSchema = z.looseObject({
  /** The app's clock (apps older than this CLI send none). */
  now: z.iso.datetime({ offset: true }).optional().catch(undefined),
  pairs: z.array(PairStatusSchema),
});
type PairStatus = z.infer<typeof PairStatusSchema>;

/** `status`: every pair as the app records it. */
export async function status(context: CliContext, options: RemoteOptions): Promise<number> {
  const app = appFrom(options, context);
  const call = { method: "GET", path: "/api/pairs" } as const;
  const { body, date } = await callAppDated(app, call);
  const answer = answerAs(StatusSchema, body, app, call);
  if (options.json) {
    context.stdout(`${JSON.stringify(body, null, 2)}\n`);
    return EXIT_OK;
  }
  // "5 min ago" by the app's clock, which wrote the times: the simulated lab's (npm start) runs
  // days ahead, and a laptop's may be off. Its Date header, then ours, for an app that sends no `now`.
  const now = answer.now !== undefined ? new Date(answer.now) : (date ?? context.now());
  context.stdout(
    renderTable(
      ["pair", "state", "why", "last job", "last reset", "attempts", "routing", "hold", "last error"],
      answer.pairs.map((pair) => [
        pair.id,
        pair.state,
        clip(pair.reason),
        withRun(ago(pair.lastJobAt, now), pair.lastJobRunId),
        lastReset(pair, now),
        String(pair.attempts ?? "-"),
        routing(pair, now),
        pair.holdBy || pair.holdReason ? clip(`${pair.holdBy ?? "?"}: ${pair.holdReason ?? ""}`, 40) : "-",
        clip(pair.lastError, 50),
      ]),
    ),
  );
  return EXIT_OK;
}

const withRun = (when: string, run: number | null | undefined) => (run == null ? when : `${when} (run ${run})`);

/** `resetRunId` is the latest reset run: in flight while resetting, the failed one when failed, else the one that cleaned the pair. */
function lastReset(pair: PairStatus, now: Date): string {
  if (pair.state === "resetting") return pair.resetRunId == null ? "requested" : `in flight (run ${pair.resetRunId})`;
  // An admin's `lab-reset reset` waits for an idle VM: say so, or the pair looks forgotten.
  if (pair.resetRequestedAt) return `asked ${ago(pair.resetRequestedAt, now)} by ${pair.resetRequestedBy ?? "admin"}`;
  const when = ago(pair.resetCompletedAt, now);
  return pair.state === "failed" ? when : withRun(when, pair.resetRunId);
}

function routing(pair: PairStatus, now: Date): string {
  if (!pair.routing) return "-";
  return pair.routingSince ? `${pair.routing} ${ago(pair.routingSince, now).replace(/ ago$/, "")}` : pair.routing;
}
