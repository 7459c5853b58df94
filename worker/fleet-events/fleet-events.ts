import { DurableObject } from "cloudflare:workers";
import { EventStreamCloseCode, HEARTBEAT_PING, HEARTBEAT_PONG, Limits } from "../../schemas/index.ts";
import { systemClock } from "../clock.ts";
import { DurableEntry } from "../durable-entry.ts";
import type { Env } from "../env.ts";
import { ErrorCode, problemResponse, RelayError } from "../errors.ts";
import { AnalyticsBudget, applySourced, countVolatile, type MetricsSnapshot, snapshot, summary } from "../metrics/aggregate.ts";
import { M } from "../metrics/catalogue.ts";
import type { MetricsSummary } from "../metrics/contract.ts";
import type { MetricsDelta } from "../metrics/delta.ts";
import { type EventsContext, historyBounds, SUBSCRIBER_TAG, subscriberBudgetBytes } from "./context.ts";
import { type PublishBatch, type PublishedEvent, pruneDue, publish, scheduleAlarm } from "./publish.ts";
import { SendBudget } from "./send-budget.ts";
import { FleetEventsStorage } from "./storage.ts";
import { drop, onSubscriberMessage, subscribe, subscriberClosed } from "./subscribers.ts";

export type { PublishBatch, PublishedEvent } from "./publish.ts";

/**
 * The fleet's live event stream (one instance, named "fleet"): stamps offsets, keeps a bounded
 * history, fans out to subscribers over hibernating WebSockets. Hooks and RPC methods only hand
 * off to the named handlers in this folder, each through the DurableEntry, which logs what they
 * throw and recomputes the alarm after every call.
 */
export class FleetEvents extends DurableObject<Env> {
  private readonly ec: EventsContext;
  private readonly entry: DurableEntry;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    const store = new FleetEventsStorage(ctx.storage);
    this.ec = {
      ctx,
      store,
      bounds: historyBounds(env),
      clock: systemClock,
      alarmAt: undefined,
      budget: new SendBudget(subscriberBudgetBytes(env)),
      metrics: { metrics: store.metrics, analytics: env.ANALYTICS, prunedMinute: 0, volatile: new Map() },
      index: undefined,
    };
    this.entry = new DurableEntry("FleetEvents", () => scheduleAlarm(this.ec));
    ctx.blockConcurrencyWhile(async () => store.migrate());
    // Answered by the runtime, so a subscriber's keep-alive never wakes a hibernating object.
    ctx.setWebSocketAutoResponse(new WebSocketRequestResponsePair(HEARTBEAT_PING, HEARTBEAT_PONG));
  }

  /** Only the Worker's `/api/events` route reaches this, after it has verified the caller's token. */
  override async fetch(request: Request): Promise<Response> {
    return this.entry.run(
      "fetch",
      () => subscribe(this.ec, request, this.ec.clock.now()),
      () => problemResponse(new RelayError(ErrorCode.INTERNAL, "internal error")),
    );
  }

  /** Subscribers may acknowledge what they read; `ping` is answered by the runtime and anything else is ignored. */
  override async webSocketMessage(ws: WebSocket, message: string | ArrayBuffer): Promise<void> {
    return this.entry.hook("webSocketMessage", () => onSubscriberMessage(this.ec, ws, message));
  }

  override async webSocketClose(ws: WebSocket, code: number, reason: string): Promise<void> {
    return this.entry.hook("webSocketClose", () => subscriberClosed(this.ec, ws, code, reason));
  }

  override async webSocketError(ws: WebSocket): Promise<void> {
    return this.entry.hook("webSocketError", () => drop(this.ec, ws, EventStreamCloseCode.SEND_FAILED, "socket error"));
  }

  override async alarm(): Promise<void> {
    return this.entry.hook("alarm", () => pruneDue(this.ec, this.ec.clock.now()));
  }

  // ---- RPC ----

  /**
   * Publishers (HostRelay, JobCoordinator) hand over events in their own order; an event carrying a
   * `source` and `source_seq` that source already published is dropped, so retrying a batch is safe.
   * A failure reaches the caller (which retries).
   */
  publish(batch: PublishedEvent[] | PublishBatch): Promise<void> {
    return this.entry.run("publish", () => {
      publish(this.ec, batch, this.ec.clock.now());
    });
  }

  /**
   * Metric changes from a Worker isolate or another object: `seq` increases per `source`, and a
   * delta whose number its source already used is dropped, so a retried call is applied once.
   */
  recordMetrics(source: string, seq: number, delta: MetricsDelta): Promise<void> {
    return this.entry.run("recordMetrics", () => {
      if (applySourced(this.ec.metrics, { source, seq, delta }, this.ec.clock.now(), new AnalyticsBudget())) {
        countVolatile(this.ec.metrics, M.METRICS_DELTAS, { path: "direct" });
      }
    });
  }

  /** What the Alerting object evaluates rules over: the last hour by minute, dead letters, recently ended jobs. */
  metricsSummary(): Promise<MetricsSummary> {
    return this.entry.run("metricsSummary", () => summary(this.ec.metrics, this.ec.clock.now()));
  }

  /**
   * Queue depth of each host as its relay last reported it (0 for a host that never reported), for a
   * page of the host list: at most as stale as the relay's last metrics row (seconds).
   */
  hostQueueDepths(hostIds: string[]): Promise<Record<string, number>> {
    return this.entry.run("hostQueueDepths", () => {
      const sums = this.ec.metrics.metrics.sourceGaugeSums(
        hostIds.slice(0, Limits.MAX_PAGE_SIZE).map((id) => `host:${id}`),
        M.QUEUE_DEPTH,
      );
      return Object.fromEntries(Object.entries(sums).map(([source, n]) => [source.slice("host:".length), n]));
    });
  }

  /** Every aggregated series and the minute series, for `/metrics` and `/api/metrics`. */
  metricsSnapshot(): Promise<MetricsSnapshot> {
    return this.entry.run("metricsSnapshot", () =>
      snapshot(
        this.ec.metrics,
        this.ec.ctx.getWebSockets(SUBSCRIBER_TAG).filter((ws) => ws.readyState === WebSocket.OPEN).length,
        this.ec.clock.now(),
      ),
    );
  }
}
