import WebSocket from "ws";
import type { HelloMessage, WelcomeMessage } from "../schemas/index.ts";
import { FrameErrorCode, HEARTBEAT_PING, HEARTBEAT_PONG, Limits } from "../schemas/index.ts";
import { errorFrame, parseRelayFrame, type RelayMessage } from "./frames.ts";
import { problemOf } from "./https-json.ts";
import type { Logger } from "./log.ts";
import { MIN_TLS_VERSION } from "./tls-trust.ts";

/** Close code `ws` reports when the connection ended without a close frame. */
export const ABNORMAL_CLOSURE = 1006;

export interface RelaySocketOptions {
  /** `wss://…/agent/connect`. */
  url: string;
  /** Trust anchors (PEM) for the relay's certificate; undefined = Node's bundled roots. */
  ca: string[] | undefined;
  /** Client certificate and key (PEM): the agent's identity. */
  cert: string;
  key: string;
  hello: HelloMessage;
  handshakeTimeoutMs: number;
  welcomeTimeoutMs: number;
  /** Overrides the relay's heartbeat interval. */
  heartbeatIntervalMs?: number;
  logger: Logger;
  /** TLS and WebSocket are up and `hello` has been sent. */
  onOpen?(): void;
  onWelcome(welcome: WelcomeMessage, heartbeatMs: number): void;
  /** Every valid frame after `welcome`. */
  onFrame(frame: RelayMessage, raw: string): void;
  /** A frame failed to parse (an `error` frame has been sent back). */
  onInvalid?(code: string, detail: string): void;
}

export interface SocketClosed {
  code: number;
  reason: string;
  /** Transport error (TLS, refused, …) or why the agent dropped the connection. */
  error: string | null;
  welcomed: boolean;
  /** Time from open to close (0 when it never opened). */
  upMs: number;
  /** HTTP status when the relay refused the upgrade. */
  httpStatus: number | null;
  /** `code` of the problem body of a refused upgrade. */
  problemCode: string | null;
}

/**
 * One WebSocket connection to the relay: mutual TLS 1.3, `hello` first, `welcome` within a
 * deadline, text heartbeats, and frames parsed once at the boundary. It never reconnects;
 * the agent decides that from `closed`.
 */
export class RelaySocket {
  readonly closed: Promise<SocketClosed>;
  readonly #ws: WebSocket;
  readonly #opts: RelaySocketOptions;
  #welcomed = false;
  #openedAt = 0;
  #localError: string | null = null;
  #httpStatus: number | null = null;
  #problemCode: string | null = null;
  #welcomeTimer: NodeJS.Timeout | null = null;
  #heartbeat: NodeJS.Timeout | null = null;
  #awaitingPong = false;

  constructor(opts: RelaySocketOptions) {
    this.#opts = opts;
    this.#ws = new WebSocket(opts.url, {
      ca: opts.ca,
      cert: opts.cert,
      key: opts.key,
      minVersion: MIN_TLS_VERSION,
      handshakeTimeout: opts.handshakeTimeoutMs,
      maxPayload: Limits.MAX_FRAME_BYTES,
      // Frames are small JSON; compression costs latency and memory on both ends.
      perMessageDeflate: false,
      followRedirects: false,
    });
    const ws = this.#ws;
    // Small frames must leave at once: Nagle would hold an ack back behind the previous frame.
    ws.on("upgrade", (res) => res.socket.setNoDelay(true));
    ws.on("unexpected-response", (req, res) => {
      // The relay refused the upgrade (401 unknown certificate, 403 revoked…): read its problem body.
      this.#httpStatus = res.statusCode ?? null;
      const chunks: Buffer[] = [];
      let size = 0;
      res.on("data", (c: Buffer) => {
        size += c.length;
        if (size <= 16 * 1024) chunks.push(c);
      });
      const done = () => {
        let body: unknown = null;
        try {
          body = JSON.parse(Buffer.concat(chunks).toString("utf8"));
        } catch {
          // not a problem body
        }
        const p = problemOf(body);
        this.#problemCode = p.code;
        this.#localError = `relay refused the connection: HTTP ${res.statusCode}${p.code ? ` ${p.code}` : ""}${p.detail ? `: ${p.detail}` : ""}`;
        req.destroy();
        ws.terminate();
      };
      res.on("end", done);
      res.on("error", done);
    });
    ws.on("open", () => this.#onOpen());
    ws.on("message", (data, isBinary) => this.#onMessage(data as Buffer, isBinary));
    ws.on("error", (err) => {
      this.#localError ??= err.message;
    });
    this.closed = new Promise((resolve) => {
      ws.on("close", (code, reason) => {
        this.#stopTimers();
        resolve({
          code,
          reason: reason.toString("utf8"),
          error: this.#localError,
          welcomed: this.#welcomed,
          upMs: this.#openedAt ? Date.now() - this.#openedAt : 0,
          httpStatus: this.#httpStatus,
          problemCode: this.#problemCode,
        });
      });
    });
  }

  get welcomed(): boolean {
    return this.#welcomed;
  }

  /**
   * Sends a frame (object or its JSON) once the relay has welcomed this connection; false when
   * it could not. Nothing but `hello` goes out before `welcome`, so the outbox resend that
   * follows `welcome` always precedes newer frames.
   */
  send(frame: object | string): boolean {
    if (!this.#welcomed || this.#ws.readyState !== WebSocket.OPEN) return false;
    this.#ws.send(typeof frame === "string" ? frame : JSON.stringify(frame));
    return true;
  }

  /** Closes with a close frame (e.g. 1000 on shutdown). */
  close(code: number, reason: string): void {
    if (this.#ws.readyState === WebSocket.CLOSED) return;
    this.#ws.close(code, reason);
  }

  /** Drops the connection without a closing handshake (a dead peer never answers one). */
  terminate(why: string): void {
    this.#localError ??= why;
    this.#ws.terminate();
  }

  #onOpen(): void {
    this.#openedAt = Date.now();
    this.#ws.send(JSON.stringify(this.#opts.hello));
    this.#opts.onOpen?.();
    this.#welcomeTimer = setTimeout(
      () => this.terminate(`no welcome within ${this.#opts.welcomeTimeoutMs} ms`),
      this.#opts.welcomeTimeoutMs,
    );
  }

  #onMessage(data: Buffer, isBinary: boolean): void {
    if (isBinary) {
      this.#reject(FrameErrorCode.BINARY_UNSUPPORTED, "frames are JSON text", undefined);
      return;
    }
    const raw = data.toString("utf8");
    if (raw === HEARTBEAT_PONG) {
      this.#awaitingPong = false;
      return;
    }
    if (raw === HEARTBEAT_PING) return;
    const parsed = parseRelayFrame(raw);
    if (!parsed.ok) {
      this.#reject(parsed.code, parsed.detail, parsed.originalId);
      return;
    }
    const frame = parsed.frame;
    if (frame.message_type === "welcome") {
      if (!this.#welcomed) this.#onWelcome(frame);
      return;
    }
    this.#opts.onFrame(frame, raw);
  }

  #onWelcome(welcome: WelcomeMessage): void {
    if (this.#welcomeTimer) clearTimeout(this.#welcomeTimer);
    this.#welcomeTimer = null;
    this.#welcomed = true;
    const interval = this.#opts.heartbeatIntervalMs ?? welcome.heartbeat_interval * 1000;
    // A ping is due every interval; if the previous one is still unanswered, the link is dead.
    this.#heartbeat = setInterval(() => {
      if (this.#awaitingPong) {
        this.terminate(`no pong within ${interval} ms`);
        return;
      }
      this.#awaitingPong = true;
      this.#ws.send(HEARTBEAT_PING);
    }, interval);
    this.#opts.onWelcome(welcome, interval);
  }

  #reject(code: string, detail: string, originalId: string | undefined): void {
    this.#opts.logger.warn("invalid frame from relay", { code, detail, original_message_id: originalId });
    this.#opts.onInvalid?.(code, detail);
    if (this.#ws.readyState === WebSocket.OPEN) this.#ws.send(JSON.stringify(errorFrame(code, detail, originalId)));
  }

  #stopTimers(): void {
    if (this.#welcomeTimer) clearTimeout(this.#welcomeTimer);
    if (this.#heartbeat) clearInterval(this.#heartbeat);
    this.#welcomeTimer = null;
    this.#heartbeat = null;
  }
}
