import { createRoute, z } from "@hono/zod-openapi";
import type { MiddlewareHandler } from "hono";
import { EventFilterLimits, EventStreamQuery, FleetEventType } from "../../schemas/index.ts";
import { authenticate, hasRole, type Principal, type Role, requestCredentials, verifyToken } from "../auth/jwt.ts";
import { ErrorCode, RelayError } from "../errors.ts";
import { INTERNAL_SUBSCRIPTION_HEADER, type Subscription } from "../fleet-events/contract.ts";
import { fleetEvents } from "../stubs.ts";
import { type AppEnv, BEARER, createRouter, problems } from "./common.ts";

/** The subprotocol a browser offers before its token: `new WebSocket(url, ["bearer", token])`. */
export const BEARER_PROTOCOL = "bearer";

function offeredProtocols(header: string | undefined): string[] {
  return header
    ? header
        .split(",")
        .map((p) => p.trim())
        .filter(Boolean)
    : [];
}

/**
 * Like `requireRole`, but a browser cannot set headers on a WebSocket, so the token may also come
 * as the subprotocol after `bearer`. An Authorization header, when present, is the one checked.
 */
function requireStreamRole(role: Role): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    // Behind Cloudflare Access the upgrade request carries Access's assertion like any other.
    const authorization = requestCredentials(c.req.raw.headers, c.env);
    const offered = offeredProtocols(c.req.header("sec-websocket-protocol"));
    const at = offered.indexOf(BEARER_PROTOCOL);
    let principal: Principal;
    if (authorization !== undefined) {
      principal = await authenticate(authorization, c.env);
    } else if (at >= 0 && offered[at + 1] !== undefined) {
      principal = await verifyToken(offered[at + 1]!, c.env);
    } else {
      throw new RelayError(
        ErrorCode.AUTH_MISSING,
        'send Authorization: Bearer <JWT>, or offer the WebSocket subprotocols "bearer", "<JWT>"',
        { headers: { "www-authenticate": 'Bearer realm="fleet-relay"' } },
      );
    }
    if (!hasRole(principal, role)) {
      throw new RelayError(ErrorCode.FORBIDDEN, `this needs the ${role} role; the token has ${principal.role}`);
    }
    c.set("principal", principal);
    await next();
  };
}

const eventsRoute = createRoute({
  method: "get",
  path: "/api/events",
  operationId: "streamEvents",
  tags: ["events"],
  summary: "Live fleet events (WebSocket)",
  description: [
    "A WebSocket of JSON text frames: events (`type` one of " +
      FleetEventType.options.map((t) => `\`${t}\``).join(", ") +
      ", with `offset`, `epoch`, `at` and the ids they concern: `host_id`, `message_id`, `job_id`, `state`, …) and control frames " +
      "(`ready`, `refetch`, each with the stream's current `offset` and `epoch`).",
    "Browsers, which cannot set headers on a WebSocket, send the token as the subprotocol pair `bearer`, `<JWT>` " +
      '(`new WebSocket(url, ["bearer", token])`); the response then selects `bearer`. Other clients may send `Authorization: Bearer <JWT>`.',
    "Filters (comma-separated, combined with AND; values within one filter with OR): `hosts` (host ids), `tags` (an event matches " +
      "if its host has any of them), `jobs` (job ids), `types`. At most " +
      `${EventFilterLimits.hosts} hosts, ${EventFilterLimits.jobs} jobs and ${EventFilterLimits.tags} tags.`,
    "Without `after`: `ready`, then live events. With `after=<offset>&epoch=<epoch>` (the last event seen): the missed events " +
      "that match the filters, in order, then `ready`, then live events; or, if the bounded history no longer covers that " +
      "offset or the epoch differs, `refetch` (reload state over REST), then live events.",
    "Send `ping` to get `pong`. Everything else a client sends is ignored.",
  ].join("\n\n"),
  security: BEARER,
  middleware: [requireStreamRole("viewer")] as const,
  request: { query: EventStreamQuery },
  responses: {
    101: {
      description: "Switching protocols; the stream starts with replayed events (on resume) and `ready`, or with `refetch`",
      headers: z.object({
        "Sec-WebSocket-Protocol": z
          .string()
          .optional()
          .openapi({ description: "`bearer`, when the client offered it (with the token after it)" }),
      }),
    },
    ...problems(400, 401, 403, 426),
  },
});

export const eventRoutes = createRouter().openapi(eventsRoute, async (c) => {
  const q = c.req.valid("query");
  if (c.req.header("upgrade")?.toLowerCase() !== "websocket") {
    throw new RelayError(ErrorCode.UPGRADE_REQUIRED, "connect with a WebSocket upgrade");
  }
  // Absent filters and resume fields are left out of the JSON.
  const subscription: Subscription = {
    filter: { hosts: q.hosts, jobs: q.jobs, tags: q.tags, types: q.types },
    after: q.after,
    epoch: q.epoch,
  };
  // A fresh request: nothing the client sent reaches the object except through our own header.
  const forward = new Request("https://fleet-events.internal/subscribe", {
    headers: { upgrade: "websocket", [INTERNAL_SUBSCRIPTION_HEADER]: JSON.stringify(subscription) },
  });
  const res = await fleetEvents(c.env).fetch(forward);
  if (res.status !== 101 || !offeredProtocols(c.req.header("sec-websocket-protocol")).includes(BEARER_PROTOCOL)) return res;
  // A browser fails the connection unless the server selects one of the subprotocols it offered.
  return new Response(null, { status: 101, webSocket: res.webSocket, headers: { "sec-websocket-protocol": BEARER_PROTOCOL } });
});
