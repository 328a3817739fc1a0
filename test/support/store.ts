import { randomBytes } from "node:crypto";
import { inject } from "vitest";
import type { PairRecord } from "../../shared/lab/pair-record.js";
import { MemoryStore } from "../../shared/storage/memory.js";
import type { StorageRetry } from "../../shared/storage/connection.js";
import { TableStore } from "../../shared/storage/tables.js";

/** For a storage a test stops: a call fails in milliseconds instead of waiting out the SDKs' backoff (seconds), still tried twice. */
export const QUICK_STORAGE_RETRY: StorageRetry = { maxTries: 2, retryDelayInMs: 10, maxRetryDelayInMs: 50 };

/** A store on the shared Azurite, in tables no other test uses. */
export function uniqueTablePrefix(): string {
  return `t${randomBytes(6).toString("hex")}`;
}

export function openTestStore(prefix = uniqueTablePrefix(), lab = "microsoft.netperf"): Promise<TableStore> {
  return TableStore.open({ connection: { kind: "connectionString", connectionString: inject("azuriteConnectionString") }, tablePrefix: prefix, lab });
}

/** A memory store where another writer changes the pair's record before each of the next `times` writes, so each meets a conflict. */
export class ContestedStore extends MemoryStore {
  constructor(private times: number) {
    super();
  }

  override async replacePair(record: PairRecord, etag: string): Promise<string> {
    const current = await this.getPair(record.pairId);
    if (this.times-- > 0 && current) await super.replacePair({ ...current.record, reason: "another writer's change" }, current.etag);
    return super.replacePair(record, etag);
  }
}
