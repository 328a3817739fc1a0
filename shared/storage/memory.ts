/**
 * A PairStore in process memory with the same ETag rules as Table Storage, for the lab
 * simulator and benchmarks (a simulated week in seconds). It passes the same contract tests as
 * TableStore (test/store.test.ts).
 */
import { PairEventSchema, PairRecordSchema, type PairEvent } from "../lab/pair-record.js";
import { StoreConflictError, type PairStore, type StoredPair } from "./tables.js";

export class MemoryStore implements PairStore {
  private readonly pairs = new Map<string, StoredPair>();
  private readonly events = new Map<string, PairEvent[]>();
  private version = 0;

  private etag(): string {
    return `W/"mem-${++this.version}"`;
  }

  listPairs(): Promise<StoredPair[]> {
    return Promise.resolve([...this.pairs.values()].map((s) => structuredClone(s)));
  }

  getPair(pairId: string): Promise<StoredPair | null> {
    const stored = this.pairs.get(pairId);
    return Promise.resolve(stored ? structuredClone(stored) : null);
  }

  createPair(record: Parameters<PairStore["createPair"]>[0]): Promise<string> {
    if (this.pairs.has(record.pairId)) return Promise.reject(new StoreConflictError(record.pairId));
    const etag = this.etag();
    this.pairs.set(record.pairId, { record: PairRecordSchema.parse(structuredClone(record)), etag });
    return Promise.resolve(etag);
  }

  replacePair(record: Parameters<PairStore["replacePair"]>[0], etag: string): Promise<string> {
    const current = this.pairs.get(record.pairId);
    if (!current || current.etag !== etag) return Promise.reject(new StoreConflictError(record.pairId));
    const next = this.etag();
    this.pairs.set(record.pairId, { record: PairRecordSchema.parse(structuredClone(record)), etag: next });
    return Promise.resolve(next);
  }

  appendEvents(events: PairEvent[]): Promise<void> {
    for (const event of events) {
      const list = this.events.get(event.pairId) ?? [];
      list.push(PairEventSchema.parse(structuredClone(event)));
      this.events.set(event.pairId, list);
    }
    return Promise.resolve();
  }

  async listEventsSince(pairId: string, since: Date): Promise<PairEvent[]> {
    const all = await this.listEvents(pairId, Number.MAX_SAFE_INTEGER);
    return all.filter((e) => Date.parse(e.at) >= since.getTime());
  }

  listEvents(pairId: string, limit = 50): Promise<PairEvent[]> {
    // Stable sort keeps insertion order among events of the same instant, newest first.
    const list = [...(this.events.get(pairId) ?? [])].reverse();
    return Promise.resolve(list.sort((a, b) => (a.at < b.at ? 1 : a.at > b.at ? -1 : 0)).slice(0, limit));
  }
}
