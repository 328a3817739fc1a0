/**
 * The Functions host's queue trigger, for the local host: polls the queue (at once again after a
 * full batch, else after `maxPollingInterval`), hands each message's Base64-decoded text (parsed
 * when it is JSON, as the host does) to the function with its insertion time and dequeue count,
 * deletes it when the function succeeds, leaves it hidden for `visibilityTimeout` when it fails,
 * and moves it to `<queue>-poison` after `maxDequeueCount` tries. Settings come from host.json.
 */
import { readFileSync } from "node:fs";
import type { InvocationContext, TriggerMetadata } from "@azure/functions";
import { QueueClient, type DequeuedMessageItem } from "@azure/storage-queue";
import { z } from "zod";
import type { FunctionDefinition } from "../../functions/definitions.js";
import type { Logger } from "../logger.js";

const TimeSpan = z.string().regex(/^\d{2}:\d{2}:\d{2}$/).transform((t) => t.split(":").map(Number).reduce((s, part) => s * 60 + part, 0) * 1000);
export const QueueHostSettingsSchema = z.object({
  maxPollingInterval: TimeSpan.default(60_000),
  visibilityTimeout: TimeSpan.default(0),
  batchSize: z.number().int().min(1).max(32).default(16),
  maxDequeueCount: z.number().int().min(1).default(5),
});
export type QueueHostSettings = z.infer<typeof QueueHostSettingsSchema>;

/** The queue extension's settings in host.json (`extensions.queues`), with the host's defaults. */
export function readQueueHostSettings(path = "host.json"): QueueHostSettings {
  const json = JSON.parse(readFileSync(path, "utf8")) as { extensions?: { queues?: unknown } };
  return QueueHostSettingsSchema.parse(json.extensions?.queues ?? {});
}

export interface QueuePoller {
  stop(): Promise<void>;
}

type QueueDefinition = Extract<FunctionDefinition, { kind: "queue" }>;

function decodeText(item: DequeuedMessageItem): unknown {
  const text = Buffer.from(item.messageText, "base64").toString("utf8");
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return text;
  }
}

export function pollQueue(definition: QueueDefinition, options: { connectionString: string; settings: QueueHostSettings; logger: Logger; contextFor: (name: string, triggerMetadata?: TriggerMetadata) => InvocationContext }): QueuePoller {
  const { settings, logger } = options;
  const queue = new QueueClient(options.connectionString, definition.queueName);
  const poison = new QueueClient(options.connectionString, `${definition.queueName}-poison`);
  let stopped = false;
  let wake: (() => void) | null = null;

  const runOne = async (item: DequeuedMessageItem) => {
    const context = options.contextFor(definition.name, { id: item.messageId, insertionTime: item.insertedOn.toISOString(), dequeueCount: item.dequeueCount, popReceipt: item.popReceipt });
    try {
      await definition.handler(decodeText(item), context);
      await queue.deleteMessage(item.messageId, item.popReceipt);
    } catch (error) {
      logger.error(`[${definition.name}] failed (try ${item.dequeueCount} of ${settings.maxDequeueCount}): ${(error as Error).message}`);
      if (item.dequeueCount >= settings.maxDequeueCount) {
        await poison.createIfNotExists();
        await poison.sendMessage(item.messageText);
        await queue.deleteMessage(item.messageId, item.popReceipt);
      } else {
        await queue.updateMessage(item.messageId, item.popReceipt, undefined, settings.visibilityTimeout / 1000);
      }
    }
  };

  const loop = (async () => {
    await queue.createIfNotExists();
    while (!stopped) {
      let items: DequeuedMessageItem[] = [];
      try {
        // Hidden while it runs; a crash leaves it to reappear, as on Azure.
        items = (await queue.receiveMessages({ numberOfMessages: settings.batchSize, visibilityTimeout: Math.max(30, settings.visibilityTimeout / 1000) })).receivedMessageItems;
      } catch (error) {
        if (!stopped) logger.error(`[${definition.name}] cannot read queue ${definition.queueName}: ${(error as Error).message}`);
      }
      await Promise.all(items.map((item) => runOne(item).catch((error: unknown) => logger.error(`[${definition.name}] queue call failed: ${(error as Error).message}`))));
      if (items.length < settings.batchSize && !stopped) await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, settings.maxPollingInterval);
        wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
  })();

  return {
    stop: async () => {
      stopped = true;
      wake?.();
      await loop;
    },
  };
}
