/**
 * What the recorded facts say of each pair: the latest job that ended on its VM, the latest that
 * started, and whether that start still holds the pair busy. Facts are mapped to pairs through the
 * runner list of this reconcile's look, so triggers never need GitHub to record one.
 */
import type { Pair } from "../lab/config.js";
import type { DecideInput } from "../lab/decide.js";
import type { FactStore, StoredFact } from "../storage/facts.js";
import { lower } from "./observe.js";

/** Facts older than this are the records' already (a reset has followed, or the backstop's horizon passed). */
export const FACT_WINDOW_MS = 26 * 3_600_000;

/** How long a recorded job start keeps a pair busy without its end being recorded. */
export const BUSY_HOLD_MINUTES = 15;

export type PairJobFacts = Pick<DecideInput, "jobReport" | "jobStart">;

/** Later by `at`; at the same `at` (starts dated by one arrival), by GitHub's own time. */
const isLater = (f: StoredFact["fact"], than: StoredFact["fact"]) => f.at > than.at || (f.at === than.at && (f.githubAt ?? "") > (than.githubAt ?? ""));

export function jobFactsByPair(facts: StoredFact[], pairOfRunner: Map<string, Pair>): Map<string, PairJobFacts> {
  const byPair = new Map<string, StoredFact["fact"][]>();
  for (const { fact } of facts) {
    const pair = pairOfRunner.get(lower(fact.runnerName));
    if (!pair) continue;
    const list = byPair.get(pair.id);
    if (list) list.push(fact);
    else byPair.set(pair.id, [fact]);
  }
  const result = new Map<string, PairJobFacts>();
  for (const [pairId, list] of byPair) {
    const latest = (facts: StoredFact["fact"][]) => facts.reduce<StoredFact["fact"] | undefined>((a, f) => (a === undefined || isLater(f, a) ? f : a), undefined);
    const ends = list.filter((f) => f.phase === "ended");
    const ended = latest(ends);
    const endByJob = new Map(ends.filter((f) => f.jobId !== null).map((f) => [f.jobId, f]));
    // One VM runs one job at a time: a start is over once its own end, or any later end, is recorded.
    const over = (start: StoredFact["fact"]) => (start.jobId !== null && endByJob.has(start.jobId)) || (ended !== undefined && ended.at > start.at);
    // A start delivered after its own end (a redelivery hours later) is dated no later than that
    // end: dated by its arrival, it would look like a job after the reset that followed.
    const endOf = (start: StoredFact["fact"]) => (start.jobId === null ? undefined : endByJob.get(start.jobId));
    const starts = list.filter((f) => f.phase === "started").map((f) => {
      const end = endOf(f);
      return end !== undefined && end.at < f.at ? { ...f, at: end.at } : f;
    });
    // The start that holds the pair is the latest one still open: a late delivery of an older
    // job's start (dated by its arrival) must not hide the job running now.
    const open = latest(starts.filter((f) => !over(f)));
    const started = open ?? latest(starts);
    result.set(pairId, {
      ...(ended ? { jobReport: { runId: ended.runId, at: ended.at } } : {}),
      ...(started ? { jobStart: { runId: started.runId, jobId: started.jobId, at: started.at, heldUntil: open === undefined ? null : new Date(Date.parse(started.at) + BUSY_HOLD_MINUTES * 60_000).toISOString() } } : {}),
    });
  }
  return result;
}

/**
 * Job starts on the pair's VM among facts not seen before: news that voids a claim. A start
 * delivered after its own end (deliveries arrive out of order) is no news.
 */
export function newStartsOn(pair: Pair, facts: StoredFact[], seen: Set<string>, pairOfRunner: Map<string, Pair>): StoredFact[] {
  const ended = new Set(facts.filter(({ fact }) => fact.phase === "ended" && fact.jobId !== null).map(({ fact }) => fact.jobId));
  return facts.filter(({ key, fact }) => !seen.has(key) && fact.phase === "started" && !ended.has(fact.jobId) && pairOfRunner.get(lower(fact.runnerName))?.id === pair.id);
}

/** Facts recorded by other instances are stamped by their clocks: a re-read starts this much before the first read. */
const CLOCK_MARGIN_MS = 10 * 60_000;

/**
 * The one way a reconcile reads the recorded facts: the whole window once, at the start; then,
 * when a step must see what was recorded since (a claim's second look, routing's re-check), only
 * the facts recorded after the first read (less a clock margin), merged with it.
 */
export class FactWindow {
  /** The keys of the first read: a fact not among them is news. */
  readonly seen: Set<string>;

  private constructor(
    private readonly store: FactStore,
    readonly firstReadAt: Date,
    readonly facts: StoredFact[],
  ) {
    this.seen = new Set(facts.map((f) => f.key));
  }

  static async read(store: FactStore, at: Date): Promise<FactWindow> {
    return new FactWindow(store, at, await store.listSince(new Date(at.getTime() - FACT_WINDOW_MS)));
  }

  /** The first read with every fact recorded since merged in, or why the re-read failed. */
  async again(): Promise<StoredFact[] | { error: string }> {
    try {
      const since = await this.store.listSince(new Date(this.firstReadAt.getTime() - CLOCK_MARGIN_MS));
      return [...this.facts, ...since.filter((f) => !this.seen.has(f.key))];
    } catch (error) {
      return { error: (error as Error).message };
    }
  }

  /** Job starts on the pair's VM recorded since the first read (see newStartsOn). */
  newStartsOn(pair: Pair, facts: StoredFact[], pairOfRunner: Map<string, Pair>): StoredFact[] {
    return newStartsOn(pair, facts, this.seen, pairOfRunner);
  }
}
