import type { CommandAccepted, CommandView } from "../../schemas/index.ts";
import { ErrorCode, type RpcResult } from "../errors.ts";
import type { HostRegistration } from "../host-relay/contract.ts";
import { addJobWaits, deleteJobWaits, hostRegistrations, jobWaitsReady } from "../registry.ts";
import { hostRelay } from "../stubs.ts";
import { recordJobAudit } from "./audit.ts";
import {
  inPool,
  type JobContext,
  LEASE_MS,
  PENDING_BATCH,
  RPC_BUDGET,
  RPC_PARALLELISM,
  retryDelay,
  settled,
  WAIT_SWEEP_MS,
} from "./context.ts";
import { scheduleAlarm, settle } from "./lifecycle.ts";
import { publishProgress } from "./progress.ts";
import { ensureRegistered } from "./registration.ts";
import { activeCount, FINAL, mayMove } from "./states.ts";
import type { HostRow, JobRow } from "./storage.ts";

/** The idempotency key of a job's command on every host: a retried dispatch never queues twice. */
export const jobIdempotencyKey = (jobId: string): string => `job:${jobId}`;

const EXPIRED_PENDING = "delivery deadline passed before the host's turn in the rollout";
const EXPIRED_WAITING = "delivery deadline passed while the host was offline";
const WAITING = "host offline at its turn: the job holds the command until the agent connects";

/**
 * One alarm invocation: expire hosts that never got a slot (or whose agent never came) before the
 * deadline, sweep the registry for waiting hosts that came online when that is due, dispatch up to
 * the RPC budget (retries and woken hosts first, then pending hosts that fit in the window, the
 * offline ones parked as waiting), send due cancels with what is left, delete a finished job's
 * waits, publish at most one progress event, and re-arm. Rounds never overlap.
 */
export function runRound(rc: JobContext): Promise<void> {
  const round = rc.rounds.then(async () => {
    try {
      await oneRound(rc);
      rc.backoffUntil = null;
      scheduleAlarm(rc, rc.clock.now());
    } catch (err) {
      // Unexpected (RPC failures are handled per host): back off rather than spin on "now".
      console.error("job round failed; retrying", err);
      const at = rc.clock.now() + retryDelay(rc, 1);
      rc.backoffUntil = at;
      void rc.ctx.storage.setAlarm(at);
      rc.alarmAt = at;
    }
  });
  rc.rounds = round;
  return round;
}

async function oneRound(rc: JobContext): Promise<void> {
  const { store } = rc;
  const job = store.job();
  if (!job) return;
  // A job is listed before anything is dispatched: until then the round only retries that write.
  if (!(await ensureRegistered(rc))) return;
  const now = rc.clock.now();
  const counts = store.counts();
  if ((counts.pending ?? 0) + (counts.waiting ?? 0) > 0 && now >= job.expires_at) {
    store.expirePending(now, EXPIRED_PENDING, EXPIRED_WAITING);
    settle(rc, now);
  }
  await sweepWaits(rc);
  const used = await dispatchBatch(rc, RPC_BUDGET);
  await cancelBatch(rc, RPC_BUDGET - used);
  await closeWaits(rc);
  await publishProgress(rc);
  await recordJobAudit(rc);
}

/**
 * Dispatches retries due, waiting hosts that came online, and pending hosts in the window: of those,
 * hosts the registry says are offline wait in the job instead (no RPC, and no relay object is
 * created for them yet); the rest get an enqueue RPC, up to the budget. Returns the RPCs it made.
 */
async function dispatchBatch(rc: JobContext, budget: number): Promise<number> {
  const { store } = rc;
  const now = rc.clock.now();
  const job = store.job()!;
  const due = store.dueDispatches(now, budget);
  const pending =
    job.stop_kind === null ? store.nextPending(Math.min(job.max_concurrency - activeCount(store.counts()), PENDING_BATCH)) : [];
  if (due.length + pending.length === 0) return 0;
  const registrations = await batchRegistrations(rc, [...due, ...pending]);
  const offline = pending.filter((r) => {
    const reg = registrations.get(r.host_id);
    return reg !== undefined && reg.revoked_at === null && !reg.online && !rc.woken.has(r.host_id);
  });
  const parked = await park(rc, offline);
  for (const r of pending) rc.woken.delete(r.host_id);
  const rows = [...due, ...pending.filter((r) => !parked.has(r.seq))].slice(0, budget);
  const unwaited = due.filter((r) => r.state === "waiting").map((r) => r.host_id);
  await inPool(rows, RPC_PARALLELISM, (row) => dispatchOne(rc, row.seq, registrations.get(row.host_id)));
  settle(rc, rc.clock.now(), rows.length > 0 || parked.size > 0);
  // Best effort: a leftover row only makes a later hello wake the job for nothing.
  await deleteJobWaits(rc.env.DB, job.job_id, unwaited).catch((err) => console.error("job dispatch: deleting waits failed", err));
  return rows.length;
}

/**
 * Lists the hosts in the registry's job_waits, then parks those still offline (in the same D1
 * transaction's read) and not woken meanwhile; returns the seqs parked. If the registry write
 * fails, none are parked: they are dispatched as if online (their relays queue the command).
 */
async function park(rc: JobContext, rows: HostRow[]): Promise<Set<number>> {
  if (rows.length === 0) return new Set();
  const job = rc.store.job()!;
  let ready: Set<string>;
  try {
    ready = await addJobWaits(
      rc.env.DB,
      job.job_id,
      rows.map((r) => r.host_id),
    );
  } catch (err) {
    console.error(`job ${job.job_id}: recording waits failed; dispatching those hosts instead`, err);
    return new Set();
  }
  const now = rc.clock.now();
  const seqs = rows.filter((r) => !ready.has(r.host_id) && !rc.woken.has(r.host_id)).map((r) => r.seq);
  rc.store.park(seqs, now, WAITING, now + WAIT_SWEEP_MS);
  return new Set(seqs);
}

/** Once a minute while hosts wait: the ones the registry says came online (or were revoked) are due now. */
async function sweepWaits(rc: JobContext): Promise<void> {
  const { store } = rc;
  const job = store.job()!;
  const now = rc.clock.now();
  if ((store.counts().waiting ?? 0) === 0 || job.wait_sweep_at === null || now < job.wait_sweep_at) return;
  try {
    store.wake(await jobWaitsReady(rc.env.DB, job.job_id), rc.clock.now());
  } catch (err) {
    console.error(`job ${job.job_id}: reading waits failed; will retry`, err);
  }
  store.setWaitSweep(rc.clock.now() + WAIT_SWEEP_MS);
}

/** A finished job deletes its rows from job_waits (retried each round until it succeeds). */
async function closeWaits(rc: JobContext): Promise<void> {
  const job = rc.store.job()!;
  if (job.waits_open !== 1 || job.finished_at === null) return;
  try {
    await deleteJobWaits(rc.env.DB, job.job_id);
    rc.store.waitsClosed();
  } catch (err) {
    console.error(`job ${job.job_id}: deleting waits failed; will retry`, err);
    rc.store.setWaitSweep(rc.clock.now() + WAIT_SWEEP_MS);
  }
}

/**
 * The batch's registry rows in one D1 query, handed to each HostRelay so that a relay's first use
 * needs no registry read of its own. A host missing here (or every host, if the read fails) is
 * looked up by its relay as before.
 */
async function batchRegistrations(rc: JobContext, rows: HostRow[]): Promise<Map<string, HostRegistration & { online: boolean }>> {
  try {
    return await hostRegistrations(
      rc.env.DB,
      rows.map((r) => r.host_id),
    );
  } catch (err) {
    console.error("job dispatch: batch registry read failed; each relay reads its own", err);
    return new Map();
  }
}

async function dispatchOne(rc: JobContext, seq: number, registration: HostRegistration | undefined): Promise<void> {
  const { store } = rc;
  const now = rc.clock.now();
  const job = store.job()!;
  const row = store.hostBySeq(seq);
  if (!row) return;
  // Re-read: while earlier RPCs of this round were out, the job may have stopped (cancelling its pending hosts) or updates may have come.
  const retry = (row.state === "dispatching" || row.state === "waiting") && row.due_at !== null && row.due_at <= now;
  if (!(row.state === "pending" || retry)) return;
  if ((row.state === "pending" || row.state === "waiting") && now >= job.expires_at) {
    store.setState(row, "expired", { at: now, detail: row.state === "pending" ? EXPIRED_PENDING : EXPIRED_WAITING }, now);
    return;
  }
  store.markDispatching(row, now, now + LEASE_MS);
  const outcome = await settled<RpcResult<CommandAccepted>>(
    hostRelay(rc.env, row.host_id).enqueue({
      host_id: row.host_id,
      command_type: job.command_type,
      parameters: JSON.parse(job.parameters),
      timeout: job.timeout_s ?? undefined,
      expires_at: new Date(job.expires_at).toISOString(),
      max_attempts: job.max_attempts ?? undefined,
      idempotency_key: jobIdempotencyKey(job.job_id),
      request_hash: jobIdempotencyKey(job.job_id),
      job_id: job.job_id,
      registration,
    }),
  );
  if (!outcome.ok) {
    // The answer is unknown (the command may be queued): ask again later; the idempotency key makes that safe.
    console.error(`job ${job.job_id}: dispatch to ${row.host_id} failed; will retry`, outcome.error);
    store.setDispatchDue(seq, rc.clock.now() + retryDelay(rc, row.attempts));
    return;
  }
  recordDispatch(rc, seq, outcome.value);
}

function recordDispatch(rc: JobContext, seq: number, result: RpcResult<CommandAccepted>): void {
  const { store } = rc;
  const now = rc.clock.now();
  const row = store.hostBySeq(seq)!;
  if (result.ok) {
    if (row.state === "dispatching") {
      store.setState(row, result.value.status, { message_id: result.value.message_id, at: now }, now);
    } else {
      // The host's updates got here first and already said more than this answer does.
      store.setMessageId(row, result.value.message_id, now);
    }
  } else if (row.state === "dispatching") {
    store.setState(row, failedDispatchState(result.code), { at: now, detail: `${result.code}: ${result.detail}` }, now);
  }
  // A dispatch answer is rarely final (an idempotent retry can be); max_errors is checked as soon as one is.
  if (result.ok && FINAL.has(result.value.status)) settle(rc, now);
}

/**
 * A refused dispatch: the host was revoked or unregistered after the job was accepted (`skipped`,
 * not an execution error — nothing ran), or the deadline had passed (`expired`).
 */
function failedDispatchState(code: string): "skipped" | "expired" {
  return code === ErrorCode.DEADLINE_IN_PAST ? "expired" : "skipped";
}

/** Asks HostRelays to cancel queued commands of a stopped job; returns how many RPCs it made. */
async function cancelBatch(rc: JobContext, budget: number): Promise<number> {
  const { store } = rc;
  const job = store.job()!;
  if (job.stop_kind === null) return 0;
  const rows = store.dueCancels(rc.clock.now(), budget);
  if (rows.length === 0) return 0;
  await inPool(rows, RPC_PARALLELISM, (row) => cancelOne(rc, job, row));
  settle(rc, rc.clock.now());
  return rows.length;
}

async function cancelOne(rc: JobContext, job: JobRow, row: HostRow): Promise<void> {
  const { store } = rc;
  const started = rc.clock.now();
  store.setCancelAt(row.seq, started + LEASE_MS);
  const outcome = await settled<RpcResult<{ command: CommandView }>>(
    hostRelay(rc.env, row.host_id).cancel(row.host_id, row.message_id!, { unsentOnly: job.abort_running !== 1 }),
  );
  if (!outcome.ok) {
    console.error(`job ${job.job_id}: cancel on ${row.host_id} failed; will retry`, outcome.error);
    store.setCancelAt(row.seq, rc.clock.now() + retryDelay(rc, 1));
    return;
  }
  const result = outcome.value;
  const now = rc.clock.now();
  const current = store.hostBySeq(row.seq)!;
  if (result.ok) {
    const state = result.value.command.state;
    if (mayMove(current.state, current.state_at, state, now)) {
      store.setState(current, state, { at: now, detail: job.stop_reason }, now);
    } else {
      store.setCancelAt(row.seq, null);
    }
  } else {
    // COMMAND_NOT_CANCELLABLE: it was delivered (or is on its way) and will finish; its updates will say how.
    store.setCancelAt(row.seq, null);
  }
}
