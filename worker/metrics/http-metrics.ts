import type { Context, MiddlewareHandler } from "hono";
import { matchedRoutes } from "hono/route";
import type { Env } from "../env.ts";
import { M } from "./catalogue.ts";
import { flushWorkerMetrics, observeWorker } from "./worker-recorder.ts";

const METHODS: ReadonlySet<string> = new Set(["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]);

/**
 * The route template that answered (`/api/hosts/:host_id/commands`), never the raw path, so the
 * label is bounded by the API's routes; "unmatched" when no route did (404s for made-up paths).
 */
export function routeTemplate(c: Context): string {
  const routes = matchedRoutes(c);
  const last = routes[routes.length - 1];
  if (!last || last.method === "ALL" || last.path.includes("*")) return "unmatched";
  return last.path;
}

/** Times every request by route template, method and status (fleet_relay_http_request_duration_seconds). */
export const requestMetrics: MiddlewareHandler<{ Bindings: Env }> = async (c, next) => {
  const started = Date.now();
  try {
    await next();
  } finally {
    const method = METHODS.has(c.req.method) ? c.req.method : "other";
    observeWorker(M.HTTP_DURATION, { route: routeTemplate(c), method, status: String(c.res.status) }, (Date.now() - started) / 1000);
    const flushed = flushWorkerMetrics(c.env);
    if (flushed) {
      try {
        c.executionCtx.waitUntil(flushed);
      } catch {
        // No execution context (a direct app.request in a test): the flush runs unawaited.
      }
    }
  }
};
