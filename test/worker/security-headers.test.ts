import { exports } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { api, BASE, registerHost } from "./helpers.ts";

function expectSecurityHeaders(res: Response): void {
  expect(res.headers.get("x-content-type-options")).toBe("nosniff");
  // /docs states a fuller policy of its own; every policy forbids framing.
  expect(res.headers.get("content-security-policy")).toMatch(/(^|; )frame-ancestors 'none'(;|$)/);
  expect(res.headers.get("x-frame-options")).toBe("DENY");
}

describe("security headers on every response", () => {
  it("API answers (success, problem, unauthenticated) carry them and Cache-Control: no-store", async () => {
    const host = await registerHost();
    const responses = [
      await api(`/api/hosts/${host.host_id}`, { role: "viewer" }),
      await api("/api/hosts", { token: null }), // 401 problem from the auth layer
      await api(`/api/hosts/${host.host_id}/commands`, { role: "operator", rawBody: "{", headers: { "content-type": "application/json" } }), // 400 from a middleware
      await api("/api/nowhere", { role: "viewer" }), // 404 from notFound
      await exports.default.fetch(
        new Request(`${BASE}/agent/enroll`, { method: "POST", headers: { "content-type": "application/json" }, body: "{}" }),
      ),
    ];
    expect(responses.map((r) => r.status)).toEqual([200, 401, 400, 404, 400]);
    for (const res of responses) {
      expectSecurityHeaders(res);
      expect(res.headers.get("cache-control")).toBe("no-store");
    }
  });

  it("non-API pages carry them too", async () => {
    for (const path of ["/healthz", "/docs", "/openapi.json", "/nowhere"]) {
      const res = await exports.default.fetch(new Request(`${BASE}${path}`));
      await res.arrayBuffer();
      expectSecurityHeaders(res);
    }
  });
});
