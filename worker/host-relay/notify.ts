import type { CommandState, FleetEventInput } from "../../schemas/index.ts";
import { nowRfc3339 } from "../../schemas/index.ts";
import { fleetEvents, jobCoordinator } from "../stubs.ts";
import type { JobHostUpdate } from "../job-coordinator/job-coordinator.ts";
import type { RelayContext } from "./context.ts";
import { scheduleAlarm } from "./delivery.ts";
import type { CommandRow } from "./storage.ts";

const EVENT = "event";
const JOB = "job";
/** Rows sent per flush round; a round is one RPC per target. */
const FLUSH_BATCH = 200;
/** Coalescing window before a flush: events reach subscribers this much later, in fewer RPCs. */
const FLUSH_DELAY_MS = 10;
/** The alarm retries a row after this if the flush that took it never settled (e.g. the object was evicted). */
const LEASE_MS = 30_000;

function hostTags(rc: RelayContext): string[] {
  const raw = rc.store.getMeta("tags");
  return raw ? (JSON.parse(raw) as string[]) : [];
}

function publish(rc: RelayContext, event: FleetEventInput, now: number): void {
  rc.store.addOutbox(EVENT, "fleet", event, now + LEASE_MS);
  rc.outboxDirty = true;
}

/** Hooks the storage's change callbacks to the outbox: fleet events always, job progress for job commands. */
export function attachNotifier(rc: RelayContext): void {
  rc.store.onTransition = (row, state, now, detail) => commandStateChanged(rc, row, state, now, detail);
  rc.store.onOutput = (row, chunk, seq, now) =>
    publish(
      rc,
      { type: "command.output", at: nowRfc3339(now), host_id: hostId(rc), message_id: row.message_id, ...jobOf(row), tags: hostTags(rc), output: chunk, seq },
      now,
    );
}

function hostId(rc: RelayContext): string | undefined {
  return rc.store.getMeta("host_id") ?? undefined;
}

function jobOf(row: CommandRow): { job_id?: string } {
  return row.job_id ? { job_id: row.job_id } : {};
}

function commandStateChanged(rc: RelayContext, row: CommandRow, state: CommandState, now: number, detail: string | null): void {
  publish(
    rc,
    {
      type: "command.state",
      at: nowRfc3339(now),
      host_id: hostId(rc),
      message_id: row.message_id,
      ...jobOf(row),
      tags: hostTags(rc),
      state,
      attempt: row.attempts || null,
      detail,
    },
    now,
  );
  if (row.job_id) {
    const update: JobHostUpdate = {
      host_id: hostId(rc)!,
      message_id: row.message_id,
      state,
      response_status: row.response_status,
      detail,
      at: now,
    };
    rc.store.addOutbox(JOB, row.job_id, update, now + LEASE_MS);
    rc.outboxDirty = true;
  }
}

export function hostPresence(rc: RelayContext, online: boolean, now: number): void {
  publish(rc, { type: online ? "host.online" : "host.offline", at: nowRfc3339(now), host_id: hostId(rc), tags: hostTags(rc) }, now);
}

/**
 * Sends due notifications, in order, one RPC per target per round. Starts a moment after the
 * change that made them, so the answer to the caller goes first and a burst of changes (a command's
 * queued → delivered → running → succeeded) travels in one RPC. One flush at a time; failures back
 * off and the alarm retries.
 */
export function flushOutbox(rc: RelayContext): void {
  if (!rc.outboxDirty && !rc.store.hasDeliverableOutbox(Date.now())) return;
  rc.outboxDirty = false;
  if (rc.flushing) {
    rc.flushAgain = true;
    return;
  }
  rc.flushing = true;
  rc.ctx.waitUntil(
    (async () => {
      try {
        do {
          rc.flushAgain = false;
          await new Promise((resolve) => setTimeout(resolve, FLUSH_DELAY_MS));
          await flushRounds(rc);
        } while (rc.flushAgain);
      } finally {
        rc.flushing = false;
        // Delivered rows no longer need the alarm; failed ones moved it.
        scheduleAlarm(rc);
      }
    })(),
  );
}

async function flushRounds(rc: RelayContext): Promise<void> {
  for (;;) {
    const now = Date.now();
    const rows = rc.store.leaseOutbox(now, now + LEASE_MS, FLUSH_BATCH);
    if (rows.length === 0) return;
    const groups = new Map<string, typeof rows>();
    for (const r of rows) {
      const key = `${r.kind}\u0000${r.target}`;
      groups.set(key, [...(groups.get(key) ?? []), r]);
    }
    const outcomes = await Promise.all(
      [...groups.values()].map(async (group) => {
        const ids = group.map((r) => r.id);
        try {
          const first = group[0]!;
          const bodies = group.map((r) => JSON.parse(r.body));
          if (first.kind === EVENT) await fleetEvents(rc.env).publish(bodies as FleetEventInput[]);
          else await jobCoordinator(rc.env, first.target).hostUpdates(bodies as JobHostUpdate[]);
          return { ids, ok: true };
        } catch (err) {
          console.error("notification delivery failed; will retry", err);
          return { ids, ok: false };
        }
      }),
    );
    for (const { ids, ok } of outcomes) {
      if (ok) rc.store.deleteOutbox(ids);
      else rc.store.deferOutbox(ids, (attempts) => Date.now() + Math.min(60_000, 500 * 2 ** Math.min(attempts, 10)));
    }
    // In the same turn as the deletes, so nobody sees an emptied outbox with a stale alarm.
    scheduleAlarm(rc);
    if (rows.length < FLUSH_BATCH) return;
  }
}
