import { z } from "zod";
import { answerAs, appFrom, callApp, type RemoteOptions } from "../client.js";
import type { CliContext } from "../context.js";
import { EXIT_OK } from "../errors.js";
import { clip, renderTable } from "../table.js";

const PlanSchema = z.looseObject({
  pairs: z.array(z.looseObject({ id: z.string(), state: z.string(), decision: z.string(), reason: z.string().nullish() })),
});

/** `plan`: what a reconcile would decide for each pair now; the app acts on none of it. */
export async function plan(context: CliContext, options: RemoteOptions): Promise<number> {
  const app = appFrom(options, context);
  const call = { method: "GET", path: "/api/plan" } as const;
  const body = await callApp(app, call);
  const answer = answerAs(PlanSchema, body, app, call);
  if (options.json) {
    context.stdout(`${JSON.stringify(body, null, 2)}\n`);
    return EXIT_OK;
  }
  context.stdout(renderTable(["pair", "state", "decision", "why"], answer.pairs.map((pair) => [pair.id, pair.state, pair.decision, clip(pair.reason, 80)])));
  return EXIT_OK;
}
