import { auditDueAt } from "./audit.ts";
import type { JobContext } from "./context.ts";
import { PROGRESS_COALESCE_MS } from "./context.ts";
import { activeCount, errorCount, finalCount } from "./states.ts";

/**
 * What every change to host states ends with: stop the rollout if max_errors is exceeded, note
 * when the job finished, schedule a (coalesced) job.progress event, and point the alarm at the next due work.
 */
export function settle(rc: JobContext, now: number, changed = true): void {
  const { store } = rc;
  let job = store.job();
  if (!job) return;
  if (changed) {
    const errors = errorCount(store.counts());
    if (job.stop_kind === null && job.max_errors !== null && errors > job.max_errors) {
      store.stop("max_errors", `max_errors exceeded: ${errors} hosts failed, ${job.max_errors} allowed`, now);
      job = store.job()!;
    }
    const allFinal = finalCount(store.counts()) === job.host_count;
    if (allFinal && job.finished_at === null) store.setFinished(now);
    else if (!allFinal && job.finished_at !== null) store.setFinished(null);
    store.progressDue(allFinal ? now : now + PROGRESS_COALESCE_MS);
  }
  scheduleAlarm(rc, now);
}

/**
 * Points the single alarm at the earliest due work: now while pending hosts fit in the window,
 * the delivery deadline while hosts are pending or waiting, the next wait sweep, retries of
 * dispatches and cancels (and waiting hosts that came online), the next progress event; before the job is listed in the registry, only the retry of that write. An alarm
 * already set earlier is left alone — the alarm handler recomputes.
 */
export function scheduleAlarm(rc: JobContext, now: number): void {
  const { store } = rc;
  const job = store.job();
  if (!job) return;
  const counts = store.counts();
  const candidates: number[] = [];
  if (job.registered_at === null) {
    // Nothing else happens before the job is listed: only the registry write is due.
    candidates.push(job.registry_due_at ?? now);
  } else if ((counts.pending ?? 0) > 0) {
    if (job.stop_kind === null && activeCount(counts) < job.max_concurrency) candidates.push(now);
    candidates.push(job.expires_at);
  }
  if (job.registered_at !== null && (counts.waiting ?? 0) > 0) {
    candidates.push(job.expires_at);
    if (job.wait_sweep_at !== null) candidates.push(job.wait_sweep_at);
  }
  // A finished job still listed in job_waits deletes its rows (retried at the sweep's pace).
  if (job.waits_open === 1 && job.finished_at !== null) candidates.push(job.wait_sweep_at ?? now);
  const due = store.nextDue();
  if (due.dispatch !== null) candidates.push(due.dispatch);
  if (due.cancel !== null) candidates.push(due.cancel);
  if (job.progress_due_at !== null) candidates.push(job.progress_due_at);
  const audit = job.registered_at === null ? null : auditDueAt(job, counts, now);
  if (audit !== null) candidates.push(audit);
  let next = candidates.length ? Math.min(...candidates) : null;
  // After a failed round, nothing is due before its backoff has passed.
  if (next !== null && rc.backoffUntil !== null && next < rc.backoffUntil) next = rc.backoffUntil;
  // Overdue work is due now (an alarm cannot be set in the past).
  if (next !== null && next < now) next = now;
  if (next === null) {
    if (rc.alarmAt !== null) void rc.ctx.storage.deleteAlarm();
    rc.alarmAt = null;
    return;
  }
  if (typeof rc.alarmAt === "number" && rc.alarmAt <= next) return;
  void rc.ctx.storage.setAlarm(next);
  rc.alarmAt = next;
}
