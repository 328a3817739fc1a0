/**
 * The timer (every 6 hours by default) only says "look now, with the timer's rules": freshness
 * and the lost-call backstop run in the reconcile its message starts. The queue retries that
 * reconcile if it fails, which a failed timer run would not be.
 */
import type { Logger } from "../logger.js";
import type { ReconcileQueue } from "../storage/queue.js";

export interface TimerRuntime {
  queue: Pick<ReconcileQueue, "send">;
}

export async function scheduledReset(runtime: TimerRuntime, logger: Logger): Promise<void> {
  await runtime.queue.send({ trigger: "timer" });
  logger.info("scheduledReset: a timer reconcile is queued");
}
