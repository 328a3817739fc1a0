/**
 * The hand-over from triggers to the reconcile: a message on an Azure Storage queue says "look
 * now". The queue-triggered function reconciles; a message stays until a reconcile served it, so
 * a trigger's 2xx means the facts it recorded will be acted on, even if its instance dies.
 */
import type { QueueClient } from "@azure/storage-queue";
import { z } from "zod";
import { TriggerSchema } from "../lab/pair-record.js";
import { queueClient, StoreError, type StorageConnection } from "./connection.js";

/** A reconcile that failed looks again later: `retry` numbers the try and says when it is due. */
export const RetrySchema = z.object({ attempt: z.number().int().min(1), dueAt: z.iso.datetime({ offset: true }) });
/**
 * `dueAt`: a look queued for later (shared/lab/looks.ts), hidden until then; only a reconcile
 * that began after it is due covers it.
 */
export const ReconcileMessageSchema = z.object({
  trigger: TriggerSchema,
  retry: RetrySchema.optional(),
  dueAt: z.iso.datetime({ offset: true }).optional(),
  /** A look no later reconcile's plan can make redundant (a job queued while routing is open may start at any time). */
  firm: z.boolean().optional(),
});
export type ReconcileMessage = z.infer<typeof ReconcileMessageSchema>;

/** A message as the queue trigger hands it over. */
export interface QueuedMessage {
  message: ReconcileMessage;
  /** When the queue inserted it, by storage's clock. */
  insertedAt: Date;
  dequeueCount: number;
}

export interface SendOptions {
  /** Hidden this long before a queue function may take it (a follow-up look). */
  delaySeconds?: number;
}

export interface ReconcileQueue {
  send(message: ReconcileMessage, options?: SendOptions): Promise<void>;
  /** The queue service's clock (whole seconds, as it stamps insertion times). */
  now(): Promise<Date>;
}

/** The Functions host's queue trigger expects Base64 message text by default. */
export const encodeMessage = (message: ReconcileMessage) => Buffer.from(JSON.stringify(message)).toString("base64");

/** What the host hands the function: the decoded text, or the JSON it parsed from it. */
export function decodeMessage(entry: unknown): ReconcileMessage {
  const value = typeof entry === "string" ? (JSON.parse(entry) as unknown) : entry;
  return ReconcileMessageSchema.parse(value);
}

export class StorageReconcileQueue implements ReconcileQueue {
  private constructor(private readonly client: QueueClient) {}

  /** Creates the queue on first use, unless the deployment provisioned it (`connection.provisioned`). */
  static async open(connection: StorageConnection, name: string): Promise<StorageReconcileQueue> {
    const client = queueClient(connection, name);
    if (connection.provisioned) return new StorageReconcileQueue(client);
    try {
      await client.createIfNotExists();
    } catch (error) {
      throw new StoreError(`create queue ${name}`, error);
    }
    return new StorageReconcileQueue(client);
  }

  async send(message: ReconcileMessage, options: SendOptions = {}): Promise<void> {
    try {
      await this.client.sendMessage(encodeMessage(message), options.delaySeconds ? { visibilityTimeout: options.delaySeconds } : {});
    } catch (error) {
      throw new StoreError(`queue a reconcile on ${this.client.name}`, error);
    }
  }

  async now(): Promise<Date> {
    const { date } = await this.client.getProperties();
    if (!date) throw new Error(`the queue service sent no Date header for ${this.client.name}`);
    return date;
  }
}

/**
 * Fewer sends for a burst, none unsafe: a caller joins the next send that has not started yet.
 * Any send that starts after a caller's facts were written is inserted after them, so the
 * reconcile serving it reads them. Timer messages are sent on their own (coverage tells them apart).
 */
export class CoalescedSends implements ReconcileQueue {
  private inFlight: Promise<void> | null = null;
  private next: Promise<void> | null = null;

  constructor(private readonly queue: ReconcileQueue) {}

  now(): Promise<Date> {
    return this.queue.now();
  }

  send(message: ReconcileMessage, options: SendOptions = {}): Promise<void> {
    if (message.trigger === "timer" || message.retry || options.delaySeconds) return this.queue.send(message, options);
    this.next ??= (async () => {
      await this.inFlight?.catch(() => undefined);
      this.next = null;
      const sending = this.queue.send(message);
      this.inFlight = sending;
      try {
        await sending;
      } finally {
        if (this.inFlight === sending) this.inFlight = null;
      }
    })();
    return this.next;
  }
}

/** A queue in process memory for the simulator and tests; `take` plays the queue trigger. */
export class MemoryReconcileQueue implements ReconcileQueue {
  private readonly messages: (QueuedMessage & { visibleAt: number })[] = [];
  /** Called after each send with how long it stays hidden, e.g. to serve it when due. */
  onSend?: (delayMs: number) => void;

  constructor(private readonly clock: () => Date) {}

  send(message: ReconcileMessage, options: SendOptions = {}): Promise<void> {
    const now = this.clock().getTime();
    const delayMs = (options.delaySeconds ?? 0) * 1000;
    this.messages.push({ message: ReconcileMessageSchema.parse(message), insertedAt: new Date(Math.floor(now / 1000) * 1000), dequeueCount: 0, visibleAt: now + delayMs });
    this.onSend?.(delayMs);
    return Promise.resolve();
  }

  now(): Promise<Date> {
    // Whole seconds, as storage stamps them.
    return Promise.resolve(new Date(Math.floor(this.clock().getTime() / 1000) * 1000));
  }

  /** Messages visible now. */
  get length(): number {
    const now = this.clock().getTime();
    return this.messages.filter((m) => m.visibleAt <= now).length;
  }

  /** Takes every visible message; the caller puts back the ones it failed (`putBack`). */
  takeAll(): QueuedMessage[] {
    const now = this.clock().getTime();
    const taken = this.messages.filter((m) => m.visibleAt <= now);
    this.messages.splice(0, this.messages.length, ...this.messages.filter((m) => m.visibleAt > now));
    return taken.map(({ visibleAt: _visibleAt, ...m }) => ({ ...m, dequeueCount: m.dequeueCount + 1 }));
  }

  /** The due times of the looks still hidden (shared/lab/looks.ts). */
  dueLooks(): string[] {
    const now = this.clock().getTime();
    return this.messages.flatMap((m) => (m.visibleAt > now && m.message.dueAt ? [m.message.dueAt] : []));
  }

  putBack(message: QueuedMessage): void {
    this.messages.push({ ...message, visibleAt: this.clock().getTime() });
  }
}
