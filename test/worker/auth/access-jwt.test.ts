/**
 * Behind Cloudflare Access: with JWT_JWKS_URL set, the Worker accepts Access's
 * `Cf-Access-Jwt-Assertion` header as the caller's token (the dashboard needs no pasted token).
 * The JWKS is a key pair generated here and served to jose's fetch by a spy; the app runs in
 * workerd with the test bindings plus the Access settings.
 */
import { createExecutionContext, waitOnExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { exportJWK, generateKeyPair, SignJWT } from "jose";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { createApp } from "../../../worker/app.ts";
import type { Env } from "../../../worker/env.ts";
import { expectProblem } from "../helpers.ts";

const JWKS_URL = "https://fleet-team.cloudflareaccess.test/cdn-cgi/access/certs";
const ISSUER = "https://fleet-team.cloudflareaccess.test";
const AUDIENCE = "access-application-aud-tag";
const accessEnv = { ...env, JWT_JWKS_URL: JWKS_URL, JWT_ISSUER: ISSUER, JWT_AUDIENCE: AUDIENCE } as unknown as Env;

let accessKey: CryptoKey;
let otherKey: CryptoKey;
let jwksFetches = 0;
const app = createApp();

beforeAll(async () => {
  const pair = await generateKeyPair("ES256", { extractable: true });
  accessKey = pair.privateKey;
  otherKey = (await generateKeyPair("ES256")).privateKey;
  const jwk = { ...(await exportJWK(pair.publicKey)), kid: "access-1", alg: "ES256", use: "sig" };
  const realFetch = globalThis.fetch;
  vi.spyOn(globalThis, "fetch").mockImplementation(async (input, init) => {
    const url = input instanceof Request ? input.url : String(input);
    if (url !== JWKS_URL) return realFetch(input, init);
    jwksFetches++;
    return Response.json({ keys: [jwk] });
  });
});

afterAll(() => {
  vi.restoreAllMocks();
});

function accessToken(claims: Record<string, unknown>, key = accessKey): Promise<string> {
  return new SignJWT({ email: "ops@example.com", ...claims })
    .setProtectedHeader({ alg: "ES256", kid: "access-1" })
    .setIssuer(ISSUER)
    .setAudience(AUDIENCE)
    .setSubject("access-user-1")
    .setIssuedAt()
    .setExpirationTime("5m")
    .sign(key);
}

async function call(path: string, headers: Record<string, string>, environment: Env = accessEnv): Promise<Response> {
  const ctx = createExecutionContext();
  const res = await app.fetch(new Request(`https://relay.test${path}`, { headers }), environment, ctx);
  await waitOnExecutionContext(ctx);
  return res;
}

describe("Cloudflare Access assertion (Cf-Access-Jwt-Assertion)", () => {
  it("is accepted as the token when JWT_JWKS_URL is set, with the role it carries", async () => {
    const viewer = await accessToken({ role: "viewer" });
    const res = await call("/api/hosts?limit=1", { "cf-access-jwt-assertion": viewer });
    expect(res.status).toBe(200);
    expect(jwksFetches).toBeGreaterThan(0);
    // The role is still enforced: a viewer may not register hosts.
    const ctx = createExecutionContext();
    const post = await app.fetch(
      new Request("https://relay.test/api/hosts", {
        method: "POST",
        headers: { "cf-access-jwt-assertion": viewer, "content-type": "application/json" },
        body: JSON.stringify({ hostname: "access-1", cert_fingerprint_sha256: "ab".repeat(32) }),
      }),
      accessEnv,
      ctx,
    );
    await expectProblem(post, 403, "ERR_FORBIDDEN");
  });

  it("an assertion signed by another key, or for another audience, is refused", async () => {
    await expectProblem(
      await call("/api/hosts", { "cf-access-jwt-assertion": await accessToken({ role: "admin" }, otherKey) }),
      401,
      "ERR_AUTH_INVALID",
    );
    const wrongAud = await new SignJWT({ role: "admin" })
      .setProtectedHeader({ alg: "ES256", kid: "access-1" })
      .setIssuer(ISSUER)
      .setAudience("another-application")
      .setExpirationTime("5m")
      .sign(accessKey);
    await expectProblem(await call("/api/hosts", { "cf-access-jwt-assertion": wrongAud }), 401, "ERR_AUTH_INVALID");
  });

  it("an Authorization header, when present, is the one checked", async () => {
    const viewer = await accessToken({ role: "viewer" });
    const res = await call("/api/hosts", { "cf-access-jwt-assertion": viewer, authorization: "Bearer not.a.jwt" });
    await expectProblem(res, 401, "ERR_AUTH_INVALID");
  });

  it("without JWT_JWKS_URL (the shared secret) the assertion is ignored: no token is 401", async () => {
    const viewer = await accessToken({ role: "viewer" });
    const res = await call("/api/hosts", { "cf-access-jwt-assertion": viewer }, env as unknown as Env);
    await expectProblem(res, 401, "ERR_AUTH_MISSING");
  });

  it("the event stream accepts it too (a browser behind Access opens the WebSocket with it)", async () => {
    const viewer = await accessToken({ role: "viewer" });
    const res = await call("/api/events", { "cf-access-jwt-assertion": viewer, upgrade: "websocket" });
    expect(res.status).toBe(101);
    res.webSocket!.accept();
    res.webSocket!.close(1000);
    // The same request without it is refused before the upgrade.
    await expectProblem(await call("/api/events", { upgrade: "websocket" }), 401, "ERR_AUTH_MISSING");
  });
});
