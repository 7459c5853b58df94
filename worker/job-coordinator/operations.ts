import type { JobAccepted, JobHostState, JobHostView, JobView } from "../../schemas/index.ts";
import { ErrorCode, type RpcResult, rpcError } from "../errors.ts";
import type { JobContext } from "./context.ts";
import { scheduleAlarm, settle } from "./lifecycle.ts";
import { jobState } from "./states.ts";
import type { NewJob } from "./storage.ts";
import { jobView } from "./view.ts";

export type CreateJobInput = Omit<NewJob, "created_at"> & { created_at: number };

export interface Page<T> {
  items: T[];
  next_cursor: string | null;
}

function notFound(jobId: string | undefined): RpcResult<never> {
  return rpcError(ErrorCode.JOB_NOT_FOUND, `no job ${jobId ?? ""}`.trim());
}

/**
 * Records the job and its hosts (all pending) and arms the alarm; dispatching happens there, in
 * batches. Creating the same job again answers as the first time did.
 */
export function create(rc: JobContext, input: CreateJobInput, now: number): RpcResult<JobAccepted> {
  const existing = rc.store.job();
  if (existing) {
    if (existing.job_id !== input.job_id) return rpcError(ErrorCode.INTERNAL, "job coordinator addressed with a different job id");
  } else {
    rc.store.insertJob(input, now);
    rc.store.progressDue(now);
    rc.alarmAt = undefined;
    scheduleAlarm(rc, now);
  }
  const job = rc.store.job()!;
  return { ok: true, value: { job_id: job.job_id, state: jobState(rc.store.counts(), job.stop_kind), hosts: job.host_count } };
}

export function view(rc: JobContext, jobId: string): RpcResult<JobView> {
  const job = rc.store.job();
  if (!job || job.job_id !== jobId) return notFound(jobId);
  return { ok: true, value: jobView(job, rc.store.counts()) };
}

export function decodeHostCursor(cursor: string | undefined): number | null | "invalid" {
  if (cursor === undefined) return null;
  const m = /^s(\d{1,9})$/.exec(cursor);
  return m ? Number(m[1]) : "invalid";
}

export function listHosts(
  rc: JobContext,
  jobId: string,
  opts: { states?: JobHostState[] | undefined; limit: number; cursor?: string | undefined },
): RpcResult<Page<JobHostView>> {
  const after = decodeHostCursor(opts.cursor);
  if (after === "invalid") return rpcError(ErrorCode.VALIDATION, "cursor: not a cursor this API returned");
  const job = rc.store.job();
  if (!job || job.job_id !== jobId) return notFound(jobId);
  const page = rc.store.listHosts(opts.states, opts.limit, after);
  return { ok: true, value: { items: page.items, next_cursor: page.lastSeq === null ? null : `s${page.lastSeq}` } };
}

/**
 * Stops the rollout: pending hosts are cancelled here and now; commands already queued on a
 * HostRelay are cancelled from the alarm (best effort — one already delivered finishes). Cancelling
 * a cancelled or stopping job changes nothing; a job that already ended otherwise cannot be cancelled.
 */
export function cancel(rc: JobContext, jobId: string, by: string, now: number): RpcResult<JobView> {
  const job = rc.store.job();
  if (!job || job.job_id !== jobId) return notFound(jobId);
  const state = jobState(rc.store.counts(), job.stop_kind);
  if (state === "completed" || state === "stopped") {
    return rpcError(ErrorCode.JOB_FINISHED, `job ${jobId} is ${state}; there is nothing left to cancel`);
  }
  if (job.stop_kind === null) {
    rc.store.stop("cancelled", `cancelled by ${by}`, now);
    settle(rc, now);
  }
  return { ok: true, value: jobView(rc.store.job()!, rc.store.counts()) };
}
