import { DurableObject } from "cloudflare:workers";
import type { FleetEventInput } from "../../schemas/index.ts";
import { EventStreamCloseCode, HEARTBEAT_PING, HEARTBEAT_PONG } from "../../schemas/index.ts";
import type { Env } from "../env.ts";
import { type EventsContext, historyBounds, subscriberBudgetBytes } from "./context.ts";
import { publish, pruneDue } from "./publish.ts";
import { SendBudget } from "./send-budget.ts";
import { FleetEventsStorage } from "./storage.ts";
import { drop, onSubscriberMessage, subscribe, subscriberClosed } from "./subscribers.ts";

/**
 * The fleet's live event stream (one instance, named "fleet"): stamps offsets, keeps a bounded
 * history, fans out to subscribers over hibernating WebSockets. Hooks and RPC methods only hand
 * off to the named handlers in this folder.
 */
export class FleetEvents extends DurableObject<Env> {
  private readonly ec: EventsContext;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    const store = new FleetEventsStorage(ctx.storage);
    this.ec = { ctx, store, bounds: historyBounds(env), alarmAt: undefined, budget: new SendBudget(subscriberBudgetBytes(env)) };
    ctx.blockConcurrencyWhile(async () => store.migrate());
    // Answered by the runtime, so a subscriber's keep-alive never wakes a hibernating object.
    ctx.setWebSocketAutoResponse(new WebSocketRequestResponsePair(HEARTBEAT_PING, HEARTBEAT_PONG));
  }

  /** Only the Worker's `/api/events` route reaches this, after it has verified the caller's token. */
  override async fetch(request: Request): Promise<Response> {
    return subscribe(this.ec, request, Date.now());
  }

  /** Subscribers may acknowledge what they read; `ping` is answered by the runtime and anything else is ignored. */
  override async webSocketMessage(ws: WebSocket, message: string | ArrayBuffer): Promise<void> {
    onSubscriberMessage(this.ec, ws, message);
  }

  override async webSocketClose(ws: WebSocket, code: number, reason: string): Promise<void> {
    subscriberClosed(this.ec, ws, code, reason);
  }

  override async webSocketError(ws: WebSocket): Promise<void> {
    drop(this.ec, ws, EventStreamCloseCode.SEND_FAILED, "socket error");
  }

  override async alarm(): Promise<void> {
    pruneDue(this.ec, Date.now());
  }

  // ---- RPC ----

  /** Publishers (HostRelay, JobCoordinator) hand over events in their own order. */
  async publish(events: FleetEventInput[]): Promise<void> {
    publish(this.ec, events, Date.now());
  }
}
