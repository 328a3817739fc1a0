/**
 * The GitHub App's webhook deliveries: GitHub never redelivers a failed one by itself, but keeps
 * every attempt for 3 days, readable and redeliverable with the App's JWT (Octokit's App auth
 * signs `/app/hook/...` requests with it, not with the installation token).
 */
import { z } from "zod";
import { describeFailure, GitHubTime, parseAnswer, type LabOctokitInstance } from "./client.js";

/** One delivery attempt as GitHub logs it; a redelivery shares its first attempt's `guid`. */
export const HookDeliverySchema = z.object({
  id: z.number().int(),
  guid: z.string(),
  delivered_at: GitHubTime,
  redelivery: z.boolean(),
  /** "OK" when the app answered 2xx; e.g. "Invalid HTTP Response: 503" or "timed out" otherwise. */
  status: z.string(),
  status_code: z.number().int(),
  event: z.string(),
  action: z.string().nullable(),
});
export type HookDelivery = z.infer<typeof HookDeliverySchema>;

export interface HookDeliveries {
  /** Attempts delivered at or after `since`, newest first (pages read until one reaches past it). */
  listSince(since: Date): Promise<{ deliveries: HookDelivery[]; pages: number }>;
  /** Asks GitHub to deliver the attempt's payload again (202: accepted, delivered later). */
  redeliver(id: number): Promise<void>;
}

const PER_PAGE = 100;

export class OctokitHookDeliveries implements HookDeliveries {
  constructor(private readonly octokit: LabOctokitInstance) {}

  async listSince(since: Date): Promise<{ deliveries: HookDelivery[]; pages: number }> {
    const call = "GET /app/hook/deliveries";
    const deliveries: HookDelivery[] = [];
    let pages = 0;
    try {
      // Cursor pagination: Octokit follows the Link header's rel="next" as for any list.
      for await (const page of this.octokit.paginate.iterator("GET /app/hook/deliveries", { per_page: PER_PAGE })) {
        pages++;
        const items = parseAnswer(call, z.array(HookDeliverySchema), page.data);
        deliveries.push(...items.filter((d) => Date.parse(d.delivered_at) >= since.getTime()));
        if (items.length === 0 || Date.parse(items.at(-1)!.delivered_at) < since.getTime()) break;
      }
    } catch (error) {
      throw describeFailure(call, error);
    }
    return { deliveries, pages };
  }

  async redeliver(id: number): Promise<void> {
    try {
      // A write, sent once: a retried POST could deliver the event twice (harmless, but traffic).
      await this.octokit.request("POST /app/hook/deliveries/{delivery_id}/attempts", { delivery_id: id, request: { retries: 0, oneAttempt: true } });
    } catch (error) {
      throw describeFailure(`POST /app/hook/deliveries/${id}/attempts`, error);
    }
  }
}
