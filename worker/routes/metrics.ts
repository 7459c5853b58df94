import { createRoute, z } from "@hono/zod-openapi";
import { MetricsOverview } from "../../schemas/index.ts";
import { collect, expositionInput, overview } from "../metrics/collect.ts";
import { EXPOSITION_CONTENT_TYPE, renderExposition } from "../metrics/exposition.ts";
import { BEARER, createRouter, jsonContent, problems, requireRole } from "./common.ts";

const scrapeRoute = createRoute({
  method: "get",
  path: "/metrics",
  operationId: "scrapeMetrics",
  tags: ["metrics"],
  summary: "Prometheus metrics",
  description:
    "The Prometheus text exposition format 0.0.4: every `fleet_relay_` metric with `# HELP` and `# TYPE`, base units, `_total` counters, no per-host labels. Needs the `metrics` role (or any higher one): `npm run token -- --role metrics --ttl 365d` makes a token for a scrape config.",
  security: BEARER,
  middleware: [requireRole("metrics")] as const,
  responses: {
    200: {
      description: "The current values of every metric",
      content: { [EXPOSITION_CONTENT_TYPE]: { schema: z.string().meta({ description: "Prometheus text format 0.0.4" }) } },
    },
    ...problems(401, 403),
  },
});

const overviewRoute = createRoute({
  method: "get",
  path: "/api/metrics",
  operationId: "getMetricsOverview",
  tags: ["metrics"],
  summary: "Metrics for the dashboard",
  description:
    "Current values (hosts by status, queue depth, dead letters, commands, delivery latency, subscribers, jobs) and the last hour at one-minute resolution: commands per state, p50/p99 send → ack latency and online hosts.",
  security: BEARER,
  middleware: [requireRole("viewer")] as const,
  responses: {
    200: jsonContent(MetricsOverview, "Current values and the last hour"),
    ...problems(401, 403),
  },
});

export const metricsRoutes = createRouter()
  .openapi(scrapeRoute, async (c) => {
    const text = renderExposition(expositionInput(await collect(c.env)));
    return c.text(text, 200, { "content-type": EXPOSITION_CONTENT_TYPE, "cache-control": "no-store" });
  })
  .openapi(overviewRoute, async (c) => c.json(overview(await collect(c.env)), 200));
