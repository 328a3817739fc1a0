/**
 * The timer `redeliverWebhooks`: no lost event. GitHub does not redeliver a webhook delivery that
 * failed (a 503, a cold start past its 10-second timeout, the app stopped), so a job's start or end
 * would be lost; this timer reads the App's delivery log and asks GitHub to redeliver each failed
 * `workflow_job` delivery the app records, once. The redelivery reaches the webhook like any
 * delivery: recorded as a fact, a reconcile queued.
 */
import type { HookDeliveries, HookDelivery } from "../github/deliveries.js";
import type { Logger } from "../logger.js";
import type { RedeliveryLedger } from "../storage/deliveries.js";
import { isRecordedAction } from "./webhook.js";

/** The first look reaches back this far: facts older than a day are the records' already. */
const FIRST_LOOK_MS = 24 * 3_600_000;
/** Each look reaches back past the last one's newest delivery, for attempts logged late. */
export const LOOK_OVERLAP_MS = 10 * 60_000;
/** GitHub keeps deliveries for 3 days; nothing older can be redelivered. */
const DELIVERIES_KEPT_MS = 3 * 24 * 3_600_000;

export interface RedeliverRuntime {
  /** null with a plain token: the deliveries API takes only the App's JWT. */
  deliveries: HookDeliveries | null;
  ledger: RedeliveryLedger;
  clock: () => Date;
}

export interface RedeliverSummary {
  looked: number;
  pages: number;
  /** Failed workflow_job deliveries (by GUID) with no successful attempt. */
  failed: number;
  redelivered: number;
  /** Failed, but redelivered before (or by another instance): not asked again. */
  alreadyAsked: number;
  errors: string[];
}

const succeeded = (d: HookDelivery) => d.status_code >= 200 && d.status_code < 300;
const concernsTheLab = (d: HookDelivery) => d.event === "workflow_job" && isRecordedAction(d.action);

/** Each GUID's newest failed attempt, for GUIDs the app records and no attempt of which succeeded. */
function failedDeliveries(deliveries: HookDelivery[]): HookDelivery[] {
  const byGuid = new Map<string, HookDelivery[]>();
  for (const d of deliveries) byGuid.set(d.guid, [...(byGuid.get(d.guid) ?? []), d]);
  // Oldest first: a job's start reaches the app before its end, as GitHub sent them.
  return [...byGuid.values()]
    .filter((attempts) => concernsTheLab(attempts[0]!) && !attempts.some(succeeded))
    .map((attempts) => attempts.reduce((a, d) => (d.id > a.id ? d : a)))
    .sort((a, b) => a.delivered_at.localeCompare(b.delivered_at) || a.id - b.id);
}

export async function redeliverWebhooks(runtime: RedeliverRuntime, logger: Logger): Promise<RedeliverSummary | null> {
  if (runtime.deliveries === null) return null;
  const now = runtime.clock();
  const upTo = await runtime.ledger.lookedUpTo();
  const since = Math.max(upTo === null ? now.getTime() - FIRST_LOOK_MS : Date.parse(upTo) - LOOK_OVERLAP_MS, now.getTime() - DELIVERIES_KEPT_MS);
  const { deliveries, pages } = await runtime.deliveries.listSince(new Date(since));
  const failed = failedDeliveries(deliveries);
  const summary: RedeliverSummary = { looked: deliveries.length, pages, failed: failed.length, redelivered: 0, alreadyAsked: 0, errors: [] };
  let retryFrom: string | null = null;
  for (const delivery of failed) {
    if (!(await runtime.ledger.claim(delivery.guid, delivery.id, now))) {
      summary.alreadyAsked++;
      continue;
    }
    try {
      await runtime.deliveries.redeliver(delivery.id);
      await runtime.ledger.sent(delivery.guid);
      summary.redelivered++;
    } catch (error) {
      const message = (error as Error).message;
      summary.errors.push(`${delivery.guid}: ${message}`);
      retryFrom ??= delivery.delivered_at;
      await runtime.ledger.failed(delivery.guid, message);
    }
  }
  // Attempts older than the overlap are in the log by now: a quiet spell moves the cursor too, so
  // the next look does not read the last burst again. A request that failed keeps the cursor
  // before its delivery, so the next look lists it again and asks once more.
  const settled = new Date(now.getTime() - LOOK_OVERLAP_MS).toISOString();
  const newest = deliveries.reduce((a, d) => (d.delivered_at > a ? d.delivered_at : a), settled);
  await runtime.ledger.advance(retryFrom !== null && retryFrom < newest ? retryFrom : newest);
  await runtime.ledger.prune(new Date(now.getTime() - DELIVERIES_KEPT_MS)).catch((error: unknown) => logger.warn(`old redeliveries not pruned: ${(error as Error).message}`));
  const line = `redeliver ${JSON.stringify({ ...summary, errors: summary.errors.length, since: new Date(since).toISOString() })}`;
  if (summary.errors.length > 0) logger.error(`${line}; failed requests (tried again at the next look): ${summary.errors.join("; ")}`);
  else logger.info(line);
  return summary;
}
