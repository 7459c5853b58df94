import { z } from "zod";
import type { EventFilter, EventStreamControl, FleetEvent, FleetEventInput, RefetchReason } from "../../schemas/index.ts";
import { EventFilter as EventFilterSchema, EventStreamCloseCode } from "../../schemas/index.ts";
import { ErrorCode, RelayError, problemResponse } from "../errors.ts";
import { type EventsContext, SUBSCRIBER_TAG, type SubscriberAttachment, attachment } from "./context.ts";

/** Set only by the Worker's `/api/events` route, on a request it builds itself after checking the token. */
export const INTERNAL_SUBSCRIPTION_HEADER = "x-fleet-events-subscription";

/** What the route hands the object: parsed filters and the resume point, if any. */
export const Subscription = z.strictObject({
  filter: EventFilterSchema,
  after: z.int().min(0).optional(),
  epoch: z.string().max(64).optional(),
});
export type Subscription = z.infer<typeof Subscription>;

/** Lists combine with AND; the values within one list with OR. An absent list matches everything. */
export function matches(filter: EventFilter, event: FleetEventInput): boolean {
  if (filter.types && !filter.types.includes(event.type)) return false;
  if (filter.hosts && !(event.host_id !== undefined && filter.hosts.includes(event.host_id))) return false;
  if (filter.jobs && !(event.job_id !== undefined && filter.jobs.includes(event.job_id))) return false;
  if (filter.tags && !(event.tags ?? []).some((t) => filter.tags!.includes(t))) return false;
  return true;
}

/**
 * Accepts a subscriber and, before anything else can run in this object, replays what it missed
 * and sends `ready` (or `refetch`). Everything from `acceptWebSocket` to the return is synchronous
 * — SQLite reads and non-blocking sends — so no `publish` can interleave: an event is either in
 * the replay or, stored after it, fanned out live to the already accepted socket. Never both, never neither.
 */
export function subscribe(ec: EventsContext, request: Request, now: number): Response {
  if (request.headers.get("upgrade")?.toLowerCase() !== "websocket") {
    return problemResponse(new RelayError(ErrorCode.UPGRADE_REQUIRED));
  }
  const sub = parseSubscription(request.headers.get(INTERNAL_SUBSCRIPTION_HEADER));
  if (!sub) return problemResponse(new RelayError(ErrorCode.VALIDATION, "missing or invalid subscription"));

  const pair = new WebSocketPair();
  const [client, server] = [pair[0], pair[1]];
  ec.ctx.acceptWebSocket(server, [SUBSCRIBER_TAG]);
  const a: SubscriberAttachment = { id: crypto.randomUUID(), filter: sub.filter, connectedAt: now };
  server.serializeAttachment(a);
  catchUp(ec, server, sub);
  return new Response(null, { status: 101, webSocket: client });
}

function parseSubscription(raw: string | null): Subscription | null {
  if (raw === null) return null;
  try {
    const parsed = Subscription.safeParse(JSON.parse(raw));
    return parsed.success ? parsed.data : null;
  } catch {
    return null;
  }
}

function catchUp(ec: EventsContext, ws: WebSocket, sub: Subscription): void {
  const { store } = ec;
  const epoch = store.epoch();
  const head = store.head();
  if (sub.after === undefined) {
    sendControl(ws, { type: "ready", epoch, offset: head });
    return;
  }
  const reason = uncovered(sub.after, sub.epoch, epoch, head, store.prunedThrough());
  if (reason) {
    sendControl(ws, { type: "refetch", epoch, offset: head, reason });
    return;
  }
  for (const event of store.after(sub.after)) {
    if (matches(sub.filter, event) && !send(ws, JSON.stringify(event))) return;
  }
  sendControl(ws, { type: "ready", epoch, offset: head });
}

/** Why the history cannot give a client resuming after `after` everything it missed, or null if it can. */
export function uncovered(after: number, clientEpoch: string | undefined, epoch: string, head: number, prunedThrough: number): RefetchReason | null {
  if (clientEpoch !== epoch) return "epoch_changed";
  if (after > head) return "offset_ahead";
  // Events prunedThrough and older are gone; the client needs after + 1 onwards.
  if (after < prunedThrough) return "history_pruned";
  return null;
}

function sendControl(ws: WebSocket, frame: EventStreamControl): void {
  send(ws, JSON.stringify(frame));
}

/**
 * Hands one frame to the runtime. Why a slow subscriber cannot hold the others back: `send` is
 * synchronous and never waits for the peer — the runtime appends the frame to that socket's own
 * outgoing queue and returns — and nothing here awaits anything per subscriber. A slow reader only
 * lengthens its own queue; fan-out to the rest proceeds at memory speed. A socket that refuses the
 * frame (closed, errored) is dropped and skipped for the rest of the batch.
 */
function send(ws: WebSocket, text: string): boolean {
  try {
    ws.send(text);
    return true;
  } catch {
    drop(ws, EventStreamCloseCode.SEND_FAILED, "send failed");
    return false;
  }
}

/** Sends each stored event to every open subscriber whose filters match it. */
export function fanOut(ec: EventsContext, events: FleetEvent[]): void {
  if (events.length === 0) return;
  const subscribers = ec.ctx
    .getWebSockets(SUBSCRIBER_TAG)
    .filter((ws) => ws.readyState === WebSocket.OPEN)
    .map((ws) => ({ ws, filter: attachment(ws).filter, alive: true }));
  if (subscribers.length === 0) return;
  for (const event of events) {
    // Serialised once per event, however many subscribers receive it.
    let text: string | undefined;
    for (const s of subscribers) {
      if (!s.alive || !matches(s.filter, event)) continue;
      text ??= JSON.stringify(event);
      s.alive = send(s.ws, text);
    }
  }
}

/** Closes a subscriber from our side; the runtime stops listing it once the close completes. */
export function drop(ws: WebSocket, code: number, reason: string): void {
  try {
    ws.close(code, reason);
  } catch {
    // Already closed or broken.
  }
}

/** The subscriber went away: complete the close handshake. Nothing is kept per subscriber beyond its socket. */
export function subscriberClosed(ws: WebSocket, code: number, reason: string): void {
  // 1005, 1006 and 1015 describe a close; they cannot be sent in one.
  drop(ws, code === 1005 || code === 1006 || code === 1015 ? 1000 : code, reason);
}
