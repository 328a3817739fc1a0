/**
 * How the app reaches its storage account: a connection string (Azurite, or a key) or the
 * managed identity. Tables hold the records and facts; the queue hands "look now" to the reconcile.
 */
import type { TokenCredential } from "@azure/core-auth";
import { RestError, TableClient } from "@azure/data-tables";
import { QueueClient } from "@azure/storage-queue";

/**
 * How the storage SDKs try a call again: tries in all (the first included) and the backoff's
 * first and longest delay. Unset, the SDKs' own defaults (tables: 4 tries from 1 s; queues:
 * 4 tries from 4 s), which ride out a storage hiccup; tests of a stopped storage set them small.
 */
export interface StorageRetry {
  maxTries?: number;
  retryDelayInMs?: number;
  maxRetryDelayInMs?: number;
}

/**
 * `provisioned`: the deployment created every table and queue (LAB_STORAGE_PROVISIONED), so
 * opening one never creates it, and a missing one is a deployment to run.
 */
export type StorageConnection = (
  | { kind: "connectionString"; connectionString: string }
  | { kind: "identity"; tableServiceUrl: string; queueServiceUrl: string; credential: TokenCredential }
) & { provisioned?: boolean; retry?: StorageRetry };

/** The Table SDK counts retries after the first try; the Queue SDK counts tries. */
const tableRetryOptions = ({ maxTries, ...delays }: StorageRetry = {}) => ({ ...delays, ...(maxTries === undefined ? {} : { maxRetries: maxTries - 1 }) });

type Service = "Table Storage" | "Queue Storage";

/**
 * Who each endpoint of this process is and how it signs in, by origin, so that an error names
 * the setting to fix (an SDK error names only the URL it called).
 */
const endpoints = new Map<string, { service: Service | null; credential: StorageConnection["kind"] | "sas" }>();

function remember(url: string, service: Service, connection: StorageConnection): void {
  const credential = connection.kind === "connectionString" && /(^|;)\s*SharedAccessSignature=/i.test(connection.connectionString) ? "sas" : connection.kind;
  const origin = new URL(url).origin;
  const known = endpoints.get(origin);
  // Tables and queues behind one origin (a proxy): the call's name tells them apart instead.
  endpoints.set(origin, { service: known && known.service !== service ? null : service, credential });
}

const NO_ANSWER = new Set(["ECONNREFUSED", "ENOTFOUND", "EAI_AGAIN", "ETIMEDOUT", "ECONNRESET", "EHOSTUNREACH", "ENETUNREACH", "UND_ERR_CONNECT_TIMEOUT", "REQUEST_SEND_ERROR"]);

/** A table or queue that is not there (the deployment creates them; the app does only without LAB_STORAGE_PROVISIONED). */
const MISSING_CONTAINER = new Set(["TableNotFound", "QueueNotFound"]);
const errorCode = (error: RestError) => error.code ?? (error.details as { errorCode?: string } | undefined)?.errorCode;

const firstLine = (text: string) => text.split("\n")[0]!.trim();

/** Storage's own words for a refusal: the XML or JSON body's message, not its first line of markup. */
function storageMessage(error: RestError): string {
  const details = (error.details ?? {}) as { Message?: unknown; message?: unknown; "odata.error"?: { message?: { value?: unknown } } };
  const text = [details.Message, details["odata.error"]?.message?.value, details.message, error.message].find((t): t is string => typeof t === "string" && t.trim() !== "" && !t.trimStart().startsWith("<"));
  return text ? firstLine(text) : "";
}

/** A connection string an SDK would not parse (readSettings catches the usual mistakes first). */
class UnusableConnectionString extends Error {
  constructor(service: Service, sdkError: unknown) {
    const said = sdkError instanceof Error ? firstLine(sdkError.message) : String(sdkError);
    super(`AzureWebJobsStorage is not a connection string ${service} accepts (${said}): expected "AccountName=…;AccountKey=…" or "UseDevelopmentStorage=true"`);
    this.name = "UnusableConnectionString";
  }
}

/**
 * One line for a failed storage call: what refused or could not be reached, and which setting
 * to check. Wrong keys and unreachable endpoints are mistakes in settings, not bugs: no dump.
 */
export function describeStoreFailure(call: string, cause: unknown, service?: Service): string {
  if (cause instanceof UnusableConnectionString) return cause.message;
  if (!(cause instanceof RestError)) return `${service ?? guessService(call)} ${call} failed: ${firstLine(cause instanceof Error ? cause.message : String(cause))}`;
  const url = cause.request?.url && URL.canParse(cause.request.url) ? new URL(cause.request.url) : undefined;
  const known = url ? endpoints.get(url.origin) : undefined;
  const who = service ?? known?.service ?? guessService(call);
  const credential = known?.credential ?? "connectionString";
  const code = errorCode(cause);
  const status = cause.statusCode;
  if (status === 401 || status === 403) {
    const what = `${status}${code ? ` ${code}` : ""}`;
    if (credential === "identity") {
      const role = who === "Table Storage" ? "Storage Table Data Contributor" : "Storage Queue Data Contributor";
      return `${who} refused the app's managed identity (${what}): give it the ${role} role on the storage account`;
    }
    return credential === "sas"
      ? `${who} refused the SharedAccessSignature in AzureWebJobsStorage (${what}): check its permissions and expiry`
      : `${who} refused the key in AzureWebJobsStorage (${what}): check its AccountKey and the account's firewall`;
  }
  if (status === undefined && code !== undefined && NO_ANSWER.has(code)) {
    const setting =
      credential !== "identity" ? "AzureWebJobsStorage"
      : who === "Table Storage" ? "AzureWebJobsStorage__tableServiceUri (or AzureWebJobsStorage__accountName)"
      : "AzureWebJobsStorage__queueServiceUri (or AzureWebJobsStorage__accountName)";
    return `${who} ${call} failed: cannot reach ${url?.origin ?? "the storage account"}: ${code}; check ${setting} and that the account (or Azurite) is running`;
  }
  // Only with LAB_STORAGE_PROVISIONED=true does the app use a table or queue it did not create.
  if (status === 404 && MISSING_CONTAINER.has(code ?? "")) {
    const kind = code === "TableNotFound" ? "table" : "queue";
    const segments = (url?.pathname ?? "").split("/").filter((p) => p !== "");
    const name = decodeURIComponent((segments.at(-1) === "messages" ? segments.at(-2) : segments.at(-1)) ?? "").replace(/\(.*$/, "");
    return `${who} ${call} failed: ${kind}${name ? ` ${name}` : ""} does not exist: the deployment creates it (LAB_STORAGE_PROVISIONED=true); run the deploy command again (docs/deploy.md, step 2)`;
  }
  const detail = [[status, code].filter((p) => p !== undefined && p !== "").join(" "), storageMessage(cause)].filter((p) => p !== "").join(": ");
  return `${who} ${call} failed${detail ? `: ${detail}` : ""}`;
}

/** Calls name their queue ("create queue …", "queue a reconcile on …"); every other call is a table's. */
const guessService = (call: string): Service => (/\bqueue\b/i.test(call) ? "Queue Storage" : "Table Storage");

/** A Table Storage or Queue Storage call that failed, described on one line for the log and for callers. */
export class StoreError extends Error {
  constructor(
    readonly call: string,
    cause: unknown,
    service?: Service,
  ) {
    super(describeStoreFailure(call, cause, service), { cause });
    this.name = "StoreError";
  }
}

/** A missing table or queue is never "no such entity": its 404 matches no status here. */
export const isStatus = (error: unknown, ...codes: number[]) =>
  error instanceof RestError && codes.includes(error.statusCode ?? 0) && !(error.statusCode === 404 && MISSING_CONTAINER.has(errorCode(error) ?? ""));

export function tableClient(connection: StorageConnection, table: string): TableClient {
  let client: TableClient;
  try {
    client =
      connection.kind === "connectionString"
        ? TableClient.fromConnectionString(connection.connectionString, table, { allowInsecureConnection: true, retryOptions: tableRetryOptions(connection.retry) })
        : new TableClient(connection.tableServiceUrl, table, connection.credential, { retryOptions: tableRetryOptions(connection.retry) });
  } catch (error) {
    throw new StoreError(`open table ${table}`, connection.kind === "connectionString" ? new UnusableConnectionString("Table Storage", error) : error, "Table Storage");
  }
  remember(client.url, "Table Storage", connection);
  return client;
}

export function queueClient(connection: StorageConnection, queue: string): QueueClient {
  let client: QueueClient;
  try {
    client =
      connection.kind === "connectionString"
        ? new QueueClient(connection.connectionString, queue, { retryOptions: { ...connection.retry } })
        : new QueueClient(`${connection.queueServiceUrl.replace(/\/+$/, "")}/${queue}`, connection.credential, { retryOptions: { ...connection.retry } });
  } catch (error) {
    throw new StoreError(`open queue ${queue}`, connection.kind === "connectionString" ? new UnusableConnectionString("Queue Storage", error) : error, "Queue Storage");
  }
  remember(client.url, "Queue Storage", connection);
  return client;
}

/**
 * Opens a table, creating it on first use; when the deployment provisioned storage, without a
 * call (a missing table is then reported by its first use, naming the deployment).
 */
export async function openTable(connection: StorageConnection, table: string): Promise<TableClient> {
  const client = tableClient(connection, table);
  if (connection.provisioned) return client;
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
