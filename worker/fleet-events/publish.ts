import type { FleetEvent } from "../../schemas/index.ts";
import { FleetEventInput, MAX_EVENT_OUTPUT_CHARS } from "../../schemas/index.ts";
import { AnalyticsBudget, applySourced, countHere, countVolatile, trackJobProgress } from "../metrics/aggregate.ts";
import { M } from "../metrics/catalogue.ts";
import type { SourcedDelta } from "../metrics/delta.ts";
import type { EventsContext } from "./context.ts";
import { fanOut } from "./subscribers.ts";

/**
 * An event as a publisher hands it over. `source` (the publisher's name, e.g. `HostRelay:<host_id>`
 * or `JobCoordinator:<job_id>`) and `source_seq` (increasing per source, e.g. its outbox row id)
 * make publishing idempotent: an event whose number its source already used is dropped. Both are
 * optional; they are not stored in the event nor sent to subscribers.
 */
export type PublishedEvent = FleetEventInput & { source?: string | undefined; source_seq?: number | undefined };

/**
 * What `publish` takes besides a bare list of events: the events and the publisher's metric deltas
 * (a HostRelay's coalesced metrics rows), applied in the same step, each once per (source, seq).
 */
export interface PublishBatch {
  events: PublishedEvent[];
  metrics?: SourcedDelta[] | undefined;
}

const MAX_SOURCE_CHARS = 200;

/** The event's source key, if it carries a usable one. */
function sourceKey(input: unknown): { source: string; seq: number } | null {
  if (input === null || typeof input !== "object") return null;
  const { source, source_seq: seq } = input as { source?: unknown; source_seq?: unknown };
  if (typeof source !== "string" || source.length === 0 || source.length > MAX_SOURCE_CHARS) return null;
  if (typeof seq !== "number" || !Number.isSafeInteger(seq) || seq < 0) return null;
  return { source, seq };
}

/**
 * Stores each valid event (stamping its offset) unless its source already published it, fans the
 * batch out to matching subscribers and enforces the history bounds. Synchronous, so a batch is
 * stored and sent as one step. An invalid event is logged and skipped rather than refused: refusing
 * would make its publisher retry it forever.
 */
export function publish(ec: EventsContext, batch: unknown, now: number): FleetEvent[] {
  const isBatch = batch !== null && typeof batch === "object" && !Array.isArray(batch);
  const inputs = isBatch ? (batch as { events?: unknown }).events : batch;
  const stored: FleetEvent[] = [];
  const budget = new AnalyticsBudget();
  for (const input of Array.isArray(inputs) ? inputs : []) {
    const key = sourceKey(input);
    // Parsing strips source and source_seq: they are the publisher's bookkeeping, not the event's.
    const parsed = FleetEventInput.safeParse(input);
    if (!parsed.success) {
      const why = parsed.error.issues.map((i) => `${i.path.join(".") || "(root)"}: ${i.message}`).join("; ");
      console.error(`dropping an invalid fleet event: ${why.slice(0, 500)}`);
      continue;
    }
    if (key && !ec.store.acceptFromSource(key.source, key.seq, now)) continue;
    const event = parsed.data;
    if (event.output !== undefined && event.output.length > MAX_EVENT_OUTPUT_CHARS) {
      event.output = event.output.slice(0, MAX_EVENT_OUTPUT_CHARS);
      event.output_truncated = true;
    }
    stored.push(ec.store.append(event, now));
    trackJobProgress(ec.metrics, event, now, budget);
  }
  const metrics = isBatch ? (batch as { metrics?: unknown }).metrics : undefined;
  const path = Array.isArray(inputs) && inputs.length > 0 ? "with_events" : "alone";
  for (const delta of Array.isArray(metrics) ? metrics : []) {
    if (applySourced(ec.metrics, delta, now, budget)) countVolatile(ec.metrics, M.METRICS_DELTAS, { path });
  }
  countVolatile(ec.metrics, M.PUBLISH_CALLS, undefined);
  if (stored.length > 0) countHere(ec.metrics, M.EVENTS_PUBLISHED, undefined, stored.length, budget);
  fanOut(ec, stored);
  if (stored.length > 0) ec.store.pruneAfterAppend(stored[stored.length - 1]!.offset, now, ec.bounds);
  scheduleAlarm(ec);
  return stored;
}

/** The alarm: drops events past the age bound even when nothing is published. */
export function pruneDue(ec: EventsContext, now: number): void {
  ec.alarmAt = null;
  ec.store.prune(now, ec.bounds);
  scheduleAlarm(ec);
}

/** Points the single alarm at the moment the oldest kept event ages out (none with no events). */
export function scheduleAlarm(ec: EventsContext): void {
  const oldest = ec.store.oldestAt();
  const next = oldest === null ? null : oldest + ec.bounds.maxAgeMs;
  if (next === ec.alarmAt) return;
  if (next === null) void ec.ctx.storage.deleteAlarm();
  else void ec.ctx.storage.setAlarm(next);
  ec.alarmAt = next;
}
