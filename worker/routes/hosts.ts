import { createRoute, z } from "@hono/zod-openapi";
import { HostCreate, HostListQuery, HostPage, HostView } from "../../schemas/index.ts";
import { backoffMs } from "../backoff.ts";
import { Cursor } from "../cursor.ts";
import type { Env } from "../env.ts";
import { ErrorCode, RelayError, unwrap } from "../errors.ts";
import { log } from "../log.ts";
import { getHost, insertHost, listHosts, revokeHost } from "../registry.ts";
import { fleetEvents, hostRelay } from "../stubs.ts";
import { BEARER, createRouter, HostIdParam, jsonBody, jsonContent, problems, requireRole } from "./common.ts";

const createHostRoute = createRoute({
  method: "post",
  path: "/api/hosts",
  operationId: "createHost",
  tags: ["hosts"],
  summary: "Register a host and bind it to its agent's certificate",
  security: BEARER,
  middleware: [requireRole("admin")] as const,
  request: { body: jsonBody(HostCreate, "Host name, SHA-256 fingerprint of the agent's client certificate, tags") },
  responses: {
    201: {
      description: "Registered",
      headers: z.object({ Location: z.string().openapi({ description: "URL of the host" }) }),
      content: { "application/json": { schema: HostView } },
    },
    ...problems(400, 401, 403, 409, 413, 415),
  },
});

const listHostsRoute = createRoute({
  method: "get",
  path: "/api/hosts",
  operationId: "listHosts",
  tags: ["hosts"],
  summary: "Registered hosts, filtered by status, tags and text",
  security: BEARER,
  middleware: [requireRole("viewer")] as const,
  request: { query: HostListQuery },
  responses: { 200: jsonContent(HostPage, "One page; pass next_cursor as cursor for the next"), ...problems(400, 401, 403) },
});

const getHostRoute = createRoute({
  method: "get",
  path: "/api/hosts/{host_id}",
  operationId: "getHost",
  tags: ["hosts"],
  summary: "A host: online/offline, last seen, agent info, queue depth",
  security: BEARER,
  middleware: [requireRole("viewer")] as const,
  request: { params: HostIdParam },
  responses: { 200: jsonContent(HostView, "The host"), ...problems(400, 401, 403, 404) },
});

const revokeRoute = createRoute({
  method: "post",
  path: "/api/hosts/{host_id}/revoke",
  operationId: "revokeHost",
  tags: ["hosts"],
  summary: "Revoke a host: disconnect its agent now and refuse it from now on",
  description: "Commands still queued for the host are cancelled. Revoking twice is harmless.",
  security: BEARER,
  middleware: [requireRole("admin")] as const,
  request: { params: HostIdParam },
  responses: { 200: jsonContent(HostView, "The revoked host"), ...problems(400, 401, 403, 404, 503) },
});

const UUID = /^[0-9a-f-]{36}$/;

/** Calls to the HostRelay before the revocation is answered as not done (503). */
const REVOKE_TRIES = 4;

/**
 * Revocation reaches the HostRelay first, with retries: once it has it, the agent is disconnected and
 * nothing new is delivered. Only then is the registry written, so the API never reports a revocation
 * that has not taken effect. If the relay cannot be reached, nothing is recorded and the caller gets
 * 503 to retry; a revocation written to the registry by other means still takes effect through the
 * relay's own registry check (every REGISTRY_CHECK_S, 5 min, while an agent is connected).
 */
async function tellRelay(env: Env, hostId: string, revokedAt: string): Promise<void> {
  for (let attempt = 1; attempt <= REVOKE_TRIES; attempt++) {
    try {
      unwrap(await hostRelay(env, hostId).revoke(hostId, revokedAt));
      return;
    } catch (err) {
      if (err instanceof RelayError) throw err;
      console.error(
        JSON.stringify({
          level: "warn",
          msg: "telling the host relay of a revocation failed",
          host_id: hostId,
          attempt,
          error: String(err),
        }),
      );
      if (attempt < REVOKE_TRIES)
        await new Promise((resolve) => setTimeout(resolve, backoffMs(attempt + 1, { baseMs: 50, capMs: 500 }, Math.random)));
    }
  }
  throw new RelayError(ErrorCode.RELAY_UNAVAILABLE, `the host's relay could not be reached; host ${hostId} is not revoked yet: retry`);
}

/**
 * Adds each listed host's queue depth as its relay last reported it to the metrics pipeline: one RPC
 * per page, not one per host. Without an answer the page goes out without the field (as before).
 */
async function withQueueDepths(env: Env, items: HostView[]): Promise<HostView[]> {
  if (items.length === 0) return items;
  try {
    const depths = await fleetEvents(env).hostQueueDepths(items.map((h) => h.host_id));
    return items.map((h) => ({ ...h, queue_depth: depths[h.host_id] ?? 0 }));
  } catch (err) {
    log.warn("host list: queue depths unavailable", { error: String(err) });
    return items;
  }
}

export const hostRoutes = createRouter()
  .openapi(createHostRoute, async (c) => {
    const body = c.req.valid("json");
    const hostId = crypto.randomUUID();
    const outcome = await insertHost(c.env.DB, { host_id: hostId, ...body, created_at: new Date().toISOString() });
    if (outcome === "duplicate") {
      throw new RelayError(ErrorCode.HOST_EXISTS, "a host with this certificate fingerprint is already registered");
    }
    const host = (await getHost(c.env.DB, hostId))!;
    c.header("Location", `/api/hosts/${hostId}`);
    return c.json(host, 201);
  })
  .openapi(listHostsRoute, async (c) => {
    const q = c.req.valid("query");
    const after = Cursor.decodeString("h", q.cursor, UUID);
    if (after === "invalid") throw Cursor.invalid();
    const page = await listHosts(c.env.DB, {
      status: q.status,
      tags: q.tags,
      match: q.match,
      q: q.q,
      limit: q.limit,
      after: after ?? undefined,
    });
    return c.json({ items: await withQueueDepths(c.env, page.items), next_cursor: Cursor.encode("h", page.last ?? null) }, 200);
  })
  .openapi(getHostRoute, async (c) => {
    const { host_id } = c.req.valid("param");
    const host = await getHost(c.env.DB, host_id);
    if (!host) throw new RelayError(ErrorCode.HOST_NOT_FOUND, `host ${host_id} is not registered`);
    const stats = await hostRelay(c.env, host_id).stats();
    return c.json({ ...host, queue_depth: stats.queue_depth }, 200);
  })
  .openapi(revokeRoute, async (c) => {
    const { host_id } = c.req.valid("param");
    const existing = await getHost(c.env.DB, host_id);
    if (!existing) throw new RelayError(ErrorCode.HOST_NOT_FOUND, `host ${host_id} is not registered`);
    const at = existing.revoked_at ?? new Date().toISOString();
    // The HostRelay first: it is what delivers, so once it knows, nothing new reaches the agent.
    await tellRelay(c.env, host_id, at);
    await revokeHost(c.env.DB, host_id, at);
    return c.json((await getHost(c.env.DB, host_id))!, 200);
  });
