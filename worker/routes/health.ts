import { createRoute, z } from "@hono/zod-openapi";
import { PROTOCOL_VERSION } from "../../schemas/index.ts";
import { createRouter, jsonContent } from "./common.ts";

const healthRoute = createRoute({
  method: "get",
  path: "/healthz",
  tags: ["meta"],
  summary: "Liveness",
  responses: {
    200: jsonContent(z.object({ status: z.literal("ok"), protocol_version: z.int() }), "The relay is up"),
  },
});

export const healthRoutes = createRouter().openapi(healthRoute, (c) =>
  c.json({ status: "ok" as const, protocol_version: PROTOCOL_VERSION }, 200),
);
