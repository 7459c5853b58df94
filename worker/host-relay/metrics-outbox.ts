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
  if (rc.openMetrics === undefined) {
    const row = rc.store.outbox.openCoalesced(METRICS_KEY, now);
    rc.openMetrics = row ? { id: row.id, delta: JSON.parse(row.body) as MetricsDelta, notBefore: row.not_before } : null;
  }
  const open = rc.openMetrics && rc.openMetrics.notBefore > now ? rc.openMetrics : null;
  const w = new DeltaWriter(open ? open.delta : {});
  write(w);
  if (open) {
    rc.store.outbox.replaceBody(open.id, w.delta);
    return;
  }
  const notBefore = now + METRICS_WINDOW_MS;
  const id = rc.store.outbox.add(METRICS_KIND, "fleet", w.delta, now + LEASE_MS, { key: METRICS_KEY, notBefore });
  rc.openMetrics = { id, delta: w.delta, notBefore };
}

/** A flush took these metrics rows: if the open one is among them, later changes open a new one. */
export function metricsRowTaken(rc: RelayContext, ids: number[]): void {
  if (rc.openMetrics && ids.includes(rc.openMetrics.id)) rc.openMetrics = null;
}

/** Keeps the gauge counts current for one transition (when they are known). */
function trackCounts(rc: RelayContext, t: Transition): void {
  const c = rc.gaugeCounts;
  if (!c) return;
  if (t.from !== null && !isTerminal(t.from)) c.active[t.from] = (c.active[t.from] ?? 1) - 1;
  if (!isTerminal(t.to)) c.active[t.to] = (c.active[t.to] ?? 0) + 1;
  if (t.to === "dead_lettered") c.deadLetters++;
  if (t.from === "dead_lettered") c.deadLetters--;
}

/** Counts a transition into the open metrics row (and the in-memory gauge counts). */
export function recordTransitionMetrics(rc: RelayContext, row: CommandRow, t: Transition, now: number): void {
  trackCounts(rc, t);
  addMetrics(rc, now, (w) => countTransition(w, row, t));
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
  // Counted from storage once per instance (and after a prune), then kept per transition.
  rc.gaugeCounts ??= { active: rc.store.commands.activeByState(), deadLetters: rc.store.deadLetters.count() };
  const { active, deadLetters } = rc.gaugeCounts;
  for (const state of ["queued", "delivered", "running", "cancelling"]) w.gauge(M.QUEUE_DEPTH, { state }, active[state] ?? 0);
  w.gauge(M.DEAD_LETTERS, undefined, deadLetters);
  const online = liveSockets(rc).some((ws) => attachment(rc, ws).helloAt !== null);
  w.gauge(M.AGENTS_CONNECTED, undefined, online ? 1 : 0);
  return w.delta.gauges!;
}
