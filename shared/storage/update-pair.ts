/**
 * A change to a pair's record: read it, apply a pure change, write it back through its ETag, and
 * on a conflict (another writer came first) read and apply again, up to MAX_CONFLICT_RETRIES times.
 * The change's events are appended after the write; a lost history line is logged, never undoes
 * the write (the record is the truth). Every writer of a pair goes through here: the reconcile's
 * decisions, claims and routing (shared/reconcile/), an admin's reset request, hold and release.
 */
import type { PairEvent, PairRecord } from "../lab/pair-record.js";
import type { Logger } from "../logger.js";
import { StoreConflictError, type PairStore, type StoredPair } from "./tables.js";

/** Conflicts retried before a writer gives up (the next reconcile or the caller's retry tries again). */
export const MAX_CONFLICT_RETRIES = 5;

/** The next record and the events that say why; null: nothing to write (the change may have said why in its closure). */
export type PairChange = (current: StoredPair | null, attempt: number) => { record: PairRecord; events?: PairEvent[] } | null;

export type PairUpdate =
  /** Written: the record and its new ETag, and the record it replaced. */
  | { written: true; record: PairRecord; etag: string; before: StoredPair | null }
  /** The change asked for no write, on this record. */
  | { written: false; current: StoredPair | null; conflict?: undefined }
  /** Every attempt met another writer's change. */
  | { written: false; current: StoredPair | null; conflict: true };

export interface UpdatePairDeps {
  store: PairStore;
  logger: Pick<Logger, "error">;
}

/**
 * Applies `change` to pair `pairId`. `read` is the record already in hand (a reconcile's listing),
 * used for the first attempt instead of a read. Store failures other than a conflict are thrown.
 */
export async function updatePair(deps: UpdatePairDeps, pairId: string, change: PairChange, read?: StoredPair | null): Promise<PairUpdate> {
  let current = read === undefined ? await deps.store.getPair(pairId) : read;
  for (let attempt = 0; ; attempt++) {
    const next = change(current, attempt);
    if (next === null) return { written: false, current };
    try {
      const etag = current === null ? await deps.store.createPair(next.record) : await deps.store.replacePair(next.record, current.etag);
      // Each event carries the routing and hold it left, so history can say when a pair was routable.
      const stamp = { routing: next.record.routing, held: next.record.holdBy !== null };
      await appendEvents(deps, pairId, (next.events ?? []).map((e) => ({ ...e, ...stamp })));
      return { written: true, record: next.record, etag, before: current };
    } catch (error) {
      if (!(error instanceof StoreConflictError)) throw error;
      if (attempt >= MAX_CONFLICT_RETRIES) return { written: false, current, conflict: true };
      current = await deps.store.getPair(pairId);
    }
  }
}

/** Appends a pair's history lines; a failure is logged and swallowed: the record already says what happened. */
export async function appendEvents(deps: UpdatePairDeps, pairId: string, events: PairEvent[]): Promise<void> {
  if (events.length === 0) return;
  try {
    await deps.store.appendEvents(events);
  } catch (error) {
    deps.logger.error(`pair ${pairId}: ${events.map((e) => e.kind).join(", ")} event not recorded: ${(error as Error).message}`);
  }
}
