/**
 * POST /api/pairs/{id}/hold `{ "reason": "…" }` and DELETE /api/pairs/{id}/hold: an admin holds a
 * pair out of service (maintenance, re-taking the checkpoint) — no reset is dispatched and its
 * routing is closed until released. The hold is written on the pair's record through its ETag
 * (so it voids a reconcile's claim in flight), then a reconcile is queued to act on it.
 */
import { z } from "zod";
import type { LabConfig } from "../lab/config.js";
import { newPairRecord, type PairEvent, type PairRecord } from "../lab/pair-record.js";
import type { Logger } from "../logger.js";
import type { ReconcileQueue } from "../storage/queue.js";
import type { PairStore } from "../storage/tables.js";
import { updatePair } from "../storage/update-pair.js";
import { refuse, unavailable, type JsonResponse } from "../triggers/http.js";

export interface HoldRuntime {
  config: Pick<LabConfig, "pairs">;
  store: PairStore;
  clock: () => Date;
  queue: Pick<ReconcileQueue, "send">;
}

/** Largest hold body read; a reason is a sentence. */
export const MAX_HOLD_BODY_BYTES = 16 * 1024;

const HoldBodySchema = z.object({
  reason: z.string().trim().min(1, "say why the pair is held").max(500, "at most 500 characters"),
});

export interface HoldRequest {
  pairId: string;
  /** The signed-in admin (Easy Auth's x-ms-client-principal-name), if any. */
  principal: string | undefined;
}

/** The pair as /api/pairs shows it. */
const view = (record: PairRecord) => {
  const { pairId, ...fields } = record;
  return { id: pairId, ...fields };
};

export async function holdPair(runtime: HoldRuntime, request: HoldRequest & { body: string }, logger: Logger): Promise<JsonResponse> {
  const pairId = configuredId(runtime, request.pairId);
  if (pairId === null) return unknownPair(runtime, request.pairId);
  let json: unknown;
  try {
    json = JSON.parse(request.body);
  } catch {
    return refuse(400, 'The body must be JSON: { "reason": "why the pair is held" }.');
  }
  const parsed = HoldBodySchema.safeParse(json);
  if (!parsed.success) return refuse(400, `"reason" is required: ${parsed.error.issues.map((i) => i.message).join("; ")}.`);
  const by = who(request.principal);
  const { reason } = parsed.data;
  return write(runtime, pairId, logger, (r, now) =>
    r.holdBy === by && r.holdReason === reason ? null : { record: { ...r, holdBy: by, holdReason: reason, holdSince: r.holdSince ?? now }, event: `held by ${by}: ${reason}` },
  );
}

export async function releasePair(runtime: HoldRuntime, request: HoldRequest, logger: Logger): Promise<JsonResponse> {
  const pairId = configuredId(runtime, request.pairId);
  if (pairId === null) return unknownPair(runtime, request.pairId);
  const by = who(request.principal);
  const now = runtime.clock().toISOString();
  // A pair closed by its hold is closed from now on for lab-reset's reasons: the routing alert's
  // count starts at the release, not at the hold (shared/lab/routing-alert.ts).
  return write(runtime, pairId, logger, (r) =>
    r.holdBy === null
      ? null
      : {
          record: { ...r, holdBy: null, holdReason: null, holdSince: null, ...(r.routing === "closed" ? { routingSince: now } : {}) },
          event: `released by ${by} (held by ${r.holdBy} since ${r.holdSince ?? "?"}: ${r.holdReason ?? ""})`,
        },
  );
}

const who = (principal: string | undefined) => (principal && principal.trim() !== "" ? principal.trim().slice(0, 200) : "admin");

/** The pair's id as the config spells it (ids are matched case-insensitively, as the other pair routes do). */
const configuredId = (runtime: HoldRuntime, id: string) => runtime.config.pairs.find((p) => p.id.toLowerCase() === id.toLowerCase())?.id ?? null;

function unknownPair(runtime: HoldRuntime, pairId: string): JsonResponse {
  return refuse(404, `No pair ${JSON.stringify(pairId)} in the lab config; pairs: ${runtime.config.pairs.map((p) => p.id).join(", ")}.`);
}

type Change = (record: PairRecord, now: string) => { record: PairRecord; event: string } | null;

/** Applies `change` to the pair's record (through updatePair), then queues a reconcile, changed or not. */
async function write(runtime: HoldRuntime, pairId: string, logger: Logger, change: Change): Promise<JsonResponse> {
  try {
    // What the change last saw and said, for the answer (`as`: TypeScript does not see the closure assign them).
    let before = null as PairRecord | null;
    let said = "";
    const update = await updatePair({ store: runtime.store, logger }, pairId, (current) => {
      const now = runtime.clock().toISOString();
      before = current?.record ?? newPairRecord(pairId, runtime.clock());
      const changed = change(before, now);
      if (changed === null) return null;
      said = changed.event;
      const record = { ...changed.record, updatedAt: now };
      return { record, events: [holdEvent(record, said)] };
    });
    if (!update.written && update.conflict) return { ...refuse(503, `pair ${pairId} kept changing under reconciles; retry.`), headers: { "retry-after": "5" } };
    if (update.written) logger.info(`pair ${pairId}: ${said}`);
    // The reconcile closes routing for a held pair, and decides a released one as usual; an
    // unchanged pair is queued again too, so a retry after a failed send still reaches the reconcile.
    await runtime.queue.send({ trigger: "admin" });
    return { status: 200, body: { pair: view(update.written ? update.record : before!), changed: update.written, reconcile: "queued" } };
  } catch (error) {
    return unavailable(error, logger, "The hold may not be recorded; retry (holding or releasing twice is harmless).");
  }
}

const holdEvent = (record: PairRecord, reason: string): PairEvent => ({
  pairId: record.pairId,
  at: record.updatedAt,
  kind: "hold",
  trigger: "admin",
  from: record.state,
  to: record.state,
  reason,
  resetRequestId: record.resetRequestId,
  resetRunId: record.resetRunId,
});
