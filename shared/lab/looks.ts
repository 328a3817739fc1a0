/**
 * When the reconcile must look again with no trigger to wake it: a look is due only for a reason
 * no delivery or call announces. Pure: no I/O, no clock.
 * - a reset in flight, at its time limit: the run may never end (and so never report), and only
 *   a look judges it timed out;
 * - a recorded job start whose end is not recorded, when its hold runs out: the pair is busy only
 *   on the start's word until then, and after it GitHub's own view decides;
 * - a VM just put back in routing, once its busy flag would show a job it took (the webhook
 *   queues the same look for a job queued while routing is open).
 * Everything else a decision waits for arrives as a delivery or a call (a lost delivery is
 * redelivered by the redelivery timer), and the 6-hour timer backs them all.
 */
import type { DecideInput } from "./decide.js";
import type { PairRecord } from "./pair-record.js";

/** After the due moment, so that the look sees it passed (clocks of instances and storage differ by a little). */
const AFTER_MS = 5_000;

/**
 * GitHub's busy flag turns a while after a job starts: a look this long after a VM could have
 * taken a job sees the flag even when the job's `in_progress` delivery is late or failed.
 */
export const BUSY_FLAG_LOOK_SECONDS = 90;

export interface LookFacts {
  record: Pick<PairRecord, "state" | "resetDispatchedAt" | "routing" | "routingSince"> | null;
  jobStart?: DecideInput["jobStart"];
  now: Date;
  resetTimeoutMinutes: number;
}

export function nextLookFor(facts: LookFacts): Date | null {
  const due: number[] = [];
  const { record, now } = facts;
  if (record?.state === "resetting" && record.resetDispatchedAt !== null) due.push(Date.parse(record.resetDispatchedAt) + facts.resetTimeoutMinutes * 60_000);
  const heldUntil = facts.jobStart?.heldUntil ?? null;
  if (heldUntil !== null) due.push(Date.parse(heldUntil));
  // Routing just opened: a queued job takes the VM within seconds; if its start is not recorded by
  // then (a late or failed delivery), the busy flag says so.
  const opened = record?.routing === "open" && record.routingSince !== null ? Date.parse(record.routingSince) : NaN;
  if (Number.isFinite(opened) && !(facts.jobStart && Date.parse(facts.jobStart.at) >= opened)) due.push(opened + BUSY_FLAG_LOOK_SECONDS * 1000);
  // A moment already passed was this look's to judge (a hold run out, a time limit reached).
  const later = due.filter((t) => Number.isFinite(t) && t > now.getTime()).map((t) => t + AFTER_MS);
  return later.length === 0 ? null : new Date(Math.min(...later));
}

/** The earliest of several due looks. */
export const earliest = (...times: (Date | null)[]): Date | null => times.reduce<Date | null>((a, t) => (t === null || (a !== null && a <= t) ? a : t), null);
