import { z } from "zod";
import { answerAs, appFrom, callApp, type RemoteOptions } from "../client.js";
import type { CliContext } from "../context.js";
import { EXIT_FAILED, EXIT_OK } from "../errors.js";
import { clip, renderTable } from "../table.js";

const PlanSchema = z.looseObject({
  pairs: z.array(z.looseObject({ id: z.string(), state: z.string(), decision: z.string(), reason: z.string().nullish() })),
  /** What the app could not read (GitHub, a reset run): the pairs it concerns are planned as left alone. */
  errors: z.array(z.string()).optional(),
});

/** `plan`: what a reconcile would decide for each pair now; the app acts on none of it. */
export async function plan(context: CliContext, options: RemoteOptions): Promise<number> {
  const app = appFrom(options, context);
  const call = { method: "GET", path: "/api/plan" } as const;
  const body = await callApp(app, call);
  const answer = answerAs(PlanSchema, body, app, call);
  const errors = answer.errors ?? [];
  if (options.json) {
    context.stdout(`${JSON.stringify(body, null, 2)}\n`);
  } else {
    context.stdout(renderTable(["pair", "state", "decision", "why"], answer.pairs.map((pair) => [pair.id, pair.state, pair.decision, clip(pair.reason, 80)])));
  }
  // The table alone would show "deferred-unknown" without saying why.
  for (const error of errors) context.stderr(`lab-reset: the plan is incomplete: ${error}\n`);
  return errors.length > 0 ? EXIT_FAILED : EXIT_OK;
}
