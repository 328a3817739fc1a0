/**
 * The queue trigger over a memory queue, for the simulator and tests: the same worker the
 * Functions host calls, with the host's rules (a failed message is retried after the visibility
 * timeout, and dropped to the poison list after maxDequeueCount tries).
 */
import { silentLogger, type Logger } from "../logger.js";
import { MAX_DEQUEUE_COUNT, type ServeOutcome } from "../reconcile/worker.js";
import type { Runtime } from "../runtime.js";
import type { MemoryReconcileQueue, QueuedMessage } from "../storage/queue.js";

export interface MemoryQueueTriggerOptions {
  logger?: Logger;
  /** Schedules a later try (the host's visibility timeout); default: back on the queue when `settle` ends. */
  retryLater?: (retry: () => void) => void;
}

export class MemoryQueueTrigger {
  readonly poison: QueuedMessage[] = [];
  readonly outcomes: ServeOutcome[] = [];
  private readonly failed: QueuedMessage[] = [];

  constructor(
    private readonly runtime: Runtime,
    readonly queue: MemoryReconcileQueue,
    private readonly options: MemoryQueueTriggerOptions = {},
  ) {}

  /** Serves every waiting message, concurrently as the host would; resolves when all are done. */
  async drain(): Promise<void> {
    const taken = this.queue.takeAll();
    await Promise.all(taken.map((queued) => this.serveOne(queued)));
  }

  /** Serves each waiting message once; a failed one goes back on the queue for a later try. */
  async settle(): Promise<void> {
    while (this.queue.length > 0) await this.drain();
    for (const queued of this.failed.splice(0)) this.queue.putBack(queued);
  }

  private async serveOne(queued: QueuedMessage): Promise<void> {
    try {
      this.outcomes.push(await this.runtime.worker.serve(queued, this.options.logger ?? silentLogger));
    } catch {
      if (queued.dequeueCount >= MAX_DEQUEUE_COUNT) this.poison.push(queued);
      else if (this.options.retryLater) this.options.retryLater(() => this.queue.putBack(queued));
      else this.failed.push(queued);
    }
  }
}
