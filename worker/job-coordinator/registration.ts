import { nowRfc3339 } from "../../schemas/index.ts";
import { insertJob } from "../registry-targets.ts";
import { type JobContext, retryDelay } from "./context.ts";

/**
 * Lists the stored job in the registry (D1) if that is not known to have happened. The coordinator
 * dispatches nothing before this succeeds, so a job either runs and is listed, or is listed later
 * (the alarm retries the write with backoff) before it runs. The write is idempotent. True once listed.
 */
export async function ensureRegistered(rc: JobContext): Promise<boolean> {
  const job = rc.store.job();
  if (!job) return false;
  if (job.registered_at !== null) return true;
  try {
    rc.faults.check("job.registry_write");
    await insertJob(rc.env.DB, {
      job_id: job.job_id,
      created_at: nowRfc3339(job.created_at),
      created_by: job.created_by,
      command_type: job.command_type,
      host_count: job.host_count,
    });
  } catch (err) {
    const attempts = rc.store.registryFailed();
    console.error(
      JSON.stringify({ level: "error", msg: "job registry write failed; will retry", job_id: job.job_id, attempts, error: String(err) }),
    );
    rc.store.setRegistryDue(rc.clock.now() + retryDelay(rc, attempts));
    return false;
  }
  rc.store.setRegistered(rc.clock.now());
  return true;
}
