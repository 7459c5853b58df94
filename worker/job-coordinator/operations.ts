import type { JobAccepted, JobHostState, JobHostView, JobView } from "../../schemas/index.ts";
import { Cursor, type Page } from "../cursor.ts";
import { ErrorCode, type RpcResult, rpcError } from "../errors.ts";
import type { JobContext } from "./context.ts";
import { settle } from "./lifecycle.ts";
import { ensureRegistered } from "./registration.ts";
import { jobState } from "./states.ts";
import type { NewJob } from "./storage.ts";
import { jobView } from "./view.ts";

export type CreateJobInput = Omit<NewJob, "created_at"> & { created_at: number };

function notFound(jobId: string | undefined): RpcResult<never> {
  return rpcError(ErrorCode.JOB_NOT_FOUND, `no job ${jobId ?? ""}`.trim());
}

/**
 * Records the job and its hosts (all pending), then lists it in the registry; the alarm dispatches,
 * in batches, once it is listed. Idempotent on job_id: creating the same job again (a retry with
 * the same Idempotency-Key, whose job_id is derived from it) answers as the first time did.
 */
export async function create(rc: JobContext, input: CreateJobInput, now: number): Promise<RpcResult<JobAccepted>> {
  if (!rc.store.job()) {
    rc.store.insertJob(input, now);
    rc.store.progressDue(now);
    rc.alarmAt = undefined;
  }
  return answer(rc, input.job_id, input.request_hash ?? null);
}

/** The answer a keyed retry gets if the job was already stored (null if not, so the caller creates it). */
export async function existing(rc: JobContext, jobId: string, requestHash: string): Promise<RpcResult<JobAccepted | null>> {
  if (!rc.store.job()) return { ok: true, value: null };
  return answer(rc, jobId, requestHash);
}

/** What creating the stored job answers: refused for another request's key, an error until it is listed. */
async function answer(rc: JobContext, jobId: string, requestHash: string | null): Promise<RpcResult<JobAccepted>> {
  const job = rc.store.job()!;
  if (job.job_id !== jobId) return rpcError(ErrorCode.INTERNAL, "job coordinator addressed with a different job id");
  if (job.request_hash !== requestHash) {
    return rpcError(ErrorCode.IDEMPOTENCY_CONFLICT, "this Idempotency-Key was used for a different job request");
  }
  if (!(await ensureRegistered(rc))) {
    return rpcError(
      ErrorCode.INTERNAL,
      `job ${jobId} is stored but not yet listed in the registry; it is listed (and then runs) once the write succeeds — retry with the same Idempotency-Key`,
    );
  }
  const current = rc.store.job()!;
  return { ok: true, value: { job_id: current.job_id, state: jobState(rc.store.counts(), current.stop_kind), hosts: current.host_count } };
}

export function view(rc: JobContext, jobId: string): RpcResult<JobView> {
  const job = rc.store.job();
  if (!job || job.job_id !== jobId) return notFound(jobId);
  return { ok: true, value: jobView(job, rc.store.counts()) };
}

export function listHosts(
  rc: JobContext,
  jobId: string,
  opts: { states?: JobHostState[] | undefined; limit: number; cursor?: string | undefined },
): RpcResult<Page<JobHostView>> {
  const after = Cursor.decodeNumber("s", opts.cursor);
  if (after === "invalid") return Cursor.rpcInvalid();
  const job = rc.store.job();
  if (!job || job.job_id !== jobId) return notFound(jobId);
  const page = rc.store.listHosts(opts.states, opts.limit, after);
  return { ok: true, value: { items: page.items, next_cursor: Cursor.encode("s", page.lastSeq) } };
}

/**
 * Stops the rollout: pending hosts are cancelled here and now; commands already queued on a
 * HostRelay are cancelled from the alarm (best effort — one already delivered finishes). Cancelling
 * a cancelled or stopping job changes nothing; a job that already ended otherwise cannot be cancelled.
 */
export function cancel(rc: JobContext, jobId: string, by: string, opts: { abort_running?: boolean }, now: number): RpcResult<JobView> {
  const job = rc.store.job();
  if (!job || job.job_id !== jobId) return notFound(jobId);
  const state = jobState(rc.store.counts(), job.stop_kind);
  if (state === "completed" || state === "stopped") {
    return rpcError(ErrorCode.JOB_FINISHED, `job ${jobId} is ${state}; there is nothing left to cancel`);
  }
  if (job.stop_kind === null) rc.store.stop("cancelled", `cancelled by ${by}`, now);
  // Asked now or on a later cancel of a stopping job: delivered and running commands get the host cancel too.
  if (opts.abort_running) rc.store.abortRunning(now);
  settle(rc, now);
  return { ok: true, value: jobView(rc.store.job()!, rc.store.counts()) };
}
