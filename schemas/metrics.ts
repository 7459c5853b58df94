import { z } from "zod";
import { Rfc3339 } from "./primitives.ts";

/** Latency in seconds at a quantile; null when nothing was observed. Values past the largest bucket (3600 s) read 3600. */
const Quantile = z.number().min(0).nullable();
const Counts = z.record(z.string(), z.int().min(0));

export const MetricsMinute = z
  .object({
    minute: Rfc3339.describe("Start of the minute"),
    commands_by_state: Counts.describe("Commands that entered each state during the minute"),
    deliveries: z.int().min(0).describe("Commands acked by their agent during the minute"),
    delivery_p50_seconds: Quantile.describe("Median send → ack time of those deliveries"),
    delivery_p99_seconds: Quantile.describe("99th percentile send → ack time of those deliveries"),
    online_hosts: z.int().min(0).describe("Agents connected at the end of the minute (now, for the current one)"),
    dead_letters_new: z.int().min(0).describe("Commands dead-lettered during the minute"),
  })
  .meta({ id: "MetricsMinute", description: "One minute of the fleet" });
export type MetricsMinute = z.infer<typeof MetricsMinute>;

export const MetricsOverview = z
  .object({
    at: Rfc3339.describe("When the values were read"),
    current: z
      .object({
        hosts: z
          .object({ online: z.int().min(0), offline: z.int().min(0), revoked: z.int().min(0) })
          .describe("Registered hosts by status, from the registry"),
        agents_connected: z.int().min(0).describe("Agents connected and greeted, as their relays last reported"),
        queue_depth: Counts.describe("Commands not yet final, by state (queued, delivered, running, cancelling)"),
        dead_letters: z.int().min(0).describe("Commands currently dead-lettered"),
        commands_enqueued_total: z.int().min(0).describe("Commands accepted since the metrics began"),
        commands_finished_total: Counts.describe("Commands that entered each final state since the metrics began"),
        delivery_p50_seconds: Quantile.describe("Median send → ack time over the last hour"),
        delivery_p99_seconds: Quantile.describe("99th percentile send → ack time over the last hour"),
        event_subscribers: z.int().min(0).describe("Open /api/events subscribers"),
        jobs_by_state: Counts.describe("Jobs by state (final ones for 24 hours after they ended)"),
      })
      .describe("Values now"),
    series: z
      .array(MetricsMinute)
      .describe("The last 60 minutes and the current, partial one, oldest first: one entry per minute, quiet ones included"),
  })
  .meta({ id: "MetricsOverview", description: "The fleet's metrics for the dashboard: current values and the last hour by minute" });
export type MetricsOverview = z.infer<typeof MetricsOverview>;
