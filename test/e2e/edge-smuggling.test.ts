import { mkdtemp, rm } from "node:fs/promises";
import http from "node:http";
import type { AddressInfo } from "node:net";
import os from "node:os";
import path from "node:path";
import tls from "node:tls";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EDGE_REFUSAL_HEADER, type Edge, newEdgeSecret, startEdge } from "../../scripts/edge.ts";
import { ensureLocalPki, type LocalPki } from "../../scripts/local-pki.ts";

// The edge in front of a recording upstream: what the edge refuses must never reach it.
let stateDir: string;
let pki: LocalPki;
let edge: Edge;
let upstream: http.Server;
const received: { method: string; url: string; body: string }[] = [];

beforeAll(async () => {
  stateDir = await mkdtemp(path.join(os.tmpdir(), "fleet-edge-smuggling-"));
  pki = await ensureLocalPki(stateDir);
  upstream = http.createServer((req, res) => {
    let body = "";
    req.on("data", (c) => (body += c));
    req.on("end", () => {
      received.push({ method: req.method ?? "", url: req.url ?? "", body });
      res.writeHead(200, { "content-type": "application/json" }).end('{"status":"ok"}');
    });
  });
  await new Promise<void>((resolve) => upstream.listen(0, "127.0.0.1", resolve));
  edge = await startEdge({
    port: 0,
    upstream: `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`,
    caCertPem: pki.caCertPem,
    serverCertPem: pki.serverCertPem,
    serverKeyPem: pki.serverKeyPem,
    edgeSecret: newEdgeSecret(),
  });
});

afterAll(async () => {
  await edge?.close();
  await new Promise<void>((resolve) => (upstream ? upstream.close(() => resolve()) : resolve()));
  await rm(stateDir, { recursive: true, force: true });
});

/** Writes `raw` on a fresh TLS connection and reads until the edge closes it (every request here ends the connection). */
function rawExchange(raw: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect(
      { host: "127.0.0.1", port: edge.port, ca: pki.caCertPem, servername: "localhost", minVersion: "TLSv1.3" },
      () => socket.write(raw),
    );
    let text = "";
    socket.setEncoding("utf8");
    socket.on("data", (c) => (text += c));
    socket.on("end", () => resolve(text));
    socket.on("close", () => resolve(text));
    socket.on("error", reject);
    socket.setTimeout(10_000, () => socket.destroy(new Error("timeout")));
  });
}

function parseReply(text: string): { status: number; headers: Record<string, string>; body: string } {
  const [head = "", ...rest] = text.split("\r\n\r\n");
  const [statusLine = "", ...lines] = head.split("\r\n");
  const headers: Record<string, string> = {};
  for (const l of lines) {
    const i = l.indexOf(":");
    headers[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim();
  }
  return { status: Number(statusLine.split(" ")[1]), headers, body: rest.join("\r\n\r\n") };
}

const SMUGGLED = "GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n";

describe("the edge refuses ambiguous request framing (request smuggling)", () => {
  it("passes a well-framed request on (the setup works)", async () => {
    const before = received.length;
    const reply = parseReply(
      await rawExchange("POST /healthz HTTP/1.1\r\nHost: localhost\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}"),
    );
    expect(reply.status).toBe(200);
    expect(received.length).toBe(before + 1);
    expect(received.at(-1)).toMatchObject({ method: "POST", url: "/healthz", body: "{}" });
  });

  it.each([
    [
      "both Content-Length and Transfer-Encoding",
      `POST /healthz HTTP/1.1\r\nHost: localhost\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n${SMUGGLED}`,
    ],
    [
      "Transfer-Encoding then Content-Length",
      `POST /healthz HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\nContent-Length: 40\r\n\r\n0\r\n\r\n${SMUGGLED}`,
    ],
    [
      "two different Content-Lengths",
      `POST /healthz HTTP/1.1\r\nHost: localhost\r\nContent-Length: 2\r\nContent-Length: 40\r\n\r\n{}${SMUGGLED}`,
    ],
    ["two equal Content-Lengths", `POST /healthz HTTP/1.1\r\nHost: localhost\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\n{}`],
    ["a list Content-Length", `POST /healthz HTTP/1.1\r\nHost: localhost\r\nContent-Length: 2, 2\r\n\r\n{}`],
    ["a signed Content-Length", `POST /healthz HTTP/1.1\r\nHost: localhost\r\nContent-Length: +2\r\n\r\n{}`],
    ["a non-numeric Content-Length", `POST /healthz HTTP/1.1\r\nHost: localhost\r\nContent-Length: two\r\n\r\n{}`],
    [
      "an upgrade with both framings",
      `GET /agent/enroll HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`,
    ],
  ])("%s → 400 problem+json from the edge, nothing forwarded", async (_what, raw) => {
    const before = received.length;
    const text = await rawExchange(raw);
    const reply = parseReply(text);
    expect(reply.status, text).toBe(400);
    expect(reply.headers["content-type"]).toBe("application/problem+json");
    const problem = JSON.parse(reply.body);
    expect(problem).toMatchObject({ status: 400, code: "ERR_BAD_REQUEST_FRAMING" });
    expect(reply.headers[EDGE_REFUSAL_HEADER]).toBe("ERR_BAD_REQUEST_FRAMING");
    // Exactly one response: the smuggled request behind it was not answered either.
    expect(text.match(/HTTP\/1\.1 /g)).toHaveLength(1);
    expect(received.length).toBe(before);
  });
});
