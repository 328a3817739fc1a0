/**
 * The queue-triggered reconcile. A burst of "look now" messages costs about one reconcile:
 * - a message already covered (a reconcile that ended ok began after it was inserted) is done;
 * - on one instance, one reconcile runs at a time, and the next serves every message that
 *   arrived meanwhile;
 * - a reconcile that failed (GitHub or storage unreachable, and the like) looks again later:
 *   one retry message with a growing delay, for as long as it keeps failing, so an outage of any
 *   length ends in a reconcile minutes after recovery; the host's own retries (one minute apart,
 *   then the poison queue) are left for messages that cannot be taken at all.
 * A timer message is covered only by a timer reconcile: freshness and the backstop run only then.
 */
import type { Trigger } from "../lab/pair-record.js";
import { alert, type Logger } from "../logger.js";
import { FACT_WINDOW_MS, reconcile, type ReconcileDeps, type ReconcileResult } from "./reconcile.js";
import type { CoverageStore, Coverage } from "../storage/coverage.js";
import { later } from "../storage/coverage.js";
import { decodeMessage, type QueuedMessage, type ReconcileQueue } from "../storage/queue.js";

/** A delayed queue message stays hidden at most 7 days (Azure Storage); a look before the due time queues the next one. */
const MAX_LOOK_DELAY_SECONDS = 7 * 24 * 3600 - 60;
/** The Functions host's maxDequeueCount (host.json): the try after which a message is poison. */
export const MAX_DEQUEUE_COUNT = 5;
/**
 * Delay before each retry of a failed reconcile, then the last one for as long as it fails. Short
 * enough that the lab is reconciled within 5 minutes of GitHub or storage coming back; a failing
 * reconcile costs a few requests, and one chain of retries serves every message (see retryLater).
 */
export const RETRY_DELAYS_MINUTES = [1, 2, 4] as const;
export const retryDelayMinutes = (attempt: number) => RETRY_DELAYS_MINUTES[Math.min(attempt, RETRY_DELAYS_MINUTES.length) - 1]!;
/** Facts are kept a while past the window the reconcile reads, then pruned by timer reconciles. */
const FACT_RETENTION_MS = 2 * FACT_WINDOW_MS;

export type ServeOutcome =
  | { served: "covered" }
  | { served: "reconciled"; result: ReconcileResult }
  /** The reconcile failed; a retry message (this one's, or one already queued) looks again at `dueAt`. */
  | { served: "retry-later"; attempt: number; dueAt: string; queued: boolean };

interface Waiter {
  queued: QueuedMessage;
  resolve: (outcome: ServeOutcome) => void;
  reject: (error: unknown) => void;
}

export interface WorkerDeps extends ReconcileDeps {
  coverage: CoverageStore;
  /** Its `now()` is storage's clock, the one that stamps insertion times. */
  queue: Pick<ReconcileQueue, "now" | "send">;
}

const isCovered = (queued: QueuedMessage, coverage: Coverage) => {
  const upTo = queued.message.trigger === "timer" ? coverage.timer : coverage.events;
  // A look queued for later is covered only by a reconcile begun after it was due.
  const from = later(queued.insertedAt.toISOString(), queued.message.dueAt ?? null)!;
  // Strictly before: storage stamps insertion times to the second, and a message of the same
  // second may have come after the reconcile read the facts.
  return upTo !== null && from < upTo;
};

/** The trigger a batch reconciles as: a timer's rules if any message is the timer's. */
const batchTrigger = (batch: Waiter[]): Trigger => (batch.some((w) => w.queued.message.trigger === "timer") ? "timer" : batch.at(-1)!.queued.message.trigger);

type Kind = "events" | "timer";
const kindOf = (queued: QueuedMessage): Kind => (queued.message.trigger === "timer" ? "timer" : "events");

export class ReconcileWorker {
  private waiting: Waiter[] = [];
  private running: Promise<void> | null = null;
  /** Reconciles begun on this instance; the number of the latest that ended ok, per kind. */
  private begun = 0;
  private readonly okUpTo: Record<Kind, number> = { events: 0, timer: 0 };
  private current: { number: number; timer: boolean; outcome: Promise<ReconcileResult | null> } | null = null;
  /** Reconciles this instance ran (the burst benchmark reports it). */
  reconciles = 0;
  /** The due time of the last look this instance queued. */
  private lookQueuedFor: string | null = null;
  /** The last reconcile of this instance that ended ok, and the look it asked for. */
  private lastOk: { endedAt: string; nextLookAt: string | null } | null = null;

  constructor(private readonly deps: () => WorkerDeps) {}

  async serve(queued: QueuedMessage, logger: Logger): Promise<ServeOutcome> {
    const deps = { ...this.deps(), logger };
    // A reconcile begun after this message was handed over read facts recorded before it was inserted.
    const entered = this.begun;
    const kind = kindOf(queued);
    try {
      if (await this.superseded(deps, queued)) return { served: "covered" };
      // Unreadable coverage (Table Storage down) is "not covered": the reconcile runs, and its failure takes the retry path.
      const coverage = await deps.coverage.read().catch(() => null);
      if (coverage !== null && isCovered(queued, coverage)) return { served: "covered" };
      if (this.okUpTo[kind] > entered) return { served: "covered" };
      const running = this.current;
      if (running && running.number > entered && (kind === "events" || running.timer)) {
        const result = await running.outcome;
        if (result) return { served: "reconciled", result };
      }
      return await new Promise<ServeOutcome>((resolve, reject) => {
        this.waiting.push({ queued, resolve, reject });
        this.running ??= this.drain(deps);
      });
    } catch (error) {
      // Only when not even a retry could be queued (storage unreachable): the host's retries take over.
      const last = queued.dequeueCount >= MAX_DEQUEUE_COUNT;
      const what = `reconcile for a ${queued.message.trigger} message (dequeue ${queued.dequeueCount} of ${MAX_DEQUEUE_COUNT})`;
      if (last) alert(logger, "poison-message", `${what} failed and no retry could be queued; the message goes to the poison queue: ${(error as Error).message}`);
      else alert(logger, "reconcile-failed", `${what} failed and no retry could be queued; the queue retries it in a minute: ${(error as Error).message}`);
      throw error;
    }
  }

  /**
   * A due look whose reason is gone: a reconcile of this instance, ended ok after the look was
   * queued, asked for no look at that moment (the job's end came, the reset was followed). Its own
   * look, if any, is queued instead.
   */
  private async superseded(deps: WorkerDeps, queued: QueuedMessage): Promise<boolean> {
    const due = queued.message.dueAt;
    const last = this.lastOk;
    if (due === undefined || queued.message.firm === true || last === null || last.endedAt <= queued.insertedAt.toISOString()) return false;
    if (last.nextLookAt !== null && last.nextLookAt <= due) return false;
    if (this.lookQueuedFor === due) this.lookQueuedFor = null;
    await this.lookLater(deps, last.nextLookAt);
    return true;
  }

  private async drain(deps: WorkerDeps): Promise<void> {
    try {
      while (this.waiting.length > 0) {
        const batch = this.waiting.splice(0);
        await this.runBatch(deps, batch);
      }
    } finally {
      this.running = null;
    }
  }

  private async runBatch(deps: WorkerDeps, batch: Waiter[]): Promise<void> {
    const trigger = batchTrigger(batch);
    const number = ++this.begun;
    let settle: (result: ReconcileResult | null) => void = () => undefined;
    this.current = { number, timer: trigger === "timer", outcome: new Promise((resolve) => (settle = resolve)) };
    try {
      this.reconciles++;
      // Storage's clock just before the reconcile reads: every message inserted in an earlier second is covered.
      const readFrom = await deps.queue.now().catch(() => null);
      const result = await reconcile(deps, trigger);
      if (!result.ok) throw new Error(`the reconcile was incomplete: ${result.errors.join("; ")}`);
      this.okUpTo.events = Math.max(this.okUpTo.events, number);
      if (trigger === "timer") this.okUpTo.timer = Math.max(this.okUpTo.timer, number);
      settle(result);
      if (readFrom) await this.advanceCoverage(deps, trigger, readFrom);
      this.lastOk = { endedAt: deps.clock().toISOString(), nextLookAt: result.nextLookAt };
      await this.lookLater(deps, result.nextLookAt);
      if (trigger === "timer") await this.prune(deps);
      for (const w of batch) w.resolve({ served: "reconciled", result });
    } catch (error) {
      settle(null);
      try {
        const outcome = await this.retryLater(deps, batch, trigger, error as Error);
        for (const w of batch) w.resolve(outcome);
      } catch (sendError) {
        for (const w of batch) w.reject(sendError);
      }
    } finally {
      if (this.current?.number === number) this.current = null;
    }
  }

  /**
   * The look the reconcile asked for (shared/lab/looks.ts), queued hidden until it is due; not
   * again while this instance has one queued for that moment or sooner.
   */
  private async lookLater(deps: WorkerDeps, dueAt: string | null): Promise<void> {
    const now = deps.clock().toISOString();
    if (dueAt === null || (this.lookQueuedFor !== null && this.lookQueuedFor > now && this.lookQueuedFor <= dueAt)) return;
    const delaySeconds = Math.min(Math.max(1, Math.ceil((Date.parse(dueAt) - Date.parse(now)) / 1000)), MAX_LOOK_DELAY_SECONDS);
    try {
      await deps.queue.send({ trigger: "webhook", dueAt }, { delaySeconds });
      this.lookQueuedFor = dueAt;
    } catch (error) {
      deps.logger.warn(`look due at ${dueAt} not queued (the next trigger looks anyway, at the latest the timer): ${(error as Error).message}`);
    }
  }

  /**
   * One retry message serves every message of a failed batch: their facts are recorded, and any
   * later reconcile reads them. If a retry is already queued and not yet due (another batch's),
   * this batch relies on it, so an outage with deliveries arriving keeps one chain of retries.
   */
  private async retryLater(deps: WorkerDeps, batch: Waiter[], trigger: Trigger, error: Error): Promise<ServeOutcome> {
    const attempt = 1 + Math.max(0, ...batch.map((w) => w.queued.message.retry?.attempt ?? 0));
    // With Table Storage down the retry already queued is unknown: queue one (a second chain at worst, never none).
    const control = await deps.coverage.read().catch(() => null);
    const pending = control === null ? null : trigger === "timer" ? control.timerRetryDue : later(control.eventsRetryDue, control.timerRetryDue);
    const now = deps.clock();
    const ownRetry = batch.some((w) => w.queued.message.retry?.dueAt === pending);
    const what = `reconcile (${trigger}, ${batch.length} message${batch.length === 1 ? "" : "s"}, try ${attempt}) failed: ${error.message}`;
    if (pending !== null && pending > now.toISOString() && !ownRetry) {
      alert(deps.logger, "reconcile-failed", `${what}; the retry queued for ${pending} looks again`);
      return { served: "retry-later", attempt, dueAt: pending, queued: false };
    }
    const minutes = retryDelayMinutes(attempt);
    const dueAt = new Date(now.getTime() + minutes * 60_000).toISOString();
    await deps.queue.send({ trigger, retry: { attempt, dueAt } }, { delaySeconds: minutes * 60 });
    await deps.coverage.advance(trigger === "timer" ? { timerRetryDue: dueAt } : { eventsRetryDue: dueAt }).catch((e: unknown) => deps.logger.warn(`retry time not recorded (another failure may queue a retry of its own): ${(e as Error).message}`));
    alert(deps.logger, "reconcile-failed", `${what}; looking again in ${minutes} min (at ${dueAt})`);
    return { served: "retry-later", attempt, dueAt, queued: true };
  }

  private async advanceCoverage(deps: WorkerDeps, trigger: Trigger, readFrom: Date): Promise<void> {
    const upTo = readFrom.toISOString();
    const covered: Partial<Coverage> = { events: upTo, timer: trigger === "timer" ? upTo : null };
    await deps.coverage.advance(covered).catch((error: unknown) => deps.logger.warn(`reconcile coverage not recorded (later messages reconcile again): ${(error as Error).message}`));
  }

  private async prune(deps: WorkerDeps): Promise<void> {
    try {
      await deps.facts.prune(new Date(deps.clock().getTime() - FACT_RETENTION_MS));
    } catch (error) {
      deps.logger.warn(`old job facts not pruned: ${(error as Error).message}`);
    }
    try {
      await deps.history?.prune(new Date(deps.clock().getTime() - deps.config.historyDays * 86_400_000));
    } catch (error) {
      deps.logger.warn(`history older than ${deps.config.historyDays} days not pruned: ${(error as Error).message}`);
    }
  }
}

/**
 * The queue trigger's entry as a message, with storage's insertion time and the try. An entry
 * that is not a reconcile message can never succeed: the host's tries end in the poison queue.
 */
export function queuedFrom(entry: unknown, meta: Record<string, unknown>, logger: Logger): QueuedMessage {
  const dequeueCount = Number(meta.dequeueCount ?? 1);
  try {
    return { message: decodeMessage(entry), insertedAt: new Date(String(meta.insertionTime)), dequeueCount };
  } catch (error) {
    const what = `queue message ${JSON.stringify(typeof meta.id === "string" ? meta.id : "?")} is not a reconcile message (${(error as Error).message.split("\n")[0]})`;
    if (dequeueCount >= MAX_DEQUEUE_COUNT) alert(logger, "poison-message", `${what}; it goes to the poison queue`);
    throw new Error(what);
  }
}
