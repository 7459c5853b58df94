/**
 * The tab's one `/api/events` WebSocket. It resumes where it left off (`after` + `epoch`), so a
 * reconnect misses nothing; when the relay cannot honour that (`refetch`), every screen reloads
 * over REST. It acknowledges what it has read, so the relay's per-subscriber send budget never
 * closes it, and it reconnects with jittered exponential backoff.
 */
// The protocol's own list (a type only: nothing of schemas/ or zod reaches the bundle).
import type { FleetEventType } from "../../../schemas/events.ts";

export interface FleetEvent {
  type: FleetEventType;
  offset: number;
  epoch: string;
  at: string;
  host_id?: string;
  message_id?: string;
  job_id?: string;
  tags?: string[];
  state?: string;
  attempt?: number | null;
  detail?: string | null;
  output?: string;
  output_truncated?: boolean;
  seq?: number | null;
  counts?: Record<string, number>;
  errors?: number;
  completion?: number;
  rule_id?: string;
  fingerprint?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

/** `live`: ready and current; `reconnecting`: the socket is down; `refetching`: events were missed, screens reload. */
export type ConnectionStatus = "connecting" | "live" | "reconnecting" | "refetching" | "stopped";

const BACKOFF_BASE_MS = 500;
const BACKOFF_CAP_MS = 15_000;
const KEEPALIVE_MS = 25_000;
const ACK_EVERY_MS = 250;
/** How long "missed events, reloading" stays up after a refetch, so a person sees it. */
const REFETCH_NOTICE_MS = 2_000;

type Listener<T> = (value: T) => void;

export class EventStream {
  status: ConnectionStatus = "stopped";
  /** Bumped on every `refetch`: screens that load data include it in what they depend on. */
  refetchGeneration = 0;
  private ws: WebSocket | null = null;
  private token: string | null = null;
  private epoch: string | undefined;
  private offset: number | undefined;
  private acked = 0;
  private attempt = 0;
  private timers = new Set<ReturnType<typeof setTimeout>>();
  private keepAlive: ReturnType<typeof setInterval> | undefined;
  private ackTimer: ReturnType<typeof setTimeout> | undefined;
  private readonly eventListeners = new Set<Listener<FleetEvent>>();
  private readonly statusListeners = new Set<Listener<ConnectionStatus>>();

  start(token: string | null): void {
    this.stop();
    this.token = token;
    this.setStatus("connecting");
    this.connect();
  }

  stop(): void {
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    clearInterval(this.keepAlive);
    clearTimeout(this.ackTimer);
    this.ackTimer = undefined;
    const ws = this.ws;
    this.ws = null;
    ws?.close(1000);
    this.setStatus("stopped");
  }

  onEvent(listener: Listener<FleetEvent>): () => void {
    this.eventListeners.add(listener);
    return () => this.eventListeners.delete(listener);
  }

  onStatus(listener: Listener<ConnectionStatus>): () => void {
    this.statusListeners.add(listener);
    return () => this.statusListeners.delete(listener);
  }

  private setStatus(status: ConnectionStatus): void {
    if (status === this.status) return;
    this.status = status;
    for (const l of this.statusListeners) l(status);
  }

  private later(fn: () => void, ms: number): void {
    const t = setTimeout(() => {
      this.timers.delete(t);
      fn();
    }, ms);
    this.timers.add(t);
  }

  private connect(): void {
    const url = new URL("/api/events", window.location.href);
    url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    if (this.offset !== undefined && this.epoch !== undefined) {
      url.searchParams.set("after", String(this.offset));
      url.searchParams.set("epoch", this.epoch);
    }
    // A browser cannot set headers on a WebSocket: the token rides as the subprotocol after
    // "bearer". Behind Access there is no token; Access adds its assertion to the upgrade itself.
    const ws = this.token ? new WebSocket(url, ["bearer", this.token]) : new WebSocket(url);
    this.ws = ws;
    ws.onmessage = (e) => {
      if (this.ws !== ws || typeof e.data !== "string" || e.data === "pong") return;
      this.onFrame(JSON.parse(e.data) as { type: string; offset: number; epoch: string });
    };
    ws.onclose = () => {
      if (this.ws !== ws) return;
      this.ws = null;
      clearInterval(this.keepAlive);
      this.setStatus("reconnecting");
      // Full jitter: tabs that lost the relay together do not come back together.
      const ceiling = Math.min(BACKOFF_CAP_MS, BACKOFF_BASE_MS * 2 ** this.attempt);
      this.attempt = Math.min(this.attempt + 1, 10);
      this.later(() => this.connect(), 100 + Math.random() * ceiling);
    };
    clearInterval(this.keepAlive);
    this.keepAlive = setInterval(() => {
      if (ws.readyState === WebSocket.OPEN) ws.send("ping");
    }, KEEPALIVE_MS);
  }

  private onFrame(frame: { type: string; offset: number; epoch: string }): void {
    if (frame.epoch !== this.epoch) this.acked = 0;
    this.epoch = frame.epoch;
    this.offset = frame.offset;
    this.scheduleAck();
    if (frame.type === "ready") {
      this.attempt = 0;
      if (this.status !== "refetching") this.setStatus("live");
    } else if (frame.type === "refetch") {
      this.attempt = 0;
      this.refetchGeneration++;
      this.setStatus("refetching");
      this.later(() => {
        if (this.status === "refetching") this.setStatus("live");
      }, REFETCH_NOTICE_MS);
    } else {
      for (const l of this.eventListeners) l(frame as FleetEvent);
    }
  }

  /** Acks at most every ACK_EVERY_MS: frees the relay's budget without a frame per event. */
  private scheduleAck(): void {
    if (this.ackTimer !== undefined) return;
    this.ackTimer = setTimeout(() => {
      this.ackTimer = undefined;
      const ws = this.ws;
      if (ws?.readyState === WebSocket.OPEN && this.offset !== undefined && this.offset !== this.acked) {
        ws.send(JSON.stringify({ type: "ack", offset: this.offset }));
        this.acked = this.offset;
      }
    }, ACK_EVERY_MS);
  }
}

export const events = new EventStream();
