import type { EventFilter, EventStreamControl, FleetEvent, FleetEventInput, RefetchReason } from "../../schemas/index.ts";
import { EventStreamAck, EventStreamCloseCode, parseStrictJson, utf8ByteLength } from "../../schemas/index.ts";
import { ErrorCode, problemResponse, RelayError } from "../errors.ts";
import { AnalyticsBudget, countHere } from "../metrics/aggregate.ts";
import { M } from "../metrics/catalogue.ts";
import { attachment, type EventsContext, MAX_ATTACHED_FILTER_CHARS, SUBSCRIBER_TAG, type SubscriberAttachment } from "./context.ts";
import { compile, matchesCompiled, SubscriberIndex } from "./subscriber-index.ts";

export { INTERNAL_SUBSCRIPTION_HEADER, Subscription } from "./contract.ts";

import { INTERNAL_SUBSCRIPTION_HEADER, Subscription } from "./contract.ts";

/** Lists combine with AND; the values within one list with OR. An absent list matches everything. */
export function matches(filter: EventFilter, event: FleetEventInput): boolean {
  return matchesCompiled(compile(filter), event);
}

/**
 * The open subscribers by host, job and tag, built on first use after the object wakes from the
 * sockets the runtime kept (their attachments) and the filters too long for one (subscriber_filters,
 * whose rows for sockets that went meanwhile are swept here).
 */
export function subscriberIndex(ec: EventsContext): SubscriberIndex {
  if (ec.index) return ec.index;
  const index = new SubscriberIndex();
  const open = ec.ctx.getWebSockets(SUBSCRIBER_TAG).filter((ws) => ws.readyState === WebSocket.OPEN);
  const attached = open.map((ws) => ({ ws, a: attachment(ws) }));
  const stored = ec.store.loadFilters(new Set(attached.filter(({ a }) => a.filter === undefined).map(({ a }) => a.id)));
  for (const { ws, a } of attached) {
    const filter = a.filter ?? stored.get(a.id);
    // A socket whose stored filter is missing cannot be served correctly: it resumes from its offset.
    if (filter === undefined) drop(ec, ws, EventStreamCloseCode.SEND_FAILED, "subscription lost; resume with after");
    else index.add(ws, a.id, filter);
  }
  ec.index = index;
  return index;
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

  const index = subscriberIndex(ec);
  const pair = new WebSocketPair();
  const [client, server] = [pair[0], pair[1]];
  ec.ctx.acceptWebSocket(server, [SUBSCRIBER_TAG]);
  const id = crypto.randomUUID();
  const fits = JSON.stringify(sub.filter).length <= MAX_ATTACHED_FILTER_CHARS;
  // Stored (synchronously, so before the 101 goes out) before anything is sent that a wake-up would need it for.
  if (!fits) ec.store.saveFilter(id, sub.filter);
  const a: SubscriberAttachment = fits ? { id, filter: sub.filter, connectedAt: now } : { id, connectedAt: now };
  server.serializeAttachment(a);
  index.add(server, id, sub.filter);
  catchUp(ec, server, id, sub);
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

function catchUp(ec: EventsContext, ws: WebSocket, id: string, sub: Subscription): void {
  const { store } = ec;
  const epoch = store.epoch();
  const head = store.head();
  if (sub.after === undefined) {
    sendControl(ec, ws, id, { type: "ready", epoch, offset: head });
    return;
  }
  const reason = uncovered(sub.after, sub.epoch, epoch, head, store.prunedThrough());
  if (reason) {
    countHere(ec.metrics, M.EVENT_REFETCHES, { reason }, 1, new AnalyticsBudget());
    sendControl(ec, ws, id, { type: "refetch", epoch, offset: head, reason });
    return;
  }
  // A replay longer than the send budget stops at it; the subscriber resumes from the last event it got.
  const filter = compile(sub.filter);
  for (const event of store.after(sub.after)) {
    if (!matchesCompiled(filter, event)) continue;
    const text = JSON.stringify(event);
    if (!send(ec, ws, id, text, utf8ByteLength(text), event.offset)) return;
  }
  sendControl(ec, ws, id, { type: "ready", epoch, offset: head });
}

/** Why the history cannot give a client resuming after `after` everything it missed, or null if it can. */
export function uncovered(
  after: number,
  clientEpoch: string | undefined,
  epoch: string,
  head: number,
  prunedThrough: number,
): RefetchReason | null {
  if (clientEpoch !== epoch) return "epoch_changed";
  if (after > head) return "offset_ahead";
  // Events prunedThrough and older are gone; the client needs after + 1 onwards.
  if (after < prunedThrough) return "history_pruned";
  return null;
}

function sendControl(ec: EventsContext, ws: WebSocket, id: string, frame: EventStreamControl): void {
  const text = JSON.stringify(frame);
  send(ec, ws, id, text, utf8ByteLength(text), frame.offset);
}

/**
 * Hands one frame to the runtime. Why a slow subscriber cannot hold the others back: `send` is
 * synchronous and never waits for the peer — the runtime appends the frame to that socket's own
 * outgoing queue and returns — and nothing here awaits anything per subscriber. A slow reader only
 * lengthens its own queue, and only up to its send budget (`send-budget.ts`): a frame past it is
 * not sent and the subscriber is closed with TOO_FAR_BEHIND. A socket that refuses the frame
 * (closed, errored) is dropped. Either way it is skipped for the rest of the batch.
 */
function send(ec: EventsContext, ws: WebSocket, id: string, text: string, bytes: number, offset: number): boolean {
  if (!ec.budget.charge(id, bytes, offset)) {
    drop(ec, ws, EventStreamCloseCode.TOO_FAR_BEHIND, `more than ${ec.budget.maxUnackedBytes} bytes unacknowledged; resume with after`);
    return false;
  }
  try {
    ws.send(text);
    return true;
  } catch {
    drop(ec, ws, EventStreamCloseCode.SEND_FAILED, "send failed");
    return false;
  }
}

/** Longest acknowledgement frame read; anything longer, or not an ack, is ignored. */
const MAX_ACK_CHARS = 128;

/** A subscriber's `{"type":"ack","offset":N}` frees its budget up to N; anything else is ignored. */
export function onSubscriberMessage(ec: EventsContext, ws: WebSocket, message: string | ArrayBuffer): void {
  if (typeof message !== "string" || message.length > MAX_ACK_CHARS) return;
  const json = parseStrictJson(message);
  if (!json.ok) return;
  const ack = EventStreamAck.safeParse(json.value);
  if (ack.success) ec.budget.ack(attachment(ws).id, ack.data.offset);
}

/**
 * Sends each stored event to every open subscriber whose filters match it, found through the
 * index: the work per event follows the subscribers it concerns, not everyone's filter lengths.
 */
export function fanOut(ec: EventsContext, events: FleetEvent[]): void {
  if (events.length === 0) return;
  const index = subscriberIndex(ec);
  if (index.size === 0) return;
  // A subscriber closed or refused once is skipped for the rest of the batch.
  const gone = new Set<string>();
  for (const event of events) {
    // Serialised (and measured) once per event, however many subscribers receive it.
    let text: string | undefined;
    let bytes = 0;
    for (const s of index.matching(event)) {
      if (gone.has(s.id)) continue;
      if (s.ws.readyState !== WebSocket.OPEN) {
        gone.add(s.id);
        continue;
      }
      if (text === undefined) {
        text = JSON.stringify(event);
        bytes = utf8ByteLength(text);
      }
      if (!send(ec, s.ws, s.id, text, bytes, event.offset)) gone.add(s.id);
    }
  }
}

/** Closes a subscriber from our side; the runtime stops listing it once the close completes. */
export function drop(ec: EventsContext, ws: WebSocket, code: number, reason: string): void {
  try {
    const a = attachment(ws);
    ec.budget.forget(a.id);
    ec.index?.remove(a.id);
    if (a.filter === undefined) ec.store.deleteFilter(a.id);
  } catch {
    // No attachment: nothing was counted or indexed for it.
  }
  try {
    ws.close(code, reason);
  } catch {
    // Already closed or broken.
  }
}

/** The subscriber went away: complete the close handshake, and forget its index entry and stored filter. */
export function subscriberClosed(ec: EventsContext, ws: WebSocket, code: number, reason: string): void {
  // 1005, 1006 and 1015 describe a close; they cannot be sent in one.
  drop(ec, ws, code === 1005 || code === 1006 || code === 1015 ? 1000 : code, reason);
}
