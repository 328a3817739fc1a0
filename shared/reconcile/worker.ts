/**
 * The queue-triggered reconcile. A burst of "look now" messages costs about one reconcile:
 * - a message already covered (a reconcile that ended ok began after it was inserted) is done;
 * - on one instance, one reconcile runs at a time, and the next serves every message that
 *   arrived meanwhile;
 * - a reconcile that failed fails its messages, which the host retries after its visibility
 *   timeout, and moves to the poison queue after maxDequeueCount tries.
 * A timer message is covered only by a timer reconcile: freshness and the backstop run only then.
 */
import type { Trigger } from "../lab/pair-record.js";
import { alert, type Logger } from "../logger.js";
import { FACT_WINDOW_MS, reconcile, type ReconcileDeps, type ReconcileResult } from "./reconcile.js";
import type { CoverageStore, Coverage } from "../storage/coverage.js";
import type { QueuedMessage } from "../storage/queue.js";

/** The Functions host's maxDequeueCount (host.json): the try after which a message is poison. */
export const MAX_DEQUEUE_COUNT = 5;
/** Facts are kept a while past the window the reconcile reads, then pruned by timer reconciles. */
const FACT_RETENTION_MS = 2 * FACT_WINDOW_MS;

export type ServeOutcome = { served: "covered" } | { served: "reconciled"; result: ReconcileResult };

interface Waiter {
  queued: QueuedMessage;
  resolve: (outcome: ServeOutcome) => void;
  reject: (error: unknown) => void;
}

export interface WorkerDeps extends ReconcileDeps {
  coverage: CoverageStore;
}

const isCovered = (queued: QueuedMessage, coverage: Coverage) => {
  const upTo = queued.message.trigger === "timer" ? coverage.timer : coverage.events;
  // Strictly before: storage stamps insertion times to the second, and a message of the same
  // second may have come after the reconcile read the facts.
  return upTo !== null && queued.insertedAt.toISOString() < upTo;
};

/** The trigger a batch reconciles as: a timer's rules if any message is the timer's. */
const batchTrigger = (batch: Waiter[]): Trigger => (batch.some((w) => w.queued.message.trigger === "timer") ? "timer" : batch.at(-1)!.queued.message.trigger);

export class ReconcileWorker {
  private waiting: Waiter[] = [];
  private running: Promise<void> | null = null;
  /** Reconciles this instance ran (the burst benchmark reports it). */
  reconciles = 0;

  constructor(private readonly deps: () => WorkerDeps) {}

  async serve(queued: QueuedMessage, logger: Logger): Promise<ServeOutcome> {
    const deps = { ...this.deps(), logger };
    try {
      if (isCovered(queued, await deps.coverage.read())) return { served: "covered" };
      return await new Promise<ServeOutcome>((resolve, reject) => {
        this.waiting.push({ queued, resolve, reject });
        this.running ??= this.drain(deps);
      });
    } catch (error) {
      const last = queued.dequeueCount >= MAX_DEQUEUE_COUNT;
      const what = `reconcile for a ${queued.message.trigger} message (try ${queued.dequeueCount} of ${MAX_DEQUEUE_COUNT})`;
      if (last) alert(logger, "poison-message", `${what} failed; the message goes to the poison queue: ${(error as Error).message}`);
      else alert(logger, "reconcile-failed", `${what} failed; the queue retries it: ${(error as Error).message}`);
      throw error;
    }
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
    const latest = (list: Waiter[]) => list.reduce<string | null>((a, w) => (a === null || w.queued.insertedAt.toISOString() > a ? w.queued.insertedAt.toISOString() : a), null);
    try {
      this.reconciles++;
      const result = await reconcile(deps, trigger);
      if (!result.ok) throw new Error(`the reconcile was incomplete: ${result.errors.join("; ")}`);
      // Every message of the batch was inserted before this reconcile began reading.
      const covered: Coverage = { events: latest(batch), timer: trigger === "timer" ? latest(batch.filter((w) => w.queued.message.trigger === "timer")) : null };
      await deps.coverage.advance(covered).catch((error: unknown) => deps.logger.warn(`reconcile coverage not recorded (later messages reconcile again): ${(error as Error).message}`));
      if (trigger === "timer") await this.prune(deps);
      for (const w of batch) w.resolve({ served: "reconciled", result });
    } catch (error) {
      for (const w of batch) w.reject(error);
    }
  }

  private async prune(deps: WorkerDeps): Promise<void> {
    try {
      await deps.facts.prune(new Date(deps.clock().getTime() - FACT_RETENTION_MS));
    } catch (error) {
      deps.logger.warn(`old job facts not pruned: ${(error as Error).message}`);
    }
  }
}
