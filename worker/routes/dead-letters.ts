import { createRoute, z } from "@hono/zod-openapi";
import { CommandAccepted, DeadLetterPage, PageQuery, RequeueRequest } from "../../schemas/index.ts";
import { assertDeadlineWithinBound } from "../deadline.ts";
import { unwrap } from "../errors.ts";
import { hostRelay } from "../stubs.ts";
import {
  BEARER,
  createRouter,
  HostCommandParams,
  HostIdParam,
  jsonBody,
  jsonContent,
  problems,
  requireHost,
  requireRole,
} from "./common.ts";

const listRoute = createRoute({
  method: "get",
  path: "/api/hosts/{host_id}/dead-letters",
  operationId: "listDeadLetters",
  tags: ["dead letters"],
  summary: "Commands that ran out of delivery attempts, newest first",
  security: BEARER,
  middleware: [requireRole("viewer")] as const,
  request: { params: HostIdParam, query: z.strictObject(PageQuery) },
  responses: { 200: jsonContent(DeadLetterPage, "One page; pass next_cursor as cursor for the next"), ...problems(400, 401, 403, 404) },
});

const requeueRoute = createRoute({
  method: "post",
  path: "/api/hosts/{host_id}/dead-letters/{message_id}/requeue",
  operationId: "requeueDeadLetter",
  tags: ["dead letters"],
  summary: "Put a dead-lettered command back in the queue",
  description:
    "Keeps the original message_id, so an agent that did receive an earlier attempt answers from its journal instead of running it again. Attempts restart at zero. Give a new deadline if the old one has passed.",
  security: BEARER,
  middleware: [requireRole("operator")] as const,
  request: { params: HostCommandParams, body: jsonBody(RequeueRequest, "Optional new deadline and attempt budget", false) },
  responses: {
    202: {
      description: "Queued again",
      headers: z.object({ Location: z.string().openapi({ description: "URL of the command" }) }),
      content: { "application/json": { schema: CommandAccepted } },
    },
    ...problems(400, 401, 403, 404, 409, 413, 415),
  },
});

export const deadLetterRoutes = createRouter()
  .openapi(listRoute, async (c) => {
    const { host_id } = c.req.valid("param");
    const q = c.req.valid("query");
    await requireHost(c.env, host_id);
    return c.json(unwrap(await hostRelay(c.env, host_id).listDeadLetters(host_id, { limit: q.limit, cursor: q.cursor })), 200);
  })
  .openapi(requeueRoute, async (c) => {
    const { host_id, message_id } = c.req.valid("param");
    const body = c.req.valid("json") ?? {};
    await requireHost(c.env, host_id);
    assertDeadlineWithinBound(body.expires_at, Date.now());
    const result = unwrap(await hostRelay(c.env, host_id).requeue(host_id, message_id, body));
    c.header("Location", `/api/hosts/${host_id}/commands/${message_id}`);
    return c.json(result, 202);
  });
