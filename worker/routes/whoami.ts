import { createRoute } from "@hono/zod-openapi";
import { Caller } from "../../schemas/index.ts";
import { BEARER, createRouter, jsonContent, problems, requireRole } from "./common.ts";

const whoamiRoute = createRoute({
  method: "get",
  path: "/api/whoami",
  tags: ["meta"],
  operationId: "getCaller",
  summary: "Who the token (or Cloudflare Access assertion) says the caller is",
  description:
    "The dashboard reads its role here to hide controls the caller may not use; behind Cloudflare Access the page never sees the token, so it cannot read the role itself.",
  security: BEARER,
  middleware: [requireRole("metrics")] as const,
  responses: { 200: jsonContent(Caller, "The caller"), ...problems(401, 403) },
});

export const whoamiRoutes = createRouter().openapi(whoamiRoute, (c) => {
  const { sub, role } = c.get("principal");
  return c.json({ sub, role }, 200);
});
