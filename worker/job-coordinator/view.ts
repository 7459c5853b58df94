import type { JobView } from "../../schemas/index.ts";
import { nowRfc3339 } from "../../schemas/index.ts";
import { ALL_HOST_STATES, errorCount, finalCount, jobState } from "./states.ts";
import type { JobRow } from "./storage.ts";

/** Hosts per state with every state present, so readers need not guess which are zero. */
export function fullCounts(counts: Record<string, number>): Record<string, number> {
  return Object.fromEntries(ALL_HOST_STATES.map((s) => [s, counts[s] ?? 0]));
}

export function jobView(job: JobRow, counts: Record<string, number>): JobView {
  return {
    job_id: job.job_id,
    state: jobState(counts, job.stop_kind),
    command_type: job.command_type,
    parameters: JSON.parse(job.parameters) as Record<string, unknown>,
    target: JSON.parse(job.target) as Record<string, unknown>,
    created_at: nowRfc3339(job.created_at),
    created_by: job.created_by,
    expires_at: nowRfc3339(job.expires_at),
    finished_at: job.finished_at === null ? null : nowRfc3339(job.finished_at),
    hosts: job.host_count,
    max_concurrency: job.max_concurrency,
    max_errors: job.max_errors,
    counts: fullCounts(counts),
    errors: errorCount(counts),
    completion: job.host_count === 0 ? 1 : finalCount(counts) / job.host_count,
    stop_reason: job.stop_reason,
  };
}
