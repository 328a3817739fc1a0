import { z } from "zod";
import { appFrom, callApp, UNKNOWN_PAIR, type Call, type RemoteOptions } from "../client.js";
import type { CliContext } from "../context.js";
import { EXIT_OK } from "../errors.js";

const pairPath = (pair: string, action: string) => `/api/pairs/${encodeURIComponent(pair)}/${action}`;

// The answers as the app's routes send them (shared/admin/routes.ts, shared/admin/holds.ts). Loose,
// and only used for the sentence: the app has acted already, so another shape is no failure.
const ResetAnswerSchema = z.looseObject({ pair: z.string(), state: z.string(), resetRequestedBy: z.string().nullish() });
const HoldAnswerSchema = z.looseObject({
  pair: z.looseObject({ id: z.string(), state: z.string(), holdBy: z.string().nullish(), holdReason: z.string().nullish() }),
  changed: z.boolean(),
});
/** The reset route's 409: the pair is held, or its reset is in flight. */
const ConflictSchema = z.looseObject({ conflict: z.enum(["held", "resetting"]) });

/** `reset <pair>`: asks the app to reset the pair now; it refuses (409) a held pair or one already being reset. */
export function reset(context: CliContext, pair: string, options: RemoteOptions): Promise<number> {
  const call: Call = {
    method: "POST",
    path: pairPath(pair, "reset"),
    notFound: UNKNOWN_PAIR,
    conflict: (answer) => {
      const conflict = ConflictSchema.safeParse(answer);
      if (!conflict.success) return `see lab-reset status; a held pair needs lab-reset release ${pair} first`; // an app older than this CLI
      return conflict.data.conflict === "held" ? `run lab-reset release ${pair} first` : `lab-reset status shows when it ends`;
    },
  };
  return act(context, options, call, (body) => {
    const answer = ResetAnswerSchema.safeParse(body);
    if (!answer.success) return `${pair}: reset requested`;
    const { pair: id, state, resetRequestedBy } = answer.data;
    // The app records the request and queues a reconcile; the dispatch waits for an idle VM.
    return `${id}: reset requested${resetRequestedBy ? ` by ${resetRequestedBy}` : ""} (was ${state}); it is dispatched once the VM is idle, see lab-reset status`;
  });
}

/** `hold <pair> --reason`: no resets and routing closed until released. */
export function hold(context: CliContext, pair: string, options: RemoteOptions & { reason: string }): Promise<number> {
  const call: Call = { method: "POST", path: pairPath(pair, "hold"), body: { reason: options.reason }, notFound: UNKNOWN_PAIR };
  return act(context, options, call, (body) => {
    const answer = HoldAnswerSchema.safeParse(body);
    if (!answer.success) return `${pair}: held (${options.reason})`;
    const { pair: record, changed } = answer.data;
    const held = `held by ${record.holdBy ?? "?"} (${record.holdReason ?? options.reason})`;
    return changed ? `${record.id}: ${held}; no resets and routing closed until lab-reset release ${record.id}` : `${record.id}: already ${held}`;
  });
}

/** `release <pair>`: ends the pair's hold; the next reconcile decides it as usual. */
export function release(context: CliContext, pair: string, options: RemoteOptions): Promise<number> {
  const call: Call = { method: "DELETE", path: pairPath(pair, "hold"), notFound: UNKNOWN_PAIR };
  return act(context, options, call, (body) => {
    const answer = HoldAnswerSchema.safeParse(body);
    if (!answer.success) return `${pair}: released`;
    const { pair: record, changed } = answer.data;
    return changed ? `${record.id}: released (state ${record.state}); the next reconcile decides it as usual` : `${record.id}: was not held`;
  });
}

async function act(context: CliContext, options: RemoteOptions, call: Call, done: (body: unknown) => string): Promise<number> {
  const body = await callApp(appFrom(options, context), call);
  context.stdout(options.json ? `${JSON.stringify(body, null, 2)}\n` : `${done(body)}\n`);
  return EXIT_OK;
}
