/**
 * What one reconcile did, pair by pair, and the errors it met: the result callers and the
 * summary log line are made from it.
 */
import type { Pair } from "../lab/config.js";
import type { Decision, Outcome } from "../lab/decide.js";
import type { PairRecord, Trigger } from "../lab/pair-record.js";
import { alert, type Logger } from "../logger.js";

export interface PairResult {
  id: string;
  state: PairRecord["state"];
  decision: Decision;
  jobSinceReset: boolean;
  resetRequestId: string | null;
  resetRunId: number | null;
  lastError: string | null;
  /** Set when this pair could not be handled (a Table or GitHub call failed). */
  error?: string;
}

export interface ReconcileResult {
  trigger: Trigger;
  /** False when any fact or write failed: nothing unsafe was done, but the caller should retry. */
  ok: boolean;
  errors: string[];
  pairs: PairResult[];
  dispatches: number;
  githubRequests: number;
  /** Of those, answered 304 Not Modified (free of rate limit). */
  notModified: number;
  rateLimitRemaining: number | null;
  durationMs: number;
  /** When a look is due with no trigger to wake it (shared/lab/looks.ts); null when none is. */
  nextLookAt: string | null;
}

export class Tally {
  readonly errors: string[] = [];
  readonly results = new Map<string, PairResult>();
  /** Each pair's record as this reconcile last decided or wrote it. */
  readonly records = new Map<string, PairRecord>();
  dispatches = 0;

  constructor(private readonly logger: Logger) {}

  /** Records the pair's outcome; failures and give-ups are logged as alerts. */
  note(pair: Pair, outcome: Outcome, error?: string): void {
    const r = outcome.record;
    this.records.set(pair.id, r);
    this.results.set(pair.id, {
      id: pair.id,
      state: r.state,
      decision: outcome.decision,
      jobSinceReset: r.jobSinceReset,
      resetRequestId: r.resetRequestId,
      resetRunId: r.resetRunId,
      lastError: r.lastError,
      ...(error ? { error } : {}),
    });
    if (error) this.errors.push(`pair ${pair.id}: ${error}`);
    if (outcome.decision === "gave-up" && outcome.changed) alert(this.logger, "pair-gave-up", `pair ${pair.id}: ${r.reason}`);
    else if (outcome.decision === "reset-failed" && r.attempts >= 2) alert(this.logger, "reset-failed-twice", `pair ${pair.id}: ${r.reason}`);
    else if (outcome.decision === "reset-failed" || outcome.decision === "gave-up") this.logger.error(`pair ${pair.id}: ${r.reason}`);
  }
}
