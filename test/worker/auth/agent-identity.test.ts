import { runInDurableObject } from "cloudflare:test";
import { exports } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import {
  api,
  BASE,
  colonFingerprint,
  connectRequest,
  expectProblem,
  getHostView,
  helloFrame,
  registerHost,
  relayStub,
  TestAgent,
  tlsClientAuth,
  uniqueFingerprint,
  waitFor,
} from "../helpers.ts";

function connect(request: Request): Promise<Response> {
  return exports.default.fetch(request);
}

function socketsHeld(hostId: string): Promise<number> {
  return runInDurableObject(relayStub(hostId), (_, state) => state.getWebSockets().length);
}

/** A refused connection must leave the host exactly as registered: offline, no agent info, no socket. */
async function expectNothingStored(hostId: string): Promise<void> {
  const host = await getHostView(hostId);
  expect(host.status).toBe("offline");
  expect(host.agent).toBeNull();
  expect(host.connected_at).toBeNull();
  expect(await socketsHeld(hostId)).toBe(0);
}

/** Accepts a 101 response's socket and completes hello/welcome. */
async function greet(res: Response): Promise<{ agent: TestAgent; welcome: any }> {
  expect(res.status).toBe(101);
  const ws = res.webSocket!;
  ws.accept();
  const agent = new TestAgent(ws);
  agent.send(helloFrame());
  const welcome = await agent.next((f) => f.message_type === "welcome");
  return { agent, welcome };
}

describe("GET /agent/connect identity", () => {
  it("a verified certificate bound to a host connects (control)", async () => {
    const host = await registerHost();
    const { agent, welcome } = await greet(await connect(connectRequest(tlsClientAuth(host.fingerprint))));
    expect(welcome.host_id).toBe(host.host_id);
    expect(await socketsHeld(host.host_id)).toBe(1);
    await waitFor(
      () => getHostView(host.host_id),
      (h) => h.status === "online",
    );
    agent.close();
  });

  it("no client certificate at all → 401 ERR_AGENT_CERT_MISSING", async () => {
    const host = await registerHost();
    const res = await connect(connectRequest(null));
    await expectProblem(res, 401, "ERR_AGENT_CERT_MISSING");
    await expectNothingStored(host.host_id);
  });

  it("certPresented 0 → 401 ERR_AGENT_CERT_MISSING", async () => {
    const host = await registerHost();
    const res = await connect(connectRequest(tlsClientAuth(host.fingerprint, { certPresented: "0", certVerified: "NONE" })));
    await expectProblem(res, 401, "ERR_AGENT_CERT_MISSING");
    await expectNothingStored(host.host_id);
  });

  it("identity headers are never trusted: a forged internal host header without a certificate → 401", async () => {
    const host = await registerHost();
    const res = await connect(
      new Request(`${BASE}/agent/connect`, {
        headers: {
          upgrade: "websocket",
          "x-relay-host-id": host.host_id,
          "cf-client-cert-sha256": host.fingerprint,
          "x-client-cert-fingerprint": host.fingerprint,
        },
      }),
    );
    await expectProblem(res, 401, "ERR_AGENT_CERT_MISSING");
    await expectNothingStored(host.host_id);
  });

  it("a certificate that failed verification → 403 ERR_AGENT_CERT_UNVERIFIED", async () => {
    const host = await registerHost();
    const res = await connect(connectRequest(tlsClientAuth(host.fingerprint, { certVerified: "FAILED:self signed certificate" })));
    const problem = await expectProblem(res, 403, "ERR_AGENT_CERT_UNVERIFIED");
    expect(problem.detail).toContain("self signed certificate");
    await expectNothingStored(host.host_id);
  });

  it.each(["NONE", "FAILED:certificate has expired", "success"])("certVerified %j → 403 ERR_AGENT_CERT_UNVERIFIED", async (verdict) => {
    const host = await registerHost();
    const res = await connect(connectRequest(tlsClientAuth(host.fingerprint, { certVerified: verdict })));
    await expectProblem(res, 403, "ERR_AGENT_CERT_UNVERIFIED");
    await expectNothingStored(host.host_id);
  });

  it("a certificate the edge reports revoked → 403 ERR_AGENT_REVOKED", async () => {
    const host = await registerHost();
    const res = await connect(connectRequest(tlsClientAuth(host.fingerprint, { certRevoked: "1" })));
    await expectProblem(res, 403, "ERR_AGENT_REVOKED");
    await expectNothingStored(host.host_id);
  });

  it("a verified certificate with no usable fingerprint → 403", async () => {
    const host = await registerHost();
    const res = await connect(connectRequest(tlsClientAuth(host.fingerprint, { certFingerprintSHA256: "" })));
    await expectProblem(res, 403, "ERR_AGENT_CERT_UNVERIFIED");
    await expectNothingStored(host.host_id);
  });

  it("a verified certificate bound to no host → 403 ERR_AGENT_UNKNOWN", async () => {
    const host = await registerHost();
    const res = await connect(connectRequest(tlsClientAuth(uniqueFingerprint())));
    await expectProblem(res, 403, "ERR_AGENT_UNKNOWN");
    await expectNothingStored(host.host_id);
  });

  it("a revoked host's certificate → 403 ERR_AGENT_REVOKED", async () => {
    const host = await registerHost();
    const revoke = await api(`/api/hosts/${host.host_id}/revoke`, { method: "POST", role: "admin" });
    expect(revoke.status).toBe(200);
    const res = await connect(connectRequest(tlsClientAuth(host.fingerprint)));
    await expectProblem(res, 403, "ERR_AGENT_REVOKED");
    const view = await getHostView(host.host_id);
    expect(view.status).toBe("revoked");
    expect(view.agent).toBeNull();
    expect(view.connected_at).toBeNull();
    expect(await socketsHeld(host.host_id)).toBe(0);
  });

  it("a valid certificate without a WebSocket upgrade → 426 ERR_UPGRADE_REQUIRED", async () => {
    const host = await registerHost();
    const res = await connect(connectRequest(tlsClientAuth(host.fingerprint), false));
    await expectProblem(res, 426, "ERR_UPGRADE_REQUIRED");
    await expectNothingStored(host.host_id);
  });

  it("identity is checked before the upgrade: no certificate and no upgrade → 401, not 426", async () => {
    const host = await registerHost();
    const res = await connect(connectRequest(null, false));
    await expectProblem(res, 401, "ERR_AGENT_CERT_MISSING");
    await expectNothingStored(host.host_id);
  });

  it("a fingerprint given upper-case with colons still matches its host", async () => {
    const host = await registerHost();
    const { agent, welcome } = await greet(await connect(connectRequest(tlsClientAuth(colonFingerprint(host.fingerprint)))));
    expect(welcome.host_id).toBe(host.host_id);
    agent.close();
  });

  it("the certificate decides the host: a forged internal host header cannot redirect the socket", async () => {
    const mine = await registerHost();
    const victim = await registerHost();
    const req = new Request(`${BASE}/agent/connect`, {
      headers: { upgrade: "websocket", "x-relay-host-id": victim.host_id },
      cf: { tlsClientAuth: tlsClientAuth(mine.fingerprint) },
    } as RequestInit);
    const { agent, welcome } = await greet(await connect(req));
    expect(welcome.host_id).toBe(mine.host_id);
    expect(await socketsHeld(mine.host_id)).toBe(1);
    await expectNothingStored(victim.host_id);
    agent.close();
  });
});
