/**
 * How the app reaches its storage account: a connection string (Azurite, or a key) or the
 * managed identity. Tables hold the records and facts; the queue hands "look now" to the reconcile.
 */
import type { TokenCredential } from "@azure/core-auth";
import { RestError, TableClient } from "@azure/data-tables";
import { QueueClient } from "@azure/storage-queue";

export type StorageConnection =
  | { kind: "connectionString"; connectionString: string }
  | { kind: "identity"; tableServiceUrl: string; queueServiceUrl: string; credential: TokenCredential };

/** A Table Storage or Queue Storage call that failed, named for the log. */
export class StoreError extends Error {
  constructor(call: string, cause: unknown) {
    super(`Table Storage ${call} failed: ${cause instanceof Error ? cause.message.split("\n")[0] : String(cause)}`, { cause });
    this.name = "StoreError";
  }
}

export const isStatus = (error: unknown, ...codes: number[]) => error instanceof RestError && codes.includes(error.statusCode ?? 0);

export function tableClient(connection: StorageConnection, table: string): TableClient {
  return connection.kind === "connectionString"
    ? TableClient.fromConnectionString(connection.connectionString, table, { allowInsecureConnection: true })
    : new TableClient(connection.tableServiceUrl, table, connection.credential);
}

export function queueClient(connection: StorageConnection, queue: string): QueueClient {
  return connection.kind === "connectionString"
    ? new QueueClient(connection.connectionString, queue)
    : new QueueClient(`${connection.queueServiceUrl.replace(/\/+$/, "")}/${queue}`, connection.credential);
}

/** Opens a table, creating it on first use. */
export async function openTable(connection: StorageConnection, table: string): Promise<TableClient> {
  const client = tableClient(connection, table);
  try {
    await client.createTable();
  } catch (error) {
    throw new StoreError(`create table ${table}`, error);
  }
  return client;
}

/** Table Storage has no null: absent properties read back as null. */
export function toEntity(partitionKey: string, rowKey: string, value: Record<string, unknown>) {
  const entity: Record<string, unknown> = { partitionKey, rowKey };
  for (const [key, v] of Object.entries(value)) if (v !== null && v !== undefined) entity[key] = v;
  return entity as { partitionKey: string; rowKey: string };
}

export function fromEntity<T>(schema: { parse(value: unknown): T }, keys: string[], entity: Record<string, unknown>): T {
  const value: Record<string, unknown> = {};
  for (const key of keys) value[key] = entity[key] ?? null;
  return schema.parse(value);
}

/** An OData string literal. */
export const odata = (value: string) => `'${value.replace(/'/g, "''")}'`;
