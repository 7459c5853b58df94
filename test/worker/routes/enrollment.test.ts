import "reflect-metadata";
import { env, exports } from "cloudflare:workers";
import * as x509 from "@peculiar/x509";
import { describe, expect, it } from "vitest";
import { api, BASE, TestAgent, tlsClientAuth } from "../helpers.ts";

const EC = { name: "ECDSA", namedCurve: "P-256" } as const;

async function csrFor(keys: CryptoKeyPair, name = "CN=web-1"): Promise<string> {
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({ name, keys, signingAlgorithm: { name: "ECDSA", hash: "SHA-256" } });
  return csr.toString("pem");
}

async function newKeys(): Promise<CryptoKeyPair> {
  return (await crypto.subtle.generateKey(EC, true, ["sign", "verify"])) as CryptoKeyPair;
}

async function enrollmentToken(body: object = {}): Promise<{ token: string; expires_at: string; tags: string[] }> {
  const res = await api("/api/enrollment-tokens", { body, role: "admin" });
  expect(res.status).toBe(201);
  return res.json();
}

function enroll(body: object, headers: Record<string, string> = {}): Promise<Response> {
  return exports.default.fetch(
    new Request(`${BASE}/agent/enroll`, {
      method: "POST",
      headers: { "content-type": "application/json", ...headers },
      body: JSON.stringify(body),
    }),
  );
}

async function fingerprintOf(pem: string): Promise<string> {
  const cert = new x509.X509Certificate(pem);
  return [...new Uint8Array(await crypto.subtle.digest("SHA-256", cert.rawData))].map((b) => b.toString(16).padStart(2, "0")).join("");
}

describe("enrolment", () => {
  it("signs the agent's CSR, registers the host with its tags, and the certificate then connects", async () => {
    const { token } = await enrollmentToken({ tags: ["web", "eu"] });
    const keys = await newKeys();
    const res = await enroll({ token, csr: await csrFor(keys), hostname: "web-1" });
    expect(res.status).toBe(201);
    const body = (await res.json()) as { host_id: string; certificate: string; ca_certificate: string; not_after: string };
    const cert = new x509.X509Certificate(body.certificate);
    // Issued by the fleet CA, over the agent's own key, for client auth, ~90 days.
    expect(body.ca_certificate.trim()).toBe(env.FLEET_CA_CERT.trim());
    expect(await cert.verify({ publicKey: new x509.X509Certificate(env.FLEET_CA_CERT).publicKey })).toBe(true);
    const spki = new Uint8Array((await crypto.subtle.exportKey("spki", keys.publicKey)) as ArrayBuffer);
    expect(new Uint8Array(cert.publicKey.rawData)).toEqual(spki);
    expect(cert.subject).toContain(body.host_id);
    const days = (cert.notAfter.getTime() - Date.now()) / 86_400_000;
    expect(days).toBeGreaterThan(89);
    expect(days).toBeLessThan(91);

    const host = (await (await api(`/api/hosts/${body.host_id}`, { role: "viewer" })).json()) as any;
    expect(host.hostname).toBe("web-1");
    expect(host.tags).toEqual(["eu", "web"]);
    expect(host.cert_fingerprint_sha256).toBe(await fingerprintOf(body.certificate));

    const agent = await TestAgent.connect(await fingerprintOf(body.certificate));
    expect(agent.frames.find((f) => f.message_type === "welcome").host_id).toBe(body.host_id);
    agent.close();
  });

  it("burns the token: a second enrolment with it is refused and registers nothing", async () => {
    const { token } = await enrollmentToken();
    expect((await enroll({ token, csr: await csrFor(await newKeys()), hostname: "a-1" })).status).toBe(201);
    const before = (await (await api("/api/hosts?limit=500", { role: "viewer" })).json()) as any;
    const again = await enroll({ token, csr: await csrFor(await newKeys()), hostname: "a-2" });
    expect(again.status).toBe(401);
    expect(((await again.json()) as any).code).toBe("ERR_ENROLLMENT_TOKEN_USED");
    const after = (await (await api("/api/hosts?limit=500", { role: "viewer" })).json()) as any;
    expect(after.items.length).toBe(before.items.length);
  });

  it("registers exactly one host when two enrolments race with one token", async () => {
    const { token } = await enrollmentToken();
    const results = await Promise.all(
      [1, 2, 3].map(async (i) => enroll({ token, csr: await csrFor(await newKeys()), hostname: `race-${i}` })),
    );
    expect(results.map((r) => r.status).sort()).toEqual([201, 401, 401]);
  });

  it("refuses forged and expired tokens", async () => {
    const forged = await enroll({ token: "fet_forged", csr: await csrFor(await newKeys()), hostname: "f-1" });
    expect(forged.status).toBe(401);
    expect(((await forged.json()) as any).code).toBe("ERR_ENROLLMENT_TOKEN_INVALID");

    const { token } = await enrollmentToken({ ttl_seconds: 60 });
    await env.DB.prepare("UPDATE enrollment_tokens SET expires_at = ? WHERE used_at IS NULL AND expires_at > ?")
      .bind(new Date(Date.now() - 1000).toISOString(), new Date().toISOString())
      .run();
    const expired = await enroll({ token, csr: await csrFor(await newKeys()), hostname: "f-2" });
    expect(expired.status).toBe(401);
    expect(((await expired.json()) as any).code).toBe("ERR_ENROLLMENT_TOKEN_EXPIRED");
  });

  it("refuses a CSR whose signature does not verify, and keeps the token usable", async () => {
    const { token } = await enrollmentToken();
    const pem = await csrFor(await newKeys());
    // Flip one byte of the signature at the end of the DER.
    const der = new Uint8Array(new x509.Pkcs10CertificateRequest(pem).rawData);
    der[der.length - 3] = der[der.length - 3]! ^ 0xff;
    const tampered = new x509.Pkcs10CertificateRequest(der.buffer).toString("pem");
    const res = await enroll({ token, csr: tampered, hostname: "t-1" });
    expect(res.status).toBe(400);
    expect(((await res.json()) as any).code).toBe("ERR_CSR_INVALID");
    expect((await enroll({ token, csr: await csrFor(await newKeys()), hostname: "t-1" })).status).toBe(201);
  });

  it("refuses non-PEM CSRs and missing fields with validation errors", async () => {
    const { token } = await enrollmentToken();
    const res = await enroll({ token, csr: "hello", hostname: "x-1" });
    expect(res.status).toBe(400);
    const problem = (await res.json()) as any;
    expect(problem.errors.map((e: any) => e.path)).toContain("csr");
  });

  it("only admins create enrolment tokens", async () => {
    expect((await api("/api/enrollment-tokens", { body: {}, role: "operator" })).status).toBe(403);
    expect((await api("/api/enrollment-tokens", { body: { ttl_seconds: 5 }, role: "admin" })).status).toBe(400);
  });
});

describe("renewal", () => {
  it("issues a new certificate to an authenticated agent; both certificates then identify the host", async () => {
    const { token } = await enrollmentToken();
    const first = (await (await enroll({ token, csr: await csrFor(await newKeys()), hostname: "r-1" })).json()) as any;
    const oldFp = await fingerprintOf(first.certificate);
    const res = await exports.default.fetch(
      new Request(`${BASE}/agent/renew`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ csr: await csrFor(await newKeys()) }),
        cf: { tlsClientAuth: tlsClientAuth(oldFp) },
      } as RequestInit),
    );
    expect(res.status).toBe(200);
    const renewed = (await res.json()) as any;
    expect(renewed.host_id).toBe(first.host_id);
    const newFp = await fingerprintOf(renewed.certificate);
    expect(newFp).not.toBe(oldFp);
    const host = (await (await api(`/api/hosts/${first.host_id}`, { role: "viewer" })).json()) as any;
    expect(host.cert_fingerprint_sha256).toBe(newFp);
    (await TestAgent.connect(newFp)).close();
    (await TestAgent.connect(oldFp)).close();
  });

  it("refuses renewal without a verified client certificate", async () => {
    const res = await exports.default.fetch(
      new Request(`${BASE}/agent/renew`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ csr: await csrFor(await newKeys()) }),
      }),
    );
    expect(res.status).toBe(401);
  });
});

describe("enrolment rate limit per source address", () => {
  it("past the limit (ENROLL_RATE_LIMIT, 50 in these tests, 10 a minute by default) an address gets 429 with Retry-After, before its token is even read; other addresses are unaffected", async () => {
    const address = "203.0.113.7";
    const attempts: Response[] = [];
    for (let i = 0; i < 51; i++)
      attempts.push(await enroll({ token: "x".repeat(43), csr: "nope", hostname: "web-1" }, { "cf-connecting-ip": address }));
    // Refused on their merits (an invalid body) until the limit; the limit is counted first.
    for (const res of attempts.slice(0, 50)) expect(res.status).toBe(400);
    const limited = attempts[50]!;
    expect(limited.status).toBe(429);
    expect(limited.headers.get("content-type")).toBe("application/problem+json");
    expect(((await limited.json()) as { code: string }).code).toBe("ERR_RATE_LIMITED");
    const retryAfter = Number(limited.headers.get("retry-after"));
    expect(retryAfter).toBeGreaterThanOrEqual(1);
    expect(retryAfter).toBeLessThanOrEqual(60);

    // A valid token from the limited address is refused too; from another address it enrols.
    const { token } = await enrollmentToken();
    const body = { token, csr: await csrFor(await newKeys()), hostname: "web-2" };
    expect((await enroll(body, { "cf-connecting-ip": address })).status).toBe(429);
    expect((await enroll(body, { "cf-connecting-ip": "203.0.113.8" })).status).toBe(201);
  });
});
