import type { JobContext } from "./context.ts";
import { settle } from "./lifecycle.ts";
import { isHostState, mayMove } from "./states.ts";

/** What a HostRelay reports about a job's command on one host. */
export interface JobHostUpdate {
  host_id: string;
  message_id: string;
  state: string;
  response_status: string | null;
  detail: string | null;
  /** The HostRelay's time of the transition, epoch ms. */
  at: number;
}

/**
 * Applies a batch of HostRelay reports. Cheap and synchronous: stored, counted, and the alarm
 * pointed at whatever they made due (refilling the window, cancelling, publishing progress).
 * Repeated or out-of-date reports change nothing (see `mayMove`).
 */
export function applyHostUpdates(rc: JobContext, updates: JobHostUpdate[], now: number): void {
  const { store } = rc;
  if (!store.job()) return;
  let changed = false;
  for (const u of updates) {
    if (!isHostState(u.state)) continue;
    const row = store.host(u.host_id);
    if (!row) continue;
    // Dispatch uses one idempotency key per job, so a host has one command per job.
    if (row.message_id !== null && row.message_id !== u.message_id) continue;
    if (!mayMove(row.state, row.state_at, u.state, u.at)) continue;
    store.setState(row, u.state, { message_id: u.message_id, response_status: u.response_status, detail: u.detail, at: u.at }, now);
    changed = true;
  }
  settle(rc, now, changed);
}

/**
 * Hosts whose agent connected: waiting ones are due for dispatch at once; pending ones are
 * remembered, in case a round in flight read them as offline and is about to park them.
 */
export function wakeHosts(rc: JobContext, hostIds: string[], now: number): void {
  const { store } = rc;
  if (!store.job()) return;
  const ids = [...new Set(hostIds)];
  store.wake(ids, now);
  for (const id of ids) if (store.host(id)?.state === "pending") rc.woken.add(id);
  settle(rc, now, false);
}
