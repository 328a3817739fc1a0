/**
 * The stand-in's App webhook: GitHub POSTs each delivery to the App's webhook URL, signed with its
 * secret, waits at most 10 seconds, and keeps a log of every attempt that the App reads with its
 * JWT (`GET /app/hook/deliveries`, newest first, cursor pagination) and redelivers from
 * (`POST /app/hook/deliveries/{id}/attempts`: the same payload and GUID, `redelivery: true`).
 * GitHub never redelivers by itself.
 */
import { createHmac, randomUUID } from "node:crypto";
import type { components } from "@octokit/openapi-types";

export type HookDeliveryItem = components["schemas"]["hook-delivery-item"];

/** GitHub's timeout for a delivery's answer. */
export const DELIVERY_TIMEOUT_MS = 10_000;
const MAX_PER_PAGE = 100;

interface LoggedDelivery {
  item: HookDeliveryItem;
  body: string;
}

export interface DeliveryPage {
  items: HookDeliveryItem[];
  /** The cursor of the next page, if any. */
  next: string | null;
}

export class WebhookDeliveryLog {
  private readonly log: LoggedDelivery[] = [];
  private nextId = 90_000_001;
  private readonly inFlight = new Set<Promise<unknown>>();

  constructor(
    private readonly target: { url: string; secret: string },
    private readonly clock: () => Date,
    private readonly installationId: number,
    private readonly repositoryId: number,
  ) {}

  /** Delivers an event as GitHub does and logs the attempt; resolves with its log entry. */
  deliver(event: string, payload: { action?: string }, guid: string = randomUUID()): Promise<HookDeliveryItem> {
    return this.track(this.attempt(event, JSON.stringify(payload), guid, payload.action ?? null, false));
  }

  /**
   * Logs an attempt that never reached the app (GitHub's "timed out"), sending nothing: a failed
   * delivery for the App's redelivery timer to find and ask for again.
   */
  logUnreachable(event: string, payload: { action?: string }, guid: string): HookDeliveryItem {
    return this.logAttempt({ event, body: JSON.stringify(payload), guid, action: payload.action ?? null, redelivery: false }, this.clock(), DELIVERY_TIMEOUT_MS, "timed out", 0);
  }

  /** Every delivery attempt so far, oldest first. */
  get items(): HookDeliveryItem[] {
    return this.log.map((d) => structuredClone(d.item));
  }

  /** Resolves once every delivery and redelivery under way has been answered. */
  async settled(): Promise<void> {
    while (this.inFlight.size > 0) await Promise.allSettled([...this.inFlight]);
  }

  /** A page of the log, newest first; `cursor` is the one a previous page's Link header gave. */
  page(perPage: number, cursor: string | null): DeliveryPage {
    const size = Math.min(Math.max(1, perPage || 30), MAX_PER_PAGE);
    const before = cursor === null ? Infinity : Number(/^v1_(\d+)$/.exec(cursor)?.[1] ?? NaN);
    const older = [...this.log].reverse().filter((d) => Number(d.item.id) < before);
    const items = older.slice(0, size).map((d) => structuredClone(d.item));
    return { items, next: older.length > size ? `v1_${String(items.at(-1)!.id)}` : null };
  }

  /** Starts a redelivery of the attempt `id`; false when the log has no such attempt. */
  redeliver(id: number): boolean {
    const original = this.log.find((d) => Number(d.item.id) === id);
    if (original === undefined) return false;
    const { event, guid, action } = original.item;
    void this.track(this.attempt(event, original.body, guid, action, true));
    return true;
  }

  private track<T>(promise: Promise<T>): Promise<T> {
    this.inFlight.add(promise);
    void promise.finally(() => this.inFlight.delete(promise)).catch(() => undefined);
    return promise;
  }

  private async attempt(event: string, body: string, guid: string, action: string | null, redelivery: boolean): Promise<HookDeliveryItem> {
    const started = Date.now();
    const deliveredAt = this.clock();
    let status: string;
    let statusCode: number;
    try {
      const response = await fetch(this.target.url, {
        method: "POST",
        headers: {
          "content-type": "application/json",
          "user-agent": "GitHub-Hookshot/standin",
          "x-github-event": event,
          "x-github-delivery": guid,
          "x-hub-signature-256": `sha256=${createHmac("sha256", this.target.secret).update(body).digest("hex")}`,
        },
        body,
        signal: AbortSignal.timeout(DELIVERY_TIMEOUT_MS),
      });
      await response.arrayBuffer();
      statusCode = response.status;
      status = response.ok ? "OK" : `Invalid HTTP Response: ${response.status}`;
    } catch (error) {
      statusCode = 0;
      status = (error as Error).name === "TimeoutError" ? "timed out" : "failed to connect";
    }
    return this.logAttempt({ event, body, guid, action, redelivery }, deliveredAt, Date.now() - started, status, statusCode);
  }

  private logAttempt(sent: { event: string; body: string; guid: string; action: string | null; redelivery: boolean }, deliveredAt: Date, durationMs: number, status: string, statusCode: number): HookDeliveryItem {
    const item: HookDeliveryItem = {
      id: this.nextId++,
      guid: sent.guid,
      delivered_at: deliveredAt.toISOString().replace(/\.\d{3}Z$/, "Z"),
      redelivery: sent.redelivery,
      duration: durationMs / 1000,
      status,
      status_code: statusCode,
      event: sent.event,
      action: sent.action,
      installation_id: this.installationId,
      repository_id: this.repositoryId,
    };
    this.log.push({ item, body: sent.body });
    return structuredClone(item);
  }
}
