import { M } from "../metrics/catalogue.ts";
import { DeltaWriter, type MetricsDelta } from "../metrics/delta.ts";
import { isTerminal } from "./command-states.ts";
import type { CommandRow } from "./command-store.ts";
import { attachment, liveSockets, type RelayContext } from "./context.ts";
import type { Transition } from "./storage.ts";

/**
 * A HostRelay's metrics cost no RPC of their own: changes accumulate in ONE outbox row (kind
 * "metrics", target "fleet"), merged in place in the same synchronous step as the change that
 * caused them, and the flush that sends an event batch to FleetEvents takes that row along in the
 * same `publish` (notify.ts). The row goes alone only when its window closes with no event flush.
 * Its outbox id numbers it, so FleetEvents applies it exactly once. Labels are never per host.
 */

export const METRICS_KIND = "metrics";
export const METRICS_KEY = "metrics";
/** How long a metrics row may wait for an event flush to ride along with before it is sent alone. */
export const METRICS_WINDOW_MS = 5_000;
/** The alarm looks at a row whose flush never settled after this (as for events). */
const LEASE_MS = 30_000;

/** Merges what `write` adds into the open metrics row, or opens one. */
export function addMetrics(rc: RelayContext, now: number, write: (w: DeltaWriter) => void): void {
  const open = rc.store.outbox.openCoalesced(METRICS_KEY, now);
  const w = new DeltaWriter(open ? (JSON.parse(open.body) as MetricsDelta) : {});
  write(w);
  if (open) rc.store.outbox.replaceBody(open.id, w.delta);
  else rc.store.outbox.add(METRICS_KIND, "fleet", w.delta, now + LEASE_MS, { key: METRICS_KEY, notBefore: now + METRICS_WINDOW_MS });
}

/** What one stored state change counts: entries per state, enqueued, finished, dead letters, expirations, the two latencies. */
export function countTransition(w: DeltaWriter, row: CommandRow, t: Transition): void {
  const type = { command_type: row.command_type };
  w.count(M.COMMAND_STATE_ENTRIES, { state: t.to }).minuteState(t.at, t.to);
  if (t.from === null) w.count(M.COMMANDS_ENQUEUED, type);
  if (isTerminal(t.to)) {
    w.count(M.COMMANDS_FINISHED, { ...type, state: t.to });
    // The first final state only: a relay give-up overruled by the agent is not a second completion.
    if (t.from === null || !isTerminal(t.from)) w.observe(M.ACCEPTED_TO_FINAL, undefined, (t.at - row.created_at) / 1000);
  }
  if (t.to === "delivered" && row.last_attempt_at !== null) {
    const s = (t.at - row.last_attempt_at) / 1000;
    w.observe(M.SEND_TO_ACK, undefined, s).minuteDelivery(t.at, s);
  }
  if (t.to === "dead_lettered") w.count(M.DEAD_LETTERS_TOTAL).minuteDeadLetter(t.at);
  if (t.to === "expired") w.count(M.EXPIRATIONS);
}

/**
 * This host's absolute gauges that FleetEvents does not have yet (all of them after a wake-up),
 * read when a metrics row is sent, not per change: non-final commands by state, current dead
 * letters, and whether a greeted agent is connected. Call `gaugesSent` once the send succeeded.
 */
export function gaugesToSend(rc: RelayContext): Record<string, number> {
  const changed: Record<string, number> = {};
  for (const [key, value] of Object.entries(relayGauges(rc))) if (rc.sentGauges.get(key) !== value) changed[key] = value;
  return changed;
}

/** FleetEvents has these values (it applies gauges even from a row it had already applied). */
export function gaugesSent(rc: RelayContext, gauges: Record<string, number>): void {
  for (const [key, value] of Object.entries(gauges)) rc.sentGauges.set(key, value);
}

function relayGauges(rc: RelayContext): Record<string, number> {
  const w = new DeltaWriter();
  const byState = rc.store.commands.activeByState();
  for (const state of ["queued", "delivered", "running", "cancelling"]) w.gauge(M.QUEUE_DEPTH, { state }, byState[state] ?? 0);
  w.gauge(M.DEAD_LETTERS, undefined, rc.store.deadLetters.count());
  const online = liveSockets(rc).some((ws) => attachment(ws).helloAt !== null);
  w.gauge(M.AGENTS_CONNECTED, undefined, online ? 1 : 0);
  return w.delta.gauges!;
}
