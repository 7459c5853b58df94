import type { MiddlewareHandler } from "hono";
import { requestLogsEnabled } from "./config.ts";
import { createLogger } from "./log.ts";
import type { AppEnv } from "./routes/common.ts";

export const REQUEST_ID_HEADER = "X-Request-Id";

/** What an incoming id may look like to be kept: bounded, printable, no separators a log could split on. */
const VALID_REQUEST_ID = /^[A-Za-z0-9._:-]{8,128}$/;

/** The caller's id when it is well-formed (so a trace spans the caller's logs and ours), else a new UUID. */
export function requestIdFor(incoming: string | undefined): string {
  return incoming !== undefined && VALID_REQUEST_ID.test(incoming) ? incoming : crypto.randomUUID();
}

/**
 * First middleware: names the request, puts the id and a logger carrying it in the context, and
 * stamps `X-Request-Id` on every response (errors and 404s included). Logs one line per request.
 */
export const requestId: MiddlewareHandler<AppEnv> = async (c, next) => {
  const id = requestIdFor(c.req.header(REQUEST_ID_HEADER));
  const logger = createLogger({ request_id: id });
  c.set("requestId", id);
  c.set("log", logger);
  const started = Date.now();
  await next();
  // A WebSocket upgrade's 101 response has immutable headers; everything else gets the id.
  if (c.res.status !== 101) {
    try {
      c.res.headers.set(REQUEST_ID_HEADER, id);
    } catch {
      // Headers of a response passed through from a Durable Object are immutable: copy it.
      c.res = new Response(c.res.body, c.res);
      c.res.headers.set(REQUEST_ID_HEADER, id);
    }
  }
  if (requestLogsEnabled(c.env)) {
    logger.info("request", {
      method: c.req.method,
      path: c.req.path,
      status: c.res.status,
      duration_ms: Date.now() - started,
    });
  }
};
