import { createRoute, z } from "@hono/zod-openapi";
import { PROTOCOL_VERSION } from "../../schemas/index.ts";
import { createRouter, jsonContent, PUBLIC, problems } from "./common.ts";

const Health = z
  .object({
    status: z.literal("ok"),
    protocol_version: z.int().describe("Wire protocol version the relay speaks to agents"),
  })
  .openapi("Health", { description: "The relay is up" });

const healthRoute = createRoute({
  method: "get",
  path: "/healthz",
  operationId: "getHealth",
  tags: ["meta"],
  summary: "Liveness",
  security: PUBLIC,
  responses: {
    200: jsonContent(Health, "The relay is up"),
    // The route itself never refuses; a malformed request is refused before any route runs.
    ...problems([
      400,
      "Malformed HTTP (e.g. conflicting Content-Length and Transfer-Encoding), refused by the edge in front of the Worker",
    ]),
  },
});

export const healthRoutes = createRouter().openapi(healthRoute, (c) =>
  c.json({ status: "ok" as const, protocol_version: PROTOCOL_VERSION }, 200),
);
