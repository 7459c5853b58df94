import type { EventFilter } from "../../schemas/index.ts";
import type { Clock } from "../clock.ts";
import type { Env } from "../env.ts";
import type { MetricsContext } from "../metrics/aggregate.ts";
import type { SendBudget } from "./send-budget.ts";
import type { FleetEventsStorage, HistoryBounds } from "./storage.ts";
import type { SubscriberIndex } from "./subscriber-index.ts";

/** Everything a FleetEvents handler needs; rebuilt after hibernation from storage and attachments. */
export interface EventsContext {
  ctx: DurableObjectState;
  store: FleetEventsStorage;
  bounds: HistoryBounds;
  /** Time; tests may swap in a ManualClock through runInDurableObject. */
  clock: Clock;
  /** Last alarm time this instance set; undefined after a wake-up, when it is not known. */
  alarmAt: number | null | undefined;
  /** Bytes each subscriber has been sent and not acknowledged, against its budget. */
  budget: SendBudget;
  /** The fleet's metrics, aggregated here (worker/metrics/aggregate.ts). */
  metrics: MetricsContext;
  /** Open subscribers by host/job/tag; undefined until first needed after a wake-up (built by `subscriberIndex`). */
  index: SubscriberIndex | undefined;
}

/** Optional settings of the event history (strings, like every Worker var). */
export interface HistorySettings {
  /** Newest events kept for resuming subscribers. Default 10 000. */
  EVENT_HISTORY_MAX_EVENTS?: string;
  /** Oldest event kept, in seconds since FleetEvents stored it. Default 86 400 (24 h). */
  EVENT_HISTORY_MAX_AGE_S?: string;
  /** Bytes a subscriber may have been sent and not acknowledged before it is closed (4008). Default 8 MiB. */
  EVENT_SUBSCRIBER_MAX_UNACKED_BYTES?: string;
}

export const DEFAULT_SUBSCRIBER_MAX_UNACKED_BYTES = 8 * 1024 * 1024;

/** The per-subscriber send budget; never below one full frame, so a resuming subscriber always progresses. */
export function subscriberBudgetBytes(env: Env & HistorySettings): number {
  return Math.max(256 * 1024, positive(env.EVENT_SUBSCRIBER_MAX_UNACKED_BYTES, DEFAULT_SUBSCRIBER_MAX_UNACKED_BYTES));
}

export const DEFAULT_HISTORY: HistoryBounds = { maxEvents: 10_000, maxAgeMs: 24 * 60 * 60 * 1000 };

function positive(value: string | undefined, fallback: number): number {
  const n = value === undefined || value === "" ? Number.NaN : Number(value);
  return Number.isFinite(n) && n >= 1 ? Math.floor(n) : fallback;
}

export function historyBounds(env: Env & HistorySettings): HistoryBounds {
  return {
    maxEvents: positive(env.EVENT_HISTORY_MAX_EVENTS, DEFAULT_HISTORY.maxEvents),
    maxAgeMs: positive(env.EVENT_HISTORY_MAX_AGE_S, DEFAULT_HISTORY.maxAgeMs / 1000) * 1000,
  };
}

export const SUBSCRIBER_TAG = "subscriber";

/**
 * Per-subscriber data kept across hibernation. The runtime caps it at 2,048 bytes, so a filter
 * whose JSON is longer than MAX_ATTACHED_FILTER_CHARS is kept in the subscriber_filters table
 * instead, and `filter` is absent.
 */
export interface SubscriberAttachment {
  id: string;
  filter?: EventFilter;
  connectedAt: number;
}

/** Longest filter JSON kept in the attachment; the rest of the 2,048 bytes holds the id and time with room to spare. */
export const MAX_ATTACHED_FILTER_CHARS = 1_800;

export function attachment(ws: WebSocket): SubscriberAttachment {
  return ws.deserializeAttachment() as SubscriberAttachment;
}
