/** Answers of the HTTP functions, independent of Azure's types: a status and a JSON body. */
import { GitHubError } from "../github/client.js";
import type { Logger } from "../logger.js";
import { StoreError } from "../storage/connection.js";

export interface JsonResponse {
  status: number;
  body: unknown;
  headers?: Record<string, string>;
}

export const refuse = (status: number, message: string, extra: Record<string, unknown> = {}): JsonResponse => ({ status, body: { error: message, ...extra } });

/**
 * A failure the caller can retry: GitHub or storage did not answer as needed. Anything else is a
 * bug and is thrown on, for the host to log.
 */
export function unavailable(cause: unknown, logger: Logger, advice: string): JsonResponse {
  if (!(cause instanceof GitHubError || cause instanceof StoreError)) throw cause;
  logger.error(cause.message);
  return { ...refuse(503, `${cause.message}. ${advice}`), headers: { "retry-after": "60" } };
}
