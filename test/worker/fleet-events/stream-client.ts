/**
 * A test client of `GET /api/events`: opens the stream through the Worker, records every frame,
 * and waits for frames by predicate with bounded timeouts.
 */
import { runInDurableObject } from "cloudflare:test";
import { env, exports } from "cloudflare:workers";
import { afterEach, expect } from "vitest";
import type { FleetEventInput } from "../../../schemas/index.ts";
import { nowRfc3339 } from "../../../schemas/index.ts";
import type { EventsContext } from "../../../worker/fleet-events/context.ts";
import type { FleetEventsStorage } from "../../../worker/fleet-events/storage.ts";
import { BASE, token } from "../helpers.ts";

export function fleetStub() {
  return env.FLEET_EVENTS.get(env.FLEET_EVENTS.idFromName("fleet"));
}

export interface OpenOptions {
  role?: string;
  /** A ready-made token (overrides `role`); null sends none. */
  token?: string | null;
  /** How the token travels: the browser way (subprotocols) or an Authorization header. */
  via?: "subprotocol" | "header";
  /** Extra subprotocols offered (before `bearer`, if the token travels that way). */
  protocols?: string[];
  upgrade?: boolean;
}

/** The raw response of `GET /api/events?<query>`. */
export async function requestStream(query: string, opts: OpenOptions = {}): Promise<Response> {
  const headers: Record<string, string> = {};
  if (opts.upgrade !== false) headers.upgrade = "websocket";
  const bearer = opts.token === undefined ? await token(opts.role ?? "viewer") : opts.token;
  const protocols = [...(opts.protocols ?? [])];
  if (bearer !== null) {
    if ((opts.via ?? "subprotocol") === "subprotocol") protocols.push("bearer", bearer);
    else headers.authorization = `Bearer ${bearer}`;
  }
  if (protocols.length) headers["sec-websocket-protocol"] = protocols.join(", ");
  return exports.default.fetch(new Request(`${BASE}/api/events${query ? `?${query}` : ""}`, { headers }));
}

export class EventStream {
  readonly frames: any[] = [];
  closed: { code: number; reason: string } | null = null;
  private waiters: { pred: (f: any) => boolean; resolve: (f: any) => void }[] = [];
  private closeWaiters: ((c: { code: number; reason: string }) => void)[] = [];

  readonly ws: WebSocket;
  readonly response: Response;

  constructor(ws: WebSocket, response: Response) {
    this.ws = ws;
    this.response = response;
    ws.addEventListener("message", (ev) => {
      const data = typeof ev.data === "string" ? ev.data : "";
      const frame = data === "pong" ? "pong" : JSON.parse(data);
      this.frames.push(frame);
      this.waiters = this.waiters.filter((w) => {
        if (!w.pred(frame)) return true;
        w.resolve(frame);
        return false;
      });
    });
    ws.addEventListener("close", (ev) => {
      this.closed = { code: ev.code, reason: ev.reason };
      for (const w of this.closeWaiters) w(this.closed);
    });
  }

  /** Opens the stream (expects 101) and waits for its first control frame. */
  static async open(query = "", opts: OpenOptions = {}): Promise<EventStream> {
    const res = await requestStream(query, opts);
    expect(res.status, res.status === 101 ? "" : await res.text()).toBe(101);
    const ws = res.webSocket!;
    ws.accept();
    const stream = new EventStream(ws, res);
    await stream.next((f) => f.type === "ready" || f.type === "refetch");
    return stream;
  }

  /** The first frame (already seen or future) matching `pred`, within `timeoutMs`. */
  next(pred: (f: any) => boolean, timeoutMs = 5000): Promise<any> {
    const seen = this.frames.find(pred);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`no matching frame within ${timeoutMs} ms; saw ${JSON.stringify(this.frames).slice(0, 2000)}`)),
        timeoutMs,
      );
      this.waiters.push({ pred, resolve: (f) => (clearTimeout(timer), resolve(f)) });
    });
  }

  /** The first control frame (`ready` or `refetch`). */
  control(): any {
    return this.frames.find((f) => f.type === "ready" || f.type === "refetch");
  }

  /** Event frames (those with an offset), in arrival order. */
  events(pred: (f: any) => boolean = () => true): any[] {
    return this.frames.filter((f) => typeof f === "object" && typeof f.offset === "number" && "at" in f && pred(f));
  }

  /** Frames as types, for order checks: events as their type, control frames as theirs. */
  types(): string[] {
    return this.frames.map((f) => (typeof f === "string" ? f : f.type));
  }

  waitClose(timeoutMs = 5000): Promise<{ code: number; reason: string }> {
    if (this.closed) return Promise.resolve(this.closed);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error("socket not closed in time")), timeoutMs);
      this.closeWaiters.push((c) => (clearTimeout(timer), resolve(c)));
    });
  }

  close(): void {
    this.ws.close(1000, "bye");
  }
}

/** A synthetic event for `host`, as a HostRelay would publish it. */
export function hostEvent(
  hostId: string,
  type: FleetEventInput["type"] = "host.online",
  extra: Partial<FleetEventInput> = {},
): FleetEventInput {
  return { type, at: nowRfc3339(), host_id: hostId, ...extra };
}

/** Publishes straight to the FleetEvents object, as HostRelay's outbox and the JobCoordinator do. */
export async function publish(...events: FleetEventInput[]): Promise<void> {
  await fleetStub().publish(events);
}

/** Runs `fn` against the FleetEvents object's real storage module. */
export function inStore<R>(fn: (store: FleetEventsStorage, state: DurableObjectState) => R): Promise<R> {
  // The instance's own store: it keeps copies (meta, the oldest event's time) that a second store would not update.
  return runInDurableObject(fleetStub(), (instance, state) => fn((instance as unknown as { ec: EventsContext }).ec.store, state));
}

/**
 * Publishes `event` with a fresh message_id and waits until `stream` receives it. It must match
 * the stream's filters; every matching event published before it has then arrived too (one ordered
 * socket), so a test can assert that something did *not* arrive without sleeping.
 */
export async function sync(stream: EventStream, event: FleetEventInput): Promise<any> {
  const marker = crypto.randomUUID();
  await publish({ ...event, message_id: marker });
  return stream.next((f) => f.message_id === marker);
}

/** Opens streams (expecting 101 and a first control frame) and closes them after each test, so sockets never leak between tests. */
export function streamOpener(): (query: string) => Promise<EventStream> {
  const open: EventStream[] = [];
  afterEach(() => {
    for (const s of open.splice(0)) if (!s.closed) s.close();
  });
  return async (query) => {
    const s = await EventStream.open(query);
    open.push(s);
    return s;
  };
}
