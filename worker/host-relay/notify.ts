import type { FleetEventInput } from "../../schemas/index.ts";
import { MAX_EVENT_OUTPUT_CHARS, nowRfc3339 } from "../../schemas/index.ts";
import type { AuditActor, AuditInput } from "../audit-log/contract.ts";
import { shardFor } from "../audit-log/shard.ts";
import { backoffMs, OUTBOX_BACKOFF } from "../backoff.ts";
import { auditConfig } from "../config.ts";
import type { JobHostUpdate } from "../job-coordinator/contract.ts";
import { DeltaWriter, type MetricsDelta, type SourcedDelta } from "../metrics/delta.ts";
import { auditLog, fleetEvents, jobCoordinator } from "../stubs.ts";
import type { RelayContext } from "./context.ts";
import { gaugesSent, gaugesToSend, METRICS_KEY, METRICS_KIND, metricsRowTaken, recordTransitionMetrics } from "./metrics-outbox.ts";
import type { CommandRow, OutboxRow, Transition } from "./storage.ts";

/**
 * What a HostRelay tells other objects, through its outbox: fleet events to FleetEvents, job
 * progress to the command's JobCoordinator, and wake-ups to jobs waiting for this host's agent. Rows are written in the same synchronous step as the
 * change that caused them and delivered after it, first-in-first-out per target, retried until
 * delivered. Each event carries its source (this host) and its outbox row id, so a publish that is
 * retried after FleetEvents stored it is dropped there, not stored twice. Metric changes ride in
 * the same flush (metrics-outbox.ts).
 */

const EVENT = "event";
const JOB = "job";
/** "This host's agent is online" to a job that holds a command for it (job-coordinator/dispatch.ts). */
const WAKE = "job_wake";
const AUDIT = "audit";
const FLEET = "fleet";
/** Rows sent per flush round; a round is one RPC per target. */
const FLUSH_BATCH = 200;
/**
 * Coalescing window before a flush: events reach subscribers this much later, in fewer RPCs (a quarter
 * of the publishes per command at 100 ms against 10 ms), and the flush falls after a command's round
 * trip instead of inside it, on the one thread the object shares with its agent's frames (bench/README.md).
 */
const FLUSH_DELAY_MS = 100;
/** The alarm retries a row after this if the flush that took it never settled (e.g. the object was evicted). */
const LEASE_MS = 30_000;
/** Streamed output of one command becomes at most one event per this window, carrying the joined chunks. */
export const OUTPUT_COALESCE_MS = 100;

/** What one stored change caused: the events and job update now in the outbox. */
export interface Caused {
  transition: Transition;
  events: FleetEventInput[];
  job: JobHostUpdate | null;
}

function hostTags(rc: RelayContext): string[] {
  const raw = rc.store.getMeta("tags");
  return raw ? (JSON.parse(raw) as string[]) : [];
}

function hostId(rc: RelayContext): string | undefined {
  return rc.store.getMeta("host_id") ?? undefined;
}

function addEvent(rc: RelayContext, event: FleetEventInput, now: number): void {
  rc.store.outbox.add(EVENT, FLEET, event, now + LEASE_MS);
}

/** Writes the notifications of one transition (and its metrics) to the outbox and returns them. */
export function recordTransition(rc: RelayContext, row: CommandRow, t: Transition, now: number): Caused {
  const event: FleetEventInput = {
    type: "command.state",
    at: nowRfc3339(t.at),
    host_id: hostId(rc),
    message_id: t.message_id,
    ...(t.job_id ? { job_id: t.job_id } : {}),
    tags: hostTags(rc),
    state: t.to,
    attempt: t.attempt,
    detail: t.detail,
  };
  addEvent(rc, event, now);
  let job: JobHostUpdate | null = null;
  // Not the insert: the coordinator queued the command itself and records it from the enqueue answer
  // (or from the idempotent retry a lost answer leads to), so reporting it back would be one more RPC per host for nothing.
  if (t.job_id && t.from !== null) {
    job = { host_id: hostId(rc)!, message_id: t.message_id, state: t.to, response_status: t.response_status, detail: t.detail, at: t.at };
    rc.store.outbox.add(JOB, t.job_id, job, now + LEASE_MS);
  }
  recordTransitionMetrics(rc, row, t, now);
  return { transition: t, events: [event], job };
}

/**
 * A streamed output chunk. Chunks of one command within OUTPUT_COALESCE_MS join one event, so a
 * chatty command (or a flooding agent) costs subscribers and the shared history one event per window.
 */
export function recordOutput(rc: RelayContext, row: CommandRow, chunk: string, seq: number | null, now: number): void {
  const key = `output:${row.message_id}`;
  const open = rc.store.outbox.openCoalesced(key, now);
  if (open) {
    const body = JSON.parse(open.body) as FleetEventInput;
    if ((body.output?.length ?? 0) + chunk.length <= MAX_EVENT_OUTPUT_CHARS) {
      body.output = (body.output ?? "") + chunk;
      rc.store.outbox.replaceBody(open.id, body);
      return;
    }
  }
  const event: FleetEventInput = {
    type: "command.output",
    at: nowRfc3339(now),
    host_id: hostId(rc),
    message_id: row.message_id,
    ...(row.job_id ? { job_id: row.job_id } : {}),
    tags: hostTags(rc),
    output: chunk,
    seq,
  };
  rc.store.outbox.add(EVENT, FLEET, event, now + LEASE_MS, { key, notBefore: now + OUTPUT_COALESCE_MS });
}

/**
 * An audit record of something only this object sees (agent connect and disconnect, a command's
 * final state), written with the change and delivered in batches to the host's audit shard.
 */
export function recordAudit(rc: RelayContext, input: Omit<AuditInput, "target" | "request_id"> & Partial<AuditInput>, now: number): void {
  const host = hostId(rc);
  const full: AuditInput = { request_id: null, ...input, target: { ...(host ? { host_id: host } : {}), ...input.target } };
  rc.store.outbox.add(AUDIT, AUDIT, full, now + LEASE_MS);
}

/** A command reached a final state: its outcome goes to the audit trail (the moves before are in its history). */
export function recordFinalOutcome(rc: RelayContext, t: Transition, now: number): void {
  recordAudit(
    rc,
    {
      action: "command.final",
      time: t.at,
      actor: SYSTEM_ACTOR,
      target: { message_id: t.message_id, ...(t.job_id ? { job_id: t.job_id } : {}) },
      request: { from: t.from, attempt: t.attempt, response_status: t.response_status },
      outcome: { status: null, code: t.to, detail: t.detail === null ? null : t.detail.slice(0, 512) },
    },
    now,
  );
}

export const SYSTEM_ACTOR: AuditActor = { kind: "system", sub: null, role: null, jti: null, ip: null, user_agent: null };

/** The agent is online: each job that holds a command for this host is told to dispatch it. */
export function recordWakes(rc: RelayContext, jobIds: string[], now: number): void {
  const host = hostId(rc);
  if (!host || jobIds.length === 0) return;
  for (const jobId of jobIds) rc.store.outbox.add(WAKE, jobId, { host_id: host }, now + LEASE_MS);
  flushOutbox(rc);
}

export function recordPresence(rc: RelayContext, online: boolean, now: number): void {
  addEvent(rc, { type: online ? "host.online" : "host.offline", at: nowRfc3339(now), host_id: hostId(rc), tags: hostTags(rc) }, now);
}

/**
 * Sends due notifications. Starts a moment after the change that made them, so the answer to the
 * caller goes first and a burst of changes (queued → delivered → running → succeeded) travels in
 * one RPC. One flush at a time; failures back off, holding back their target's later rows, and the
 * alarm retries. Called by the entry wrapper after every entry point.
 */
export function flushOutbox(rc: RelayContext): void {
  if (!rc.store.outbox.hasDeliverable(rc.clock.now())) return;
  if (rc.flushing) {
    rc.flushAgain = true;
    return;
  }
  rc.flushing = true;
  rc.ctx.waitUntil(
    (async () => {
      // True when the last round settled the alarm in this same synchronous step: nothing changed since.
      let settled = false;
      try {
        do {
          rc.flushAgain = false;
          await new Promise((resolve) => setTimeout(resolve, FLUSH_DELAY_MS));
          settled = await flushRounds(rc);
        } while (rc.flushAgain);
      } finally {
        rc.flushing = false;
        if (!settled) rc.settleAlarm();
      }
    })(),
  );
}

/** Delivers due rows, round after round; true when it returns right after settling the alarm. */
async function flushRounds(rc: RelayContext): Promise<boolean> {
  for (;;) {
    const now = rc.clock.now();
    const rows = rc.store.outbox.lease(now, now + LEASE_MS, FLUSH_BATCH);
    if (rows.length === 0) return false;
    const groups = new Map<string, OutboxRow[]>();
    for (const r of rows) {
      const key = `${r.kind}\u0000${r.target}`;
      const group = groups.get(key);
      if (group) group.push(r);
      else groups.set(key, [r]);
    }
    // Events are going to FleetEvents anyway: the open metrics row goes with them, in the same RPC.
    const eventKey = `${EVENT}\u0000${FLEET}`;
    const metricsKey = `${METRICS_KIND}\u0000${FLEET}`;
    if (groups.has(eventKey)) {
      const open = rc.store.outbox.takeOpenCoalesced(METRICS_KEY, METRICS_KIND, now, now + LEASE_MS);
      if (open.length) groups.set(metricsKey, [...(groups.get(metricsKey) ?? []), ...open]);
    }
    // Before any await: nothing may merge into a row that is on its way.
    metricsRowTaken(
      rc,
      (groups.get(metricsKey) ?? []).map((r) => r.id),
    );
    const calls: Promise<{ ids: number[]; ok: boolean }>[] = [];
    const events = groups.get(eventKey) ?? [];
    const metrics = groups.get(metricsKey) ?? [];
    if (events.length || metrics.length) calls.push(deliverToFleet(rc, events, metrics));
    for (const [key, group] of groups) {
      if (key === eventKey || key === metricsKey) continue;
      const kind = group[0]!.kind;
      calls.push(kind === AUDIT ? deliverAudit(rc, group) : kind === WAKE ? deliverWakes(rc, group) : deliverJobUpdates(rc, group));
    }
    const outcomes = await Promise.all(calls);
    for (const { ids, ok } of outcomes) {
      if (ok) rc.store.outbox.delete(ids);
      else rc.store.outbox.defer(ids, (attempts) => rc.clock.now() + 250 + backoffMs(attempts, OUTBOX_BACKOFF, () => rc.clock.random()));
    }
    // In the same turn as the deletes, so nobody sees an emptied outbox with a stale alarm.
    rc.settleAlarm();
    if (rows.length < FLUSH_BATCH) return true;
  }
}

function failed(target: string, err: unknown): void {
  console.error(JSON.stringify({ level: "warn", msg: "notification delivery failed; will retry", target, error: String(err) }));
}

/**
 * One `publish` to FleetEvents: the event rows and the metrics rows, each numbered by its outbox id
 * (FleetEvents keeps one watermark per source for each). The host's absolute gauges are read now and
 * travel with the newest metrics row.
 */
async function deliverToFleet(rc: RelayContext, events: OutboxRow[], metricRows: OutboxRow[]): Promise<{ ids: number[]; ok: boolean }> {
  const ids = [...events, ...metricRows].map((r) => r.id);
  try {
    rc.faults.check("relay.publish");
    const source = `host:${hostId(rc) ?? rc.ctx.id.toString()}`;
    const gauges = metricRows.length ? gaugesToSend(rc) : {};
    const metrics: SourcedDelta[] = metricRows.map((r, i) => {
      const delta = JSON.parse(r.body) as MetricsDelta;
      if (i === metricRows.length - 1 && Object.keys(gauges).length) new DeltaWriter(delta).merge({ gauges });
      return { source, seq: r.id, delta };
    });
    const batch = events.map((r) => ({ ...(JSON.parse(r.body) as FleetEventInput), source, source_seq: r.id }));
    await fleetEvents(rc.env).publish(metrics.length ? { events: batch, metrics } : batch);
    gaugesSent(rc, gauges);
    // As if the answer was lost after FleetEvents stored the batch: the retry must not duplicate it.
    rc.faults.check("relay.after_publish");
    return { ids, ok: true };
  } catch (err) {
    failed(FLEET, err);
    return { ids, ok: false };
  }
}

/** Audit rows go to the host's audit shard, which drops a re-delivered row by source and outbox id. */
async function deliverAudit(rc: RelayContext, group: OutboxRow[]): Promise<{ ids: number[]; ok: boolean }> {
  const ids = group.map((r) => r.id);
  try {
    const host = hostId(rc) ?? rc.ctx.id.toString();
    const shard = shardFor({ host_id: host }, auditConfig(rc.env).shards);
    await auditLog(rc.env, shard).ingest(
      shard,
      `host:${host}`,
      group.map((r) => ({ source_seq: r.id, input: JSON.parse(r.body) as AuditInput })),
    );
    // As if the answer was lost after the shard chained the batch: the retry must not chain it twice.
    rc.faults.check("audit.after_ingest");
    return { ids, ok: true };
  } catch (err) {
    failed(`audit:${group[0]!.target}`, err);
    return { ids, ok: false };
  }
}

async function deliverJobUpdates(rc: RelayContext, group: OutboxRow[]): Promise<{ ids: number[]; ok: boolean }> {
  const ids = group.map((r) => r.id);
  try {
    await jobCoordinator(rc.env, group[0]!.target).hostUpdates(group.map((r) => JSON.parse(r.body) as JobHostUpdate));
    return { ids, ok: true };
  } catch (err) {
    failed(group[0]!.target, err);
    return { ids, ok: false };
  }
}

async function deliverWakes(rc: RelayContext, group: OutboxRow[]): Promise<{ ids: number[]; ok: boolean }> {
  const ids = group.map((r) => r.id);
  try {
    await jobCoordinator(rc.env, group[0]!.target).wake(group.map((r) => (JSON.parse(r.body) as { host_id: string }).host_id));
    return { ids, ok: true };
  } catch (err) {
    failed(group[0]!.target, err);
    return { ids, ok: false };
  }
}
