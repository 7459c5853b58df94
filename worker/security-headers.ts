import type { MiddlewareHandler } from "hono";

/** Sent on every response: no MIME sniffing, never framed (CSP for current browsers, X-Frame-Options for old ones). */
export const SECURITY_HEADERS: Readonly<Record<string, string>> = {
  "X-Content-Type-Options": "nosniff",
  "Content-Security-Policy": "frame-ancestors 'none'",
  "X-Frame-Options": "DENY",
};

/** API answers (`/api/*`, `/agent/*`) are per caller and per moment: never stored by a cache. */
const NO_STORE_PREFIXES = ["/api/", "/agent/"];

/**
 * Adds the security headers after the route (and the error handler) has answered, so problem
 * documents and 404s carry them too. A WebSocket upgrade (101) is left as it is: its headers are
 * not content, and a Durable Object's upgrade response cannot be rebuilt without losing the socket.
 */
export const securityHeaders: MiddlewareHandler = async (c, next) => {
  await next();
  if (c.res.status === 101) return;
  const noStore = NO_STORE_PREFIXES.some((p) => c.req.path.startsWith(p));
  let headers = c.res.headers;
  try {
    apply(headers, noStore);
  } catch {
    // Immutable headers (a response passed through from a subrequest): copy it once.
    c.res = new Response(c.res.body, c.res);
    headers = c.res.headers;
    apply(headers, noStore);
  }
};

function apply(headers: Headers, noStore: boolean): void {
  for (const [name, value] of Object.entries(SECURITY_HEADERS)) {
    // A page that loads content (/docs) states its own, stricter policy, which includes frame-ancestors.
    if (name === "Content-Security-Policy" && headers.has(name)) continue;
    headers.set(name, value);
  }
  if (noStore && !headers.has("Cache-Control")) headers.set("Cache-Control", "no-store");
}
