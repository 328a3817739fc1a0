import { z } from "zod";

export const PairStateSchema = z.enum(["clean", "busy", "dirty", "resetting", "failed", "offline"]);
export type PairState = z.infer<typeof PairStateSchema>;

const isoTime = z.iso.datetime({ offset: true });

/** What the app remembers about one pair between triggers (one Table Storage entity). */
export const PairRecordSchema = z.object({
  pairId: z.string(),
  state: PairStateSchema,
  /** A job ran on the pair's VM since its last completed reset. */
  jobSinceReset: z.boolean(),
  lastJobRunId: z.number().int().nullable(),
  /** When the last job on the VM was seen running or reported finished. */
  lastJobAt: isoTime.nullable(),
  /** Unique id of the latest reset request, passed to the reset workflow as `request_id`. */
  resetRequestId: z.string().nullable(),
  resetRunId: z.number().int().nullable(),
  resetDispatchedAt: isoTime.nullable(),
  resetCompletedAt: isoTime.nullable(),
  /** Reset attempts since the last successful reset. */
  attempts: z.number().int().min(0),
  /** A failed pair is not retried before this time (backoff). */
  retryAfter: isoTime.nullable(),
  lastError: z.string().nullable(),
  /**
   * Whether the VM runner carries the routing labels (perf jobs can reach it): `open` only while
   * the pair is clean, idle and not held. null until routing labels are configured and first set.
   */
  routing: z.enum(["open", "closed"]).nullable(),
  routingSince: isoTime.nullable(),
  /** The last label call that failed (e.g. a missing permission); the pair is still reset. */
  routingError: z.string().nullable(),
  /** An admin asked for a reset now (POST /api/pairs/{id}/reset): honoured once idle, whatever the trigger; cleared by the dispatch. */
  resetRequestedAt: isoTime.nullable(),
  resetRequestedBy: z.string().nullable(),
  /** An admin's hold: no resets and routing closed until released. */
  holdBy: z.string().nullable(),
  holdReason: z.string().nullable(),
  holdSince: isoTime.nullable(),
  /** Why the pair is in its state, in words. */
  reason: z.string(),
  updatedAt: isoTime,
});
export type PairRecord = z.infer<typeof PairRecordSchema>;

/**
 * What started a reconcile or a change. A webhook delivery decides as job-completed does (any
 * non-timer trigger is not periodic); `admin` is an admin's call (a hold or its release).
 */
export const TriggerSchema = z.enum(["timer", "job-completed", "webhook", "admin"]);
export type Trigger = z.infer<typeof TriggerSchema>;

/**
 * An append-only entry, with what caused it: a state change, a dispatch, a change of the VM
 * runner's routing labels (`routing`; from/to are the pair's state then), or a hold placed or released.
 */
export const PairEventSchema = z.object({
  pairId: z.string(),
  at: isoTime,
  kind: z.enum(["state", "dispatch", "routing", "hold"]),
  trigger: TriggerSchema,
  from: PairStateSchema.nullable(),
  to: PairStateSchema,
  reason: z.string(),
  resetRequestId: z.string().nullable(),
  resetRunId: z.number().int().nullable(),
  /** The record's routing and hold after the change (stamped by updatePair; absent on older events). */
  routing: z.enum(["open", "closed"]).nullable().optional(),
  held: z.boolean().nullable().optional(),
});
export type PairEvent = z.infer<typeof PairEventSchema>;

/** A pair the store has never seen counts as dirty: nothing says it was reset. */
export function newPairRecord(pairId: string, now: Date): PairRecord {
  return {
    pairId,
    state: "dirty",
    jobSinceReset: true,
    lastJobRunId: null,
    lastJobAt: null,
    resetRequestId: null,
    resetRunId: null,
    resetDispatchedAt: null,
    resetCompletedAt: null,
    attempts: 0,
    retryAfter: null,
    lastError: null,
    routing: null,
    routingSince: null,
    routingError: null,
    resetRequestedAt: null,
    resetRequestedBy: null,
    holdBy: null,
    holdReason: null,
    holdSince: null,
    reason: "no reset recorded yet",
    updatedAt: now.toISOString(),
  };
}
