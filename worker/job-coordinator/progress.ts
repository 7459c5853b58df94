import type { FleetEventInput } from "../../schemas/index.ts";
import { nowRfc3339 } from "../../schemas/index.ts";
import { fleetEvents } from "../stubs.ts";
import { type JobContext, PROGRESS_MAX_ATTEMPTS, retryDelay } from "./context.ts";
import { jobView } from "./view.ts";

/**
 * Publishes the due job.progress event, if any: one snapshot of the job as it is now, however
 * many changes led to it. Runs in the alarm, never on the path of a host update. Best effort: a
 * failed publish is retried a few times with backoff, then dropped (the job's REST view is the record).
 */
export async function publishProgress(rc: JobContext): Promise<void> {
  const now = rc.clock.now();
  const job = rc.store.takeProgress(now);
  if (!job) return;
  const view = jobView(job, rc.store.counts());
  const event: FleetEventInput = {
    type: "job.progress",
    at: nowRfc3339(now),
    job_id: job.job_id,
    state: view.state,
    counts: view.counts,
    errors: view.errors,
    completion: view.completion,
  };
  try {
    // Numbered per job, so a retry after a lost reply is not stored twice.
    await fleetEvents(rc.env).publish([{ ...event, source: `JobCoordinator:${job.job_id}`, source_seq: job.progress_seq + 1 }]);
    rc.store.progressSent();
  } catch (err) {
    const attempts = rc.store.progressFailed();
    if (attempts < PROGRESS_MAX_ATTEMPTS) {
      rc.store.progressDue(rc.clock.now() + retryDelay(rc, attempts));
    } else {
      console.error(`job ${job.job_id}: dropping a job.progress event after ${attempts} failed publishes`, err);
      rc.store.progressSent();
    }
  }
}
