import { mkdtemp, readFile, rm } from "node:fs/promises";
import https from "node:https";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { nowRfc3339 } from "../../schemas/index.ts";
import { signDevToken } from "../../scripts/dev-token.ts";
import { EDGE_BUSY_CODE, EDGE_REFUSAL_HEADER, startEdge } from "../../scripts/edge.ts";
import { readJwtSecret } from "../../scripts/jwt-secret.ts";
import { ensureLocalPki } from "../../scripts/local-pki.ts";
import { type LocalRelay, PortInUseError, startLocalRelay } from "../../scripts/local-relay.ts";
import { clientCert, csrPem, fingerprint, newKey } from "../helpers/certs.ts";

let relay: LocalRelay;
let stateDir: string;
let admin: string;
let caKeyPem: string;

interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

function edgeRequest(
  pathName: string,
  opts: {
    method?: string;
    body?: unknown;
    cert?: string;
    key?: string;
    headers?: Record<string, string>;
    minVersion?: "TLSv1.2" | "TLSv1.3";
    maxVersion?: "TLSv1.2" | "TLSv1.3";
  } = {},
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const url = new URL(pathName, relay.edgeUrl!);
    const body = opts.body === undefined ? undefined : JSON.stringify(opts.body);
    const req = https.request(
      url,
      {
        method: opts.method ?? (body ? "POST" : "GET"),
        ca: relay.caCertPem,
        cert: opts.cert,
        key: opts.key,
        minVersion: opts.minVersion,
        maxVersion: opts.maxVersion,
        servername: "localhost",
        headers: { ...(body ? { "content-type": "application/json" } : {}), ...opts.headers },
        agent: false,
      },
      (res) => {
        let text = "";
        res.setEncoding("utf8");
        res.on("data", (c) => (text += c));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text }));
      },
    );
    req.setTimeout(10_000, () => req.destroy(new Error("timeout")));
    req.on("error", reject);
    req.end(body);
  });
}

/** Opens the agent WebSocket through the edge; resolves with the socket once `welcome` arrived, or the refusal. */
function connectAgent(
  cert: string,
  key: string,
): Promise<{ ws: WebSocket; welcome: any } | { status: number; refusedBy: string | undefined }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`${relay.edgeUrl!.replace("https", "wss")}/agent/connect`, {
      ca: relay.caCertPem,
      cert,
      key,
    } as WebSocket.ClientOptions);
    const timer = setTimeout(() => reject(new Error("no answer from the edge")), 10_000);
    ws.on("unexpected-response", (_req, res) => {
      clearTimeout(timer);
      resolve({ status: res.statusCode ?? 0, refusedBy: res.headers[EDGE_REFUSAL_HEADER] as string | undefined });
    });
    ws.on("open", () =>
      ws.send(
        JSON.stringify({
          message_id: crypto.randomUUID(),
          timestamp: nowRfc3339(),
          message_type: "hello",
          agent_version: "test",
          protocol_version: 1,
          hostname: "edge-test",
          os: { name: "linux" },
          supported_commands: [],
        }),
      ),
    );
    ws.on("message", (data) => {
      const frame = JSON.parse(String(data));
      if (frame.message_type === "welcome") {
        clearTimeout(timer);
        resolve({ ws, welcome: frame });
      }
    });
    ws.on("error", (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}

/** The HTTP status a plain (no TLS) WebSocket upgrade to `url` gets: 101 if it opened. */
function upgradeStatus(url: string, headers: Record<string, string>): Promise<number> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { headers });
    ws.on("unexpected-response", (_req, res) => resolve(res.statusCode ?? 0));
    ws.on("open", () => {
      ws.close();
      resolve(101);
    });
    ws.on("error", reject);
  });
}

async function enroll(): Promise<{ hostId: string; cert: string; keyPem: string }> {
  const res = await fetch(`${relay.url}/api/enrollment-tokens`, {
    method: "POST",
    headers: { authorization: `Bearer ${admin}`, "content-type": "application/json" },
    body: "{}",
  });
  const { token } = (await res.json()) as { token: string };
  const key = await newKey();
  const reply = await edgeRequest("/agent/enroll", { body: { token, csr: await csrPem(key), hostname: "edge-test" } });
  expect(reply.status).toBe(201);
  const body = JSON.parse(reply.body);
  return { hostId: body.host_id, cert: body.certificate, keyPem: key.keyPem };
}

beforeAll(async () => {
  stateDir = await mkdtemp(path.join(os.tmpdir(), "fleet-edge-"));
  relay = await startLocalRelay({ port: 0, edgePort: 0, apiPort: 0, stateDir, quiet: true });
  admin = await signDevToken({
    secret: (await readJwtSecret(stateDir))!,
    role: "admin",
    issuer: "fleet-relay",
    audience: "fleet-relay-api",
  });
  caKeyPem = await readFile(path.join(stateDir, "pki", "ca.key"), "utf8");
});

afterAll(async () => {
  await relay?.stop();
  await rm(stateDir, { recursive: true, force: true });
});

describe("local TLS edge", () => {
  it("enrols without a client certificate and then admits the enrolled agent's certificate", async () => {
    const { hostId, cert, keyPem } = await enroll();
    const conn = await connectAgent(cert, keyPem);
    expect("welcome" in conn && conn.welcome.host_id).toBe(hostId);
    if ("ws" in conn) conn.ws.close();
  });

  it("refuses /agent/connect without a client certificate at the edge", async () => {
    const reply = await edgeRequest("/agent/connect", { headers: { upgrade: "websocket", connection: "Upgrade" } });
    expect(reply.status).toBe(401);
    expect(reply.headers[EDGE_REFUSAL_HEADER]).toBe("ERR_AGENT_CERT_MISSING");
  });

  it("refuses a certificate from another CA, and an expired one, before the Worker", async () => {
    const key = await newKey();
    const selfSigned = await clientCert(key, {});
    const other = await connectAgent(selfSigned, key.keyPem);
    expect(other).toEqual({ status: 403, refusedBy: "ERR_AGENT_CERT_UNVERIFIED" });

    const expired = await clientCert(key, {
      caCertPem: relay.caCertPem,
      caKeyPem,
      notBefore: new Date(Date.now() - 10 * 86_400_000),
      notAfter: new Date(Date.now() - 86_400_000),
    });
    const late = await connectAgent(expired, key.keyPem);
    expect(late).toEqual({ status: 403, refusedBy: "ERR_AGENT_CERT_UNVERIFIED" });
  });

  it("passes a valid fleet certificate of an unknown host to the Worker, which refuses it", async () => {
    const key = await newKey();
    const stranger = await clientCert(key, { caCertPem: relay.caCertPem, caKeyPem });
    const reply = await connectAgent(stranger, key.keyPem);
    expect(reply).toEqual({ status: 403, refusedBy: undefined });
  });

  it("ignores identity a client tries to inject through headers", async () => {
    const { cert } = await enroll();
    const forged = JSON.stringify({
      tlsClientAuth: { certPresented: "1", certVerified: "SUCCESS", certRevoked: "0", certFingerprintSHA256: await fingerprint(cert) },
    });
    // Through the edge without a certificate: refused there, whatever the headers say.
    const viaEdge = await edgeRequest("/agent/connect", {
      headers: { "mf-cf-blob": forged, "x-fleet-edge-secret": "guess", upgrade: "websocket", connection: "Upgrade" },
    });
    expect(viaEdge.status).toBe(401);
    // Straight at the relay's own port, which accepts a cf blob from anyone: the Worker still refuses.
    expect(await upgradeStatus(`${relay.url.replace("http", "ws")}/agent/connect`, { "mf-cf-blob": forged })).toBe(401);
  });

  it("the Worker's direct socket (apiPort) answers REST as the entry port does, and admits no agent", async () => {
    expect(relay.apiUrl).not.toBeNull();
    expect(relay.apiUrl).not.toBe(relay.url);
    const health = await fetch(`${relay.apiUrl}/healthz`);
    expect(health.status).toBe(200);
    expect(await health.json()).toMatchObject({ status: "ok" });
    expect((await fetch(`${relay.apiUrl}/api/hosts`)).status).toBe(401);
    const hosts = await fetch(`${relay.apiUrl}/api/hosts?limit=1`, { headers: { authorization: `Bearer ${admin}` } });
    expect(hosts.status).toBe(200);
    const { cert } = await enroll();
    const forged = JSON.stringify({
      tlsClientAuth: { certPresented: "1", certVerified: "SUCCESS", certRevoked: "0", certFingerprintSHA256: await fingerprint(cert) },
    });
    expect(await upgradeStatus(`${relay.apiUrl!.replace("http", "ws")}/agent/connect`, { "mf-cf-blob": forged })).toBe(401);
  });

  it("speaks TLS 1.3 only", async () => {
    await expect(edgeRequest("/healthz", { maxVersion: "TLSv1.2" })).rejects.toThrow();
    expect((await edgeRequest("/healthz", { minVersion: "TLSv1.3" })).status).toBe(200);
  });

  it("does not serve the REST API on the agent edge", async () => {
    const reply = await edgeRequest("/api/hosts", { headers: { authorization: `Bearer ${admin}` } });
    expect(reply.status).toBe(401);
  });
});

/**
 * An edge in front of an upstream that holds every connection unanswered (each upgrade stays
 * pending) until the test destroys it, with bounded waits that fail naming what they waited for.
 */
async function holdingEdge(limits: { maxPendingUpgrades: number; maxQueuedUpgrades: number; upgradeQueueMs?: number }) {
  const held: net.Socket[] = [];
  let arrived: (() => void) | null = null;
  const upstream = net.createServer((s) => {
    held.push(s);
    s.on("error", () => {});
    arrived?.();
  });
  await new Promise<void>((r) => upstream.listen(0, "127.0.0.1", r));
  const pki = await ensureLocalPki(stateDir);
  const edge = await startEdge({
    port: 0,
    upstream: `http://127.0.0.1:${(upstream.address() as net.AddressInfo).port}`,
    caCertPem: pki.caCertPem,
    serverCertPem: pki.serverCertPem,
    serverKeyPem: pki.serverKeyPem,
    edgeSecret: "s",
    ...limits,
  });
  return {
    held,
    upgrade: () =>
      new Promise<{ status: number; headers: Record<string, string | string[] | undefined> }>((resolve, reject) => {
        const ws = new WebSocket(`${edge.url.replace("https", "wss")}/healthz`, {
          ca: pki.caCertPem,
          servername: "localhost",
        } as WebSocket.ClientOptions);
        ws.on("unexpected-response", (_req, res) => resolve({ status: res.statusCode ?? 0, headers: res.headers }));
        ws.on("error", (err) => (/socket hang up|ECONNRESET/.test(err.message) ? resolve({ status: 0, headers: {} }) : reject(err)));
      }),
    reachUpstream: () => new Promise<void>((resolve) => (arrived = resolve)),
    within: <T>(p: Promise<T>, what: string) =>
      Promise.race([p, new Promise<never>((_, reject) => setTimeout(() => reject(new Error(what)), 5_000))]),
    async close() {
      for (const s of held) s.destroy();
      await edge.close();
      await new Promise<void>((r) => upstream.close(() => r()));
    },
  };
}

describe("local TLS edge: admission", () => {
  it("holds upgrades past maxPendingUpgrades until a slot frees, and refuses past maxQueuedUpgrades with 503 and Retry-After", async () => {
    const h = await holdingEdge({ maxPendingUpgrades: 2, maxQueuedUpgrades: 1 });
    const { held, upgrade, reachUpstream, within } = h;
    try {
      const first = reachUpstream();
      const firstDone = upgrade();
      await within(first, "the first upgrade never reached the upstream");
      const second = reachUpstream();
      void upgrade().catch(() => {});
      await within(second, "the second upgrade never reached the upstream");
      // Both slots taken: the third waits at the edge, the fourth finds the queue full.
      const third = reachUpstream();
      void upgrade().catch(() => {});
      const refused = await within(upgrade(), "the fourth upgrade was not refused");
      expect(refused.status).toBe(503);
      expect(refused.headers[EDGE_REFUSAL_HEADER.toLowerCase()]).toBe(EDGE_BUSY_CODE);
      expect(refused.headers["retry-after"]).toBe("1");
      expect(held).toHaveLength(2);
      // The relay answers one (here: it goes away), and the waiting upgrade goes on.
      held[0]!.destroy();
      await within(firstDone, "the first upgrade did not end");
      await within(third, "the queued upgrade was not forwarded when a slot freed");
      expect(held).toHaveLength(3);
    } finally {
      await h.close();
    }
  });

  it("refuses a queued upgrade with 503 once it has waited upgradeQueueMs, without passing it on", async () => {
    const h = await holdingEdge({ maxPendingUpgrades: 1, maxQueuedUpgrades: 10, upgradeQueueMs: 200 });
    try {
      const first = h.reachUpstream();
      void h.upgrade().catch(() => {});
      await h.within(first, "the first upgrade never reached the upstream");
      const waited = await h.within(h.upgrade(), "the queued upgrade was never answered");
      expect(waited.status).toBe(503);
      expect(waited.headers[EDGE_REFUSAL_HEADER.toLowerCase()]).toBe(EDGE_BUSY_CODE);
      expect(h.held).toHaveLength(1);
    } finally {
      await h.close();
    }
  });
});

describe("local relay: ports", () => {
  it("refuses an apiPort already in use with PortInUseError naming it, before starting anything", async () => {
    const taken = Number(new URL(relay.apiUrl!).port);
    const dir = await mkdtemp(path.join(os.tmpdir(), "fleet-edge-port-"));
    try {
      const err = await startLocalRelay({ port: 0, edgePort: null, apiPort: taken, stateDir: dir, quiet: true }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(PortInUseError);
      expect((err as PortInUseError).port).toBe(taken);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
