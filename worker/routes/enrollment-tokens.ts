import { createRoute } from "@hono/zod-openapi";
import { EnrollmentTokenCreate, EnrollmentTokenCreated } from "../../schemas/index.ts";
import { sha256Hex } from "../pki/ca-binding.ts";
import { insertEnrollmentToken } from "../registry.ts";
import { BEARER, createRouter, jsonBody, problems, requireRole } from "./common.ts";

const createTokenRoute = createRoute({
  method: "post",
  path: "/api/enrollment-tokens",
  operationId: "createEnrollmentToken",
  tags: ["enrolment"],
  summary: "Create a single-use enrolment token",
  description:
    "An agent presents it once to `POST /agent/enroll` with its CSR. Default lifetime 1 h. Only a hash is stored; the token is shown once.",
  security: BEARER,
  middleware: [requireRole("admin")] as const,
  request: { body: jsonBody(EnrollmentTokenCreate, "Lifetime and tags for the enrolled host", false) },
  responses: {
    201: { description: "Created", content: { "application/json": { schema: EnrollmentTokenCreated } } },
    ...problems(400, 401, 403, 413, 415),
  },
});

function randomToken(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(32));
  const b64 = btoa(String.fromCharCode(...bytes))
    .replaceAll("+", "-")
    .replaceAll("/", "_")
    .replaceAll("=", "");
  return `fet_${b64}`;
}

export const enrollmentTokenRoutes = createRouter().openapi(createTokenRoute, async (c) => {
  const body = EnrollmentTokenCreate.parse(c.req.valid("json") ?? {});
  const token = randomToken();
  const now = Date.now();
  const created = {
    token_id: crypto.randomUUID(),
    token_hash: await sha256Hex(token),
    created_at: new Date(now).toISOString(),
    created_by: c.get("principal").sub,
    expires_at: new Date(now + body.ttl_seconds * 1000).toISOString(),
    tags: [...new Set(body.tags)],
  };
  await insertEnrollmentToken(c.env.DB, created);
  return c.json({ token, token_id: created.token_id, expires_at: created.expires_at, tags: created.tags }, 201);
});
