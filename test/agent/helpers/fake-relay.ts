/**
 * A stand-in for the relay's network side in the agent's unit tests: HTTPS with TLS 1.3 that
 * asks for client certificates from the test fleet CA, /agent/enroll and /agent/renew, and the
 * /agent/connect WebSocket speaking protocol v1. It keeps every frame it receives so tests can
 * assert on the wire. The real relay is exercised by the e2e tests.
 */
import { createHash } from "node:crypto";
import https from "node:https";
import type { AddressInfo } from "node:net";
import type { TLSSocket } from "node:tls";
import { type WebSocket, WebSocketServer } from "ws";
import type { CommandMessage } from "../../../schemas/index.ts";
import { HEARTBEAT_PING, HEARTBEAT_PONG, nowRfc3339, PROTOCOL_VERSION } from "../../../schemas/index.ts";
import { issueAgentCertificate, verifyCsr } from "../../../worker/pki/fleet-ca.ts";
import { commandFrame } from "./commands.ts";
import type { TestPki } from "./test-pki.ts";

export interface FakeRelayOptions {
  pki: TestPki;
  /** Host id sent in `welcome` and bound to enrolled certificates. */
  hostId: string;
  /** `welcome.heartbeat_interval`, seconds. Default 30. */
  heartbeatIntervalS?: number;
  /** Enrolment tokens accepted once each. */
  tokens?: string[];
  /** Lifetime of certificates issued by /agent/renew and /agent/enroll, days. Default 90. */
  certDays?: number;
}

type Frame = Record<string, unknown> & { message_type: string; message_id: string };

export class FakeConnection {
  readonly ws: WebSocket;
  /** Parsed JSON frames in arrival order (heartbeats not included). */
  readonly frames: Frame[] = [];
  readonly tlsProtocol: string | null;
  readonly clientFingerprint: string | null;
  /** Send `welcome` in answer to `hello`. */
  autoWelcome = true;
  /** Answer `ping` with `pong`. */
  answerPings = true;
  /** Ack every `status` and `response` frame, as the relay does once it stored them. */
  autoAck = true;
  pings = 0;
  readonly closed: Promise<{ code: number; reason: string }>;
  readonly #relay: FakeRelay;
  #waiters: (() => void)[] = [];

  constructor(relay: FakeRelay, ws: WebSocket, socket: TLSSocket) {
    this.#relay = relay;
    this.ws = ws;
    this.tlsProtocol = socket.getProtocol();
    const peer = socket.getPeerCertificate();
    this.clientFingerprint = peer?.raw ? createHash("sha256").update(peer.raw).digest("hex") : null;
    Object.assign(this, relay.defaults);
    this.closed = new Promise((resolve) => ws.on("close", (code, reason) => resolve({ code, reason: reason.toString() })));
    ws.on("message", (data, isBinary) => {
      const text = (data as Buffer).toString("utf8");
      if (!isBinary && text === HEARTBEAT_PING) {
        this.pings++;
        if (this.answerPings) ws.send(HEARTBEAT_PONG);
        this.#notify();
        return;
      }
      const frame = JSON.parse(text) as Frame;
      this.frames.push(frame);
      if (frame.message_type === "hello" && this.autoWelcome) this.welcome();
      if ((frame.message_type === "status" || frame.message_type === "response") && this.autoAck) this.ack(frame.message_id);
      this.#notify();
    });
  }

  welcome(): void {
    this.sendFrame({
      message_id: crypto.randomUUID(),
      timestamp: nowRfc3339(),
      message_type: "welcome",
      host_id: this.#relay.hostId,
      server_time: nowRfc3339(),
      heartbeat_interval: this.#relay.heartbeatIntervalS,
      protocol_version: PROTOCOL_VERSION,
    });
  }

  ack(frameId: string): void {
    this.sendFrame({ message_id: crypto.randomUUID(), timestamp: nowRfc3339(), message_type: "ack", original_message_id: frameId });
  }

  sendFrame(frame: object): void {
    this.ws.send(JSON.stringify(frame));
  }

  sendRaw(text: string): void {
    this.ws.send(text);
  }

  close(code: number, reason = ""): void {
    this.ws.close(code, reason);
  }

  /** Resolves with the first received frame matching `pred` (already received or yet to come). */
  waitForFrame(pred: (f: Frame) => boolean, timeoutMs = 10_000, what = "frame"): Promise<Frame> {
    return this.until(() => this.frames.find(pred), timeoutMs, what);
  }

  /** Polls `check` on every frame or ping this connection receives. */
  until<T>(check: () => T | undefined | false, timeoutMs: number, what: string): Promise<T> {
    return new Promise((resolve, reject) => {
      const attempt = () => {
        const v = check();
        if (v !== undefined && v !== false) {
          clearTimeout(timer);
          this.#waiters = this.#waiters.filter((w) => w !== attempt);
          resolve(v);
          return true;
        }
        return false;
      };
      const timer = setTimeout(() => {
        this.#waiters = this.#waiters.filter((w) => w !== attempt);
        reject(
          new Error(
            `timed out after ${timeoutMs} ms waiting for ${what}; frames: ${JSON.stringify(this.frames.map((f) => f.message_type))}`,
          ),
        );
      }, timeoutMs);
      if (!attempt()) this.#waiters.push(attempt);
    });
  }

  #notify(): void {
    for (const w of [...this.#waiters]) w();
  }
}

export class FakeRelay {
  readonly hostId: string;
  readonly heartbeatIntervalS: number;
  readonly connections: FakeConnection[] = [];
  /** Applied to every new connection (autoWelcome, answerPings, autoAck). */
  readonly defaults: Partial<Pick<FakeConnection, "autoWelcome" | "answerPings" | "autoAck">> = {};
  /** When set, upgrades are refused with this HTTP status and problem body. */
  refuseUpgrade: { status: number; code: string; detail: string } | null = null;
  /** Called for each new connection (e.g. to drop it at once). */
  onConnection: ((c: FakeConnection) => void) | null = null;
  readonly renewals: string[] = [];
  /** Answers for the next /agent/renew requests, in order, before renewals succeed again (e.g. 503s). */
  readonly renewRefusals: { status: number; code: string }[] = [];
  /** Renewal requests seen, refused or not. */
  renewAttempts = 0;
  url = "";
  readonly #server: https.Server;
  readonly #wss = new WebSocketServer({ noServer: true });
  readonly #pki: TestPki;
  readonly #tokens: Set<string>;
  readonly #certDays: number;
  #connWaiters: (() => void)[] = [];

  constructor(opts: FakeRelayOptions) {
    this.hostId = opts.hostId;
    this.heartbeatIntervalS = opts.heartbeatIntervalS ?? 30;
    this.#pki = opts.pki;
    this.#tokens = new Set(opts.tokens ?? []);
    this.#certDays = opts.certDays ?? 90;
    this.#server = https.createServer(
      {
        cert: opts.pki.server.certificatePem,
        key: opts.pki.server.keyPem,
        ca: [opts.pki.caPem],
        requestCert: true,
        // Enrolment has no client certificate yet; routes that need one check `authorized`.
        rejectUnauthorized: false,
        minVersion: "TLSv1.3",
      },
      (req, res) => void this.#http(req, res),
    );
    this.#server.on("upgrade", (req, socket, head) => {
      const tls = socket as TLSSocket;
      if (req.url !== "/agent/connect" || !tls.authorized) {
        socket.end("HTTP/1.1 401 Unauthorized\r\nconnection: close\r\ncontent-length: 0\r\n\r\n");
        return;
      }
      if (this.refuseUpgrade) {
        const body = JSON.stringify({ type: "about:blank", title: "refused", ...this.refuseUpgrade });
        socket.end(
          `HTTP/1.1 ${this.refuseUpgrade.status} Refused\r\ncontent-type: application/problem+json\r\n` +
            `content-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
        );
        return;
      }
      this.#wss.handleUpgrade(req, socket, head, (ws) => {
        const conn = new FakeConnection(this, ws, tls);
        this.connections.push(conn);
        this.onConnection?.(conn);
        for (const w of [...this.#connWaiters]) w();
      });
    });
  }

  static async start(opts: FakeRelayOptions): Promise<FakeRelay> {
    const relay = new FakeRelay(opts);
    await new Promise<void>((resolve) => relay.#server.listen(0, "127.0.0.1", resolve));
    relay.url = `https://127.0.0.1:${(relay.#server.address() as AddressInfo).port}`;
    return relay;
  }

  /** The `n`-th connection (1-based), waiting for it to arrive. */
  connection(n: number, timeoutMs = 10_000): Promise<FakeConnection> {
    return new Promise((resolve, reject) => {
      const check = () => {
        const c = this.connections[n - 1];
        if (!c) return false;
        clearTimeout(timer);
        this.#connWaiters = this.#connWaiters.filter((w) => w !== check);
        resolve(c);
        return true;
      };
      const timer = setTimeout(() => {
        this.#connWaiters = this.#connWaiters.filter((w) => w !== check);
        reject(new Error(`timed out after ${timeoutMs} ms waiting for connection ${n} (have ${this.connections.length})`));
      }, timeoutMs);
      if (!check()) this.#connWaiters.push(check);
    });
  }

  /** A command frame for this host, with overrides. */
  command(fields: Parameters<typeof commandFrame>[1]): CommandMessage {
    return commandFrame(this.hostId, fields);
  }

  async close(): Promise<void> {
    for (const c of this.connections) c.ws.terminate();
    this.#wss.close();
    this.#server.closeAllConnections();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }

  async #http(req: import("node:http").IncomingMessage, res: import("node:http").ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const body = JSON.parse(Buffer.concat(chunks).toString("utf8") || "{}") as Record<string, string>;
    const reply = (status: number, json: object) => {
      res.writeHead(status, { "content-type": status >= 400 ? "application/problem+json" : "application/json" });
      res.end(JSON.stringify(json));
    };
    const problem = (status: number, code: string, detail: string) =>
      reply(status, { type: "about:blank", title: code, status, code, detail });
    const issue = async (csrPem: string) => {
      const checked = await verifyCsr(csrPem);
      if (!checked.ok) return null;
      return issueAgentCertificate(this.#pki.ca, checked.csr, this.hostId, this.#certDays);
    };
    if (req.method === "POST" && req.url === "/agent/enroll") {
      if (!this.#tokens.has(body.token ?? "")) return problem(401, "ERR_ENROLLMENT_TOKEN_INVALID", "this enrolment token does not exist");
      this.#tokens.delete(body.token!);
      const issued = await issue(body.csr ?? "");
      if (!issued) return problem(400, "ERR_CSR_INVALID", "bad CSR");
      return reply(201, {
        host_id: this.hostId,
        certificate: issued.certificatePem,
        ca_certificate: this.#pki.caPem,
        not_after: issued.notAfter.toISOString(),
      });
    }
    if (req.method === "POST" && req.url === "/agent/renew") {
      if (!(req.socket as TLSSocket).authorized) return problem(401, "ERR_AGENT_CERT_MISSING", "client certificate required");
      this.renewAttempts++;
      const refusal = this.renewRefusals.shift();
      if (refusal) return problem(refusal.status, refusal.code, "refused by the test");
      const issued = await issue(body.csr ?? "");
      if (!issued) return problem(400, "ERR_CSR_INVALID", "bad CSR");
      this.renewals.push(issued.fingerprintSha256);
      return reply(200, {
        host_id: this.hostId,
        certificate: issued.certificatePem,
        ca_certificate: this.#pki.caPem,
        not_after: issued.notAfter.toISOString(),
      });
    }
    problem(404, "ERR_NOT_FOUND", "no such route");
  }
}
