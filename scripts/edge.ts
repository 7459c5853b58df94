import { randomBytes } from "node:crypto";
import http from "node:http";
import https from "node:https";
import net from "node:net";
import type { TLSSocket } from "node:tls";

/**
 * The local stand-in for Cloudflare's edge on the agent hostname: TLS 1.3, client certificates
 * verified against the fleet CA, and the verdict handed to the Worker the way the real edge does
 * (`request.cf.tlsClientAuth`). Paths that need a certificate never reach the Worker without one.
 */
export interface EdgeOptions {
  /** Default 127.0.0.1. */
  host?: string;
  /** Default 8443; 0 picks a free port. */
  port?: number;
  /** The relay (workerd) to forward to, e.g. http://127.0.0.1:8787. */
  upstream: string;
  caCertPem: string;
  serverCertPem: string;
  serverKeyPem: string;
  /** Shared with the Worker as LOCAL_EDGE_SECRET; proves a forwarded verdict came from here. */
  edgeSecret: string;
  /**
   * Listen with SO_REUSEPORT (Linux), so several edge processes share one port and the kernel spreads
   * connections over them: one process may hold only so many open files. Default false.
   */
  reusePort?: boolean;
  /**
   * Most WebSocket upgrades this edge has passed to the relay and not yet seen answered. More wait
   * here, in arrival order, so a reconnect storm waits at the edge instead of piling up in workerd,
   * where every pending upgrade holds open files (two descriptors per socket, and the SQLite files of
   * the object it wakes). Default 64.
   */
  maxPendingUpgrades?: number;
  /**
   * Upgrades that may wait for a slot (each holds one descriptor here), and for how long; past either
   * an upgrade is refused with 503, `ERR_EDGE_BUSY` and `Retry-After: 1`, and the agent backs off.
   * Defaults 4096 and 10,000 ms.
   */
  maxQueuedUpgrades?: number;
  upgradeQueueMs?: number;
  log?: (line: string) => void;
}

export interface Edge {
  url: string;
  port: number;
  close(): Promise<void>;
}

export const EDGE_SECRET_HEADER = "x-fleet-edge-secret";
/** Marks a refusal made by the edge itself: the request never reached the Worker. */
export const EDGE_REFUSAL_HEADER = "x-fleet-edge-refused";
/** Miniflare's entry worker turns this header into `request.cf`. */
const CF_BLOB_HEADER = "mf-cf-blob";
/** The refusal of an upgrade past `maxPendingUpgrades`. */
export const EDGE_BUSY_CODE = "ERR_EDGE_BUSY";
/** Reachable without a client certificate. */
const OPEN_PATHS = new Set(["/agent/enroll", "/healthz"]);
/** Client-supplied headers that could impersonate the edge; always stripped. */
const HOP_BY_HOP = new Set(["connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer", "upgrade", "host"]);

export function newEdgeSecret(): string {
  return randomBytes(32).toString("base64url");
}

type Verdict = { forward: true; cf: object } | { forward: false; status: number; code: string; detail: string };

function tlsVerdict(socket: TLSSocket, path: string): Verdict {
  const cert = socket.getPeerX509Certificate();
  if (!cert) {
    if (OPEN_PATHS.has(path))
      return { forward: true, cf: { tlsClientAuth: { certPresented: "0", certVerified: "NONE", certRevoked: "0" } } };
    return { forward: false, status: 401, code: "ERR_AGENT_CERT_MISSING", detail: "agents must present a client certificate" };
  }
  if (!socket.authorized) {
    if (OPEN_PATHS.has(path))
      return { forward: true, cf: { tlsClientAuth: { certPresented: "1", certVerified: "FAILED", certRevoked: "0" } } };
    return {
      forward: false,
      status: 403,
      code: "ERR_AGENT_CERT_UNVERIFIED",
      detail: `client certificate not verified (${String(socket.authorizationError)})`,
    };
  }
  return {
    forward: true,
    cf: {
      tlsVersion: socket.getProtocol(),
      tlsClientAuth: {
        certPresented: "1",
        certVerified: "SUCCESS",
        certRevoked: "0",
        certFingerprintSHA256: cert.fingerprint256.replaceAll(":", "").toLowerCase(),
        certSerial: cert.serialNumber,
        certSubjectDN: cert.subject.replaceAll("\n", ","),
        certIssuerDN: cert.issuer.replaceAll("\n", ","),
        certNotBefore: cert.validFrom,
        certNotAfter: cert.validTo,
      },
    },
  };
}

function pathOf(url: string | undefined): string {
  try {
    return new URL(url ?? "/", "https://edge.invalid").pathname;
  } catch {
    return "/";
  }
}

function forwardedHeaders(req: http.IncomingMessage, cf: object, secret: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(req.headers)) {
    const lower = name.toLowerCase();
    if (value === undefined || HOP_BY_HOP.has(lower) || lower.startsWith("mf-") || lower.startsWith("cf-") || lower === EDGE_SECRET_HEADER)
      continue;
    out[lower] = Array.isArray(value) ? value.join(", ") : value;
  }
  out[CF_BLOB_HEADER] = JSON.stringify(cf);
  out[EDGE_SECRET_HEADER] = secret;
  out["x-forwarded-proto"] = "https";
  if (req.socket.remoteAddress) {
    out["x-forwarded-for"] = req.socket.remoteAddress;
    // As Cloudflare does: the address the edge saw (a client's own cf-* headers were dropped above).
    out["cf-connecting-ip"] = req.socket.remoteAddress;
  }
  return out;
}

/**
 * Request smuggling: a request whose body length two parsers could read differently (both
 * Content-Length and Transfer-Encoding, more than one Content-Length, or one that is not a plain
 * decimal) is answered here and never passed on. Node's parser refuses most of these itself (they
 * arrive as `clientError`); this also covers what a lenient parser would let through.
 */
export function framingProblem(req: http.IncomingMessage): string | null {
  let lengths = 0;
  let te = false;
  for (let i = 0; i < req.rawHeaders.length; i += 2) {
    const name = (req.rawHeaders[i] as string).toLowerCase();
    const value = (req.rawHeaders[i + 1] as string).trim();
    if (name === "content-length") {
      lengths++;
      if (!/^[0-9]{1,15}$/.test(value)) return "invalid Content-Length";
    } else if (name === "transfer-encoding") te = true;
  }
  if (lengths > 1) return "more than one Content-Length";
  if (lengths === 1 && te) return "both Content-Length and Transfer-Encoding";
  return null;
}

const SMUGGLING_CODE = "ERR_BAD_REQUEST_FRAMING";

function rawProblemResponse(status: number, code: string, detail: string, extraHeaders = ""): string {
  const body = problem(status, code, detail);
  return `HTTP/1.1 ${status} ${http.STATUS_CODES[status]}\r\ncontent-type: application/problem+json\r\n${EDGE_REFUSAL_HEADER}: ${code}\r\n${extraHeaders}content-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`;
}

function problem(status: number, code: string, detail: string): string {
  return JSON.stringify({ type: `urn:fleet-relay:problem:${code}`, title: detail, status, code, detail });
}

export async function startEdge(opts: EdgeOptions): Promise<Edge> {
  const upstream = new URL(opts.upstream);
  const upstreamPort = Number(upstream.port || 80);
  const log = opts.log ?? (() => {});
  const keepAlive = new http.Agent({ keepAlive: true, maxSockets: 256 });
  const maxPending = opts.maxPendingUpgrades ?? 64;
  const maxQueued = opts.maxQueuedUpgrades ?? 4096;
  const queueWaitMs = opts.upgradeQueueMs ?? 10_000;
  let pendingUpgrades = 0;
  // In arrival order (a Set keeps insertion order), and an entry leaves in O(1) when its agent goes.
  const queued = new Set<{ start(): void }>();

  const server = https.createServer({
    key: opts.serverKeyPem,
    cert: opts.serverCertPem,
    ca: opts.caCertPem,
    requestCert: true,
    // Decided per path below, so enrolment works without a certificate and the refusal is a clear HTTP error.
    rejectUnauthorized: false,
    minVersion: "TLSv1.3",
  });
  server.on("secureConnection", (socket: TLSSocket) => socket.setNoDelay(true));
  server.on("tlsClientError", (err) => log(`edge: TLS handshake failed: ${err.message}`));

  // The parser refused the request (conflicting or invalid framing, bad syntax): a problem document, then close.
  server.on("clientError", (err: NodeJS.ErrnoException, socket: net.Socket) => {
    log(`edge: refused a malformed request: ${err.code ?? err.message}`);
    if (socket.writable && !(err.code === "ECONNRESET")) {
      socket.end(rawProblemResponse(400, SMUGGLING_CODE, `malformed request: ${err.code ?? "parse error"}`));
    } else socket.destroy();
  });

  server.on("request", (req, res) => {
    const framing = framingProblem(req);
    if (framing) {
      res
        .writeHead(400, { "content-type": "application/problem+json", [EDGE_REFUSAL_HEADER]: SMUGGLING_CODE, connection: "close" })
        .end(problem(400, SMUGGLING_CODE, framing));
      return;
    }
    const verdict = tlsVerdict(req.socket as TLSSocket, pathOf(req.url));
    if (!verdict.forward) {
      res
        .writeHead(verdict.status, { "content-type": "application/problem+json", [EDGE_REFUSAL_HEADER]: verdict.code })
        .end(problem(verdict.status, verdict.code, verdict.detail));
      return;
    }
    const upstreamReq = http.request(
      {
        host: upstream.hostname,
        port: upstreamPort,
        method: req.method,
        path: req.url,
        headers: { ...forwardedHeaders(req, verdict.cf, opts.edgeSecret), host: upstream.host },
        agent: keepAlive,
      },
      (upstreamRes) => {
        const headers = { ...upstreamRes.headers };
        delete headers.connection;
        delete headers["keep-alive"];
        res.writeHead(upstreamRes.statusCode ?? 502, headers);
        upstreamRes.pipe(res);
      },
    );
    upstreamReq.on("socket", (s) => s.setNoDelay(true));
    upstreamReq.on("error", (err) => {
      log(`edge: upstream error: ${err.message}`);
      if (!res.headersSent) res.writeHead(502, { "content-type": "application/problem+json" });
      res.end(problem(502, "ERR_UPSTREAM", "the relay is unreachable"));
    });
    req.pipe(upstreamReq);
  });

  server.on("upgrade", (req: http.IncomingMessage, socket: TLSSocket, head: Buffer) => {
    const framing = framingProblem(req);
    if (framing) {
      socket.end(rawProblemResponse(400, SMUGGLING_CODE, framing));
      return;
    }
    const verdict = tlsVerdict(socket, pathOf(req.url));
    if (!verdict.forward) {
      socket.end(rawProblemResponse(verdict.status, verdict.code, verdict.detail));
      return;
    }
    const refuseBusy = () =>
      socket.end(rawProblemResponse(503, EDGE_BUSY_CODE, "the relay is taking in many connections; retry shortly", "retry-after: 1\r\n"));
    const forward = () => {
      if (socket.destroyed) return;
      forwardUpgrade(req, socket, head, verdict.cf);
    };
    if (pendingUpgrades < maxPending) return forward();
    if (queued.size >= maxQueued) return refuseBusy();
    // Waits here, holding only this process's descriptor for the agent's socket, until a slot frees or the wait is too long.
    const entry = {
      start: () => {
        clearTimeout(timer);
        forward();
      },
    };
    const timer = setTimeout(() => {
      queued.delete(entry);
      refuseBusy();
    }, queueWaitMs);
    socket.once("close", () => {
      clearTimeout(timer);
      queued.delete(entry);
    });
    queued.add(entry);
  });

  /** Starts queued upgrades while there are free slots. */
  function drain(): void {
    for (const next of queued) {
      if (pendingUpgrades >= maxPending) return;
      queued.delete(next);
      next.start();
    }
  }

  function forwardUpgrade(req: http.IncomingMessage, socket: TLSSocket, head: Buffer, cf: object): void {
    socket.setNoDelay(true);
    pendingUpgrades++;
    let answered = false;
    // Pending until the relay's answer (101 or a refusal) starts, or either side goes.
    const settle = () => {
      if (answered) return;
      answered = true;
      pendingUpgrades--;
      drain();
    };
    const up = net.connect({ host: upstream.hostname, port: upstreamPort, noDelay: true });
    up.once("data", settle);
    up.once("close", settle);
    socket.once("close", settle);
    const headers = forwardedHeaders(req, cf, opts.edgeSecret);
    headers.host = upstream.host;
    headers.connection = "Upgrade";
    headers.upgrade = String(req.headers.upgrade ?? "websocket");
    let headText = `${req.method} ${req.url} HTTP/1.1\r\n`;
    for (const [k, v] of Object.entries(headers)) headText += `${k}: ${v}\r\n`;
    up.write(headText + "\r\n");
    if (head.length) up.write(head);
    up.pipe(socket);
    socket.pipe(up);
    const destroyBoth = () => {
      up.destroy();
      socket.destroy();
    };
    up.on("error", destroyBoth);
    socket.on("error", destroyBoth);
    up.on("close", () => socket.destroy());
    socket.on("close", () => up.destroy());
  }

  const sockets = new Set<net.Socket>();
  server.on("connection", (s: net.Socket) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
  });

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen({ port: opts.port ?? 8443, host: opts.host ?? "127.0.0.1", reusePort: opts.reusePort ?? false }, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const port = (server.address() as net.AddressInfo).port;
  const host = opts.host ?? "127.0.0.1";
  return {
    port,
    url: `https://${host.includes(":") ? `[${host}]` : host}:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        keepAlive.destroy();
        server.close(() => resolve());
      }),
  };
}
