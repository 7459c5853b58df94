import { env } from "cloudflare:workers";
import { SignJWT } from "jose";
import { describe, expect, it } from "vitest";
import { api, expectProblem, registerHost, token, uniqueFingerprint } from "../helpers.ts";

const ISSUER = "fleet-relay";
const AUDIENCE = "fleet-relay-api";

function b64url(value: object): string {
  return btoa(JSON.stringify(value)).replace(/=+$/, "").replaceAll("+", "-").replaceAll("/", "_");
}

function validClaims(extra: object = {}) {
  const now = Math.floor(Date.now() / 1000);
  return { iss: ISSUER, aud: AUDIENCE, sub: "attacker", iat: now, exp: now + 300, role: "admin", ...extra };
}

/** Signs `claims` with the relay's secret exactly as given (no claims added). */
function signRaw(claims: Record<string, unknown>, alg = "HS256", secret = env.JWT_SECRET): Promise<string> {
  return new SignJWT(claims).setProtectedHeader({ alg }).sign(new TextEncoder().encode(secret));
}

/** A read any viewer may make: the cheapest authenticated route. */
function listHosts(authorization?: string): Promise<Response> {
  return api("/api/hosts?limit=1", { token: null, headers: authorization === undefined ? {} : { authorization } });
}

async function expectUnauthorized(res: Response, code: string): Promise<any> {
  const problem = await expectProblem(res, 401, code);
  const challenge = res.headers.get("www-authenticate");
  expect(challenge).toMatch(/^Bearer realm="fleet-relay"/);
  if (code !== "ERR_AUTH_MISSING") expect(challenge).toContain('error="invalid_token"');
  return problem;
}

describe("REST authentication (401)", () => {
  it("a request without a token is refused with a Bearer challenge", async () => {
    const res = await listHosts();
    const problem = await expectUnauthorized(res, "ERR_AUTH_MISSING");
    expect(problem.status).toBe(401);
    expect(problem.type).toBe("urn:fleet-relay:problem:ERR_AUTH_MISSING");
    expect(problem.instance).toBe("/api/hosts");
  });

  it("a valid token is accepted (control for the refusals below)", async () => {
    const res = await listHosts(`Bearer ${await token("viewer")}`);
    expect(res.status).toBe(200);
    const page = (await res.json()) as { items: unknown[] };
    expect(Array.isArray(page.items)).toBe(true);
  });

  it("the Bearer scheme name is case-insensitive (RFC 7235)", async () => {
    const res = await listHosts(`bearer ${await token("viewer")}`);
    expect(res.status).toBe(200);
  });

  it.each([
    ["Basic credentials", "Basic dXNlcjpwYXNz"],
    ["Basic x", "Basic x"],
    ["a bare token without scheme", "eyJhbGciOiJIUzI1NiJ9.e30.sig"],
    ["Bearer with no token", "Bearer "],
    ["a token with spaces", "Bearer abc def"],
  ])("a malformed Authorization header (%s) is refused", async (_, header) => {
    await expectUnauthorized(await listHosts(header), "ERR_AUTH_INVALID");
  });

  it("a garbage bearer token is refused", async () => {
    await expectUnauthorized(await listHosts("Bearer not.a.jwt"), "ERR_AUTH_INVALID");
  });

  it("an expired token is refused as expired", async () => {
    const expired = await token("admin", { ttl: Math.floor(Date.now() / 1000) - 60 });
    const problem = await expectUnauthorized(await listHosts(`Bearer ${expired}`), "ERR_AUTH_EXPIRED");
    expect(problem.title).toBe("Token expired");
  });

  it("an unsigned alg:none token is refused even with valid claims", async () => {
    const unsigned = `${b64url({ alg: "none", typ: "JWT" })}.${b64url(validClaims())}.`;
    await expectUnauthorized(await listHosts(`Bearer ${unsigned}`), "ERR_AUTH_INVALID");
  });

  it("a token whose payload was altered after signing is refused", async () => {
    const viewer = await token("viewer");
    const [header, , signature] = viewer.split(".");
    const forged = `${header}.${b64url(validClaims({ role: "admin" }))}.${signature}`;
    await expectUnauthorized(await listHosts(`Bearer ${forged}`), "ERR_AUTH_INVALID");
  });

  it("a token for another audience is refused", async () => {
    const t = await token("admin", { audience: "some-other-api" });
    await expectUnauthorized(await listHosts(`Bearer ${t}`), "ERR_AUTH_INVALID");
  });

  it("a token from another issuer is refused", async () => {
    const t = await token("admin", { issuer: "https://evil.example" });
    await expectUnauthorized(await listHosts(`Bearer ${t}`), "ERR_AUTH_INVALID");
  });

  it("a token signed with another secret is refused", async () => {
    const t = await token("admin", { secret: "not-the-relay-secret-not-the-relay-secret" });
    await expectUnauthorized(await listHosts(`Bearer ${t}`), "ERR_AUTH_INVALID");
  });

  it("a token without exp is refused", async () => {
    const { exp: _exp, ...noExp } = validClaims();
    const t = await signRaw(noExp);
    await expectUnauthorized(await listHosts(`Bearer ${t}`), "ERR_AUTH_INVALID");
  });

  it("a token without iss or aud is refused", async () => {
    const { iss: _iss, ...noIss } = validClaims();
    const { aud: _aud, ...noAud } = validClaims();
    await expectUnauthorized(await listHosts(`Bearer ${await signRaw(noIss)}`), "ERR_AUTH_INVALID");
    await expectUnauthorized(await listHosts(`Bearer ${await signRaw(noAud)}`), "ERR_AUTH_INVALID");
  });

  it.each(["HS512", "HS384"])("a %s token is refused when only HS256 is pinned", async (alg) => {
    const t = await token("admin", { alg });
    await expectUnauthorized(await listHosts(`Bearer ${t}`), "ERR_AUTH_INVALID");
  });

  it("authentication comes before validation and lookup: no token on a bad request is still 401", async () => {
    const res = await api("/api/hosts/not-a-uuid/packages/install", { token: null, body: { packages: ["$(reboot)"] } });
    await expectUnauthorized(res, "ERR_AUTH_MISSING");
  });

  it("a refused request stores nothing: the host can still be registered afterwards", async () => {
    const fingerprint = uniqueFingerprint();
    const body = { hostname: "unauth-1", cert_fingerprint_sha256: fingerprint };
    await expectUnauthorized(await api("/api/hosts", { token: null, body }), "ERR_AUTH_MISSING");
    const expired = await token("admin", { ttl: Math.floor(Date.now() / 1000) - 60 });
    await expectUnauthorized(await api("/api/hosts", { token: expired, body }), "ERR_AUTH_EXPIRED");
    const res = await api("/api/hosts", { role: "admin", body });
    expect(res.status).toBe(201);
  });
});

describe("REST authorisation (403)", () => {
  it("a viewer cannot send a command, and nothing is queued", async () => {
    const host = await registerHost();
    const res = await api(`/api/hosts/${host.host_id}/packages/install`, { role: "viewer", body: { packages: ["nginx"] } });
    const problem = await expectProblem(res, 403, "ERR_FORBIDDEN");
    expect(problem.detail).toContain("operator");
    const list = await api(`/api/hosts/${host.host_id}/commands`, { role: "viewer" });
    expect(((await list.json()) as { items: unknown[] }).items).toEqual([]);
  });

  it("a viewer is refused before the body is validated (403, not 400)", async () => {
    const host = await registerHost();
    const res = await api(`/api/hosts/${host.host_id}/commands`, { role: "viewer", body: { command_type: "nope" } });
    await expectProblem(res, 403, "ERR_FORBIDDEN");
  });

  it("an operator cannot register hosts", async () => {
    const fingerprint = uniqueFingerprint();
    const res = await api("/api/hosts", { role: "operator", body: { hostname: "op-1", cert_fingerprint_sha256: fingerprint } });
    await expectProblem(res, 403, "ERR_FORBIDDEN");
    // Nothing was registered: an admin can still register that fingerprint.
    const admin = await api("/api/hosts", { role: "admin", body: { hostname: "op-1", cert_fingerprint_sha256: fingerprint } });
    expect(admin.status).toBe(201);
  });

  it("an operator can send commands (control)", async () => {
    const host = await registerHost();
    const res = await api(`/api/hosts/${host.host_id}/commands`, { role: "operator", body: { command_type: "system_info" } });
    expect(res.status).toBe(202);
  });

  it("a valid token without a role is forbidden", async () => {
    const res = await listHosts(`Bearer ${await token(null)}`);
    const problem = await expectProblem(res, 403, "ERR_FORBIDDEN");
    expect(problem.detail).toContain("no role");
  });

  it.each([
    ["an unknown role", { role: "superuser" }],
    ["a non-string role", { role: 3 }],
    ["an empty roles array", { roles: [] }],
    ["roles with only unknown names", { roles: ["root", "owner"] }],
  ])("a token with %s is forbidden", async (_, claims) => {
    const { role: _role, ...base } = validClaims();
    const t = await signRaw({ ...base, ...claims });
    await expectProblem(await listHosts(`Bearer ${t}`), 403, "ERR_FORBIDDEN");
  });

  it("roles: [viewer, admin] counts as admin", async () => {
    const { role: _role, ...base } = validClaims();
    const t = await signRaw({ ...base, roles: ["viewer", "admin"] });
    const res = await api("/api/hosts", {
      token: t,
      body: { hostname: "multi-role", cert_fingerprint_sha256: uniqueFingerprint() },
    });
    expect(res.status).toBe(201);
  });

  it("roles: [viewer] stays a viewer", async () => {
    const { role: _role, ...base } = validClaims();
    const t = await signRaw({ ...base, roles: ["viewer"] });
    const res = await api("/api/hosts", { token: t, body: { hostname: "multi-role", cert_fingerprint_sha256: uniqueFingerprint() } });
    await expectProblem(res, 403, "ERR_FORBIDDEN");
    expect((await listHosts(`Bearer ${t}`)).status).toBe(200);
  });
});
