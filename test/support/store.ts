import { randomBytes } from "node:crypto";
import { inject } from "vitest";
import { TableStore } from "../../shared/storage/tables.js";

/** A store on the shared Azurite, in tables no other test uses. */
export function uniqueTablePrefix(): string {
  return `t${randomBytes(6).toString("hex")}`;
}

export function openTestStore(prefix = uniqueTablePrefix(), lab = "microsoft.netperf"): Promise<TableStore> {
  return TableStore.open({ connection: { kind: "connectionString", connectionString: inject("azuriteConnectionString") }, tablePrefix: prefix, lab });
}
