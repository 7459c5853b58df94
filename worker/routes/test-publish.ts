import { authenticate, hasRole, requestCredentials } from "../auth/jwt.ts";
import { ErrorCode, RelayError } from "../errors.ts";
import type { PublishedEvent } from "../fleet-events/contract.ts";
import { fleetEvents } from "../stubs.ts";
import { createRouter } from "./common.ts";

/** Most events one call hands over (a HostRelay's outbox batches are smaller). */
const MAX_EVENTS = 500;

/**
 * Test-only: `POST /test/fleet-events/publish {"events":[…]}` hands the events to FleetEvents'
 * `publish` RPC, as a HostRelay's outbox does, so `bench/events.ts` can load the event stream
 * beyond what the command path produces (about 360 commands/s on the bench machine). Inert, a
 * plain 404 like any unknown route, unless TEST_FAULTS is "1" (worker/test-faults.ts: only the
 * vitest config and the benchmark set it, never wrangler.toml); even then it needs an admin token.
 * Not in the OpenAPI document, and outside /api/, so it is no audited mutation.
 */
export const testPublishRoutes = createRouter().post("/test/fleet-events/publish", async (c) => {
  if (c.env.TEST_FAULTS !== "1") throw new RelayError(ErrorCode.NOT_FOUND, `no route for ${c.req.method} ${c.req.path}`);
  const principal = await authenticate(requestCredentials(c.req.raw.headers, c.env), c.env);
  if (!hasRole(principal, "admin")) throw new RelayError(ErrorCode.FORBIDDEN, `this needs the admin role; the token has ${principal.role}`);
  const body = (await c.req.json().catch(() => null)) as { events?: unknown } | null;
  if (!body || !Array.isArray(body.events) || body.events.length > MAX_EVENTS) {
    throw new RelayError(ErrorCode.VALIDATION, `send {"events": [...]} with at most ${MAX_EVENTS} events`);
  }
  // publish validates each event itself (an invalid one is logged and skipped).
  await fleetEvents(c.env).publish(body.events as PublishedEvent[]);
  return c.body(null, 204);
});
