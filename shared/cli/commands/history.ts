import { z } from "zod";
import { answerAs, appFrom, callApp, UNKNOWN_PAIR, type RemoteOptions } from "../client.js";
import type { CliContext } from "../context.js";
import { EXIT_OK } from "../errors.js";
import { clip, renderTable, utc } from "../table.js";

const HistorySchema = z.looseObject({
  pair: z.string(),
  events: z.array(
    z.looseObject({
      at: z.string(),
      kind: z.string(),
      trigger: z.string().nullish(),
      from: z.string().nullish(),
      to: z.string().nullish(),
      reason: z.string().nullish(),
      resetRunId: z.number().nullish(),
    }),
  ),
});

/** `history <pair>`: the pair's recorded state changes and dispatches, newest first as the app sends them. */
export async function history(context: CliContext, pair: string, options: RemoteOptions & { limit?: number }): Promise<number> {
  const app = appFrom(options, context);
  const query = options.limit !== undefined ? `?limit=${options.limit}` : "";
  const call = { method: "GET", path: `/api/pairs/${encodeURIComponent(pair)}/events${query}`, notFound: UNKNOWN_PAIR } as const;
  const body = await callApp(app, call);
  const answer = answerAs(HistorySchema, body, app, call);
  if (options.json) {
    context.stdout(`${JSON.stringify(body, null, 2)}\n`);
    return EXIT_OK;
  }
  if (answer.events.length === 0) {
    context.stdout(`${answer.pair}: no events recorded yet\n`);
    return EXIT_OK;
  }
  context.stdout(
    renderTable(
      ["at", "kind", "trigger", "change", "why", "reset run"],
      answer.events.map((event) => [
        utc(event.at),
        event.kind,
        event.trigger ?? "-",
        `${event.from ?? "(none)"} -> ${event.to ?? "?"}`,
        clip(event.reason, 70),
        event.resetRunId == null ? "-" : String(event.resetRunId),
      ]),
    ),
  );
  return EXIT_OK;
}
