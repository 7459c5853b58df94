import type { AuditInput } from "../audit-log/contract.ts";
import { shardFor } from "../audit-log/shard.ts";
import { auditConfig } from "../config.ts";
import { log } from "../log.ts";
import { auditLog } from "../stubs.ts";
import { type JobContext, retryDelay } from "./context.ts";
import { jobState } from "./states.ts";
import type { JobRow } from "./storage.ts";

/** The job's own lifecycle records, numbered for the shard's deduplication (creation and cancel are REST mutations). */
const STOPPED = 1;
const FINISHED = 2;

/** The lifecycle records due and not yet confirmed by the job's audit shard, in order. */
export function dueAudit(job: JobRow, counts: Record<string, number>): { source_seq: number; input: AuditInput }[] {
  const due: { source_seq: number; input: AuditInput }[] = [];
  const actor = { kind: "system" as const, sub: null, role: null, jti: null, ip: null, user_agent: null };
  const target = { job_id: job.job_id };
  if (job.audit_seq < STOPPED && job.stop_kind === "max_errors" && job.stopped_at !== null) {
    due.push({
      source_seq: STOPPED,
      input: {
        action: "job.stopped",
        time: job.stopped_at,
        actor,
        target,
        request: null,
        outcome: { status: null, code: "max_errors", detail: job.stop_reason },
        request_id: null,
      },
    });
  }
  if (job.audit_seq < FINISHED && job.finished_at !== null) {
    due.push({
      source_seq: FINISHED,
      input: {
        action: "job.finished",
        time: job.finished_at,
        actor,
        target,
        request: { counts },
        outcome: { status: null, code: jobState(counts, job.stop_kind) },
        request_id: null,
      },
    });
  }
  return due;
}

/** When the alarm must deliver lifecycle records, or null when none is due. */
export function auditDueAt(job: JobRow, counts: Record<string, number>, now: number): number | null {
  return dueAudit(job, counts).length > 0 ? (job.audit_due_at ?? now) : null;
}

/** Runs in the alarm: delivers due lifecycle records to the job's shard; a failure is retried with backoff. */
export async function recordJobAudit(rc: JobContext): Promise<void> {
  const job = rc.store.job();
  if (!job) return;
  const now = rc.clock.now();
  if (job.audit_due_at !== null && job.audit_due_at > now) return;
  const due = dueAudit(job, rc.store.counts());
  if (due.length === 0) return;
  const shard = shardFor({ job_id: job.job_id }, auditConfig(rc.env).shards);
  try {
    await auditLog(rc.env, shard).ingest(shard, `job:${job.job_id}`, due);
    rc.faults.check("audit.after_ingest");
    rc.store.auditSent(due.at(-1)!.source_seq);
  } catch (err) {
    log.warn("job audit delivery failed; will retry", { job_id: job.job_id, error: String(err) });
    rc.store.auditRetryAt(rc.clock.now() + retryDelay(rc, 1 + Math.floor(rc.clock.random() * 4)));
  }
}
