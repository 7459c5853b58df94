import { type BackoffPolicy, backoffMs } from "../backoff.ts";
import type { Clock } from "../clock.ts";
import type { Env } from "../env.ts";
import type { TestFaults } from "../test-faults.ts";
import type { JobStorage } from "./storage.ts";

/** Everything a JobCoordinator handler needs; rebuilt from storage after eviction. */
export interface JobContext {
  ctx: DurableObjectState;
  env: Env;
  store: JobStorage;
  /** Time and jitter; tests may swap in a ManualClock through runInDurableObject. */
  clock: Clock;
  /** Test-only fault hooks; inert unless TEST_FAULTS is set. */
  faults: TestFaults;
  /** Last alarm time this instance set; undefined after a wake-up, when it is not known. */
  alarmAt: number | null | undefined;
  /** Set after a round failed unexpectedly: the alarm is not pointed earlier than this. */
  backoffUntil: number | null;
  /** Alarm rounds run one after another (the runtime's alarm and a test's direct call may overlap). */
  rounds: Promise<void>;
  /**
   * Hosts whose relay said they came online while they were still pending: a round that read them
   * as offline (before the agent's hello) dispatches them instead of parking them. Lost on eviction,
   * which the wait sweep covers.
   */
  woken: Set<string>;
}

/** Enqueue and cancel RPCs one alarm invocation makes at most; the alarm re-arms for the rest. */
export const RPC_BUDGET = 200;
/** Of those, how many are in flight at once. */
export const RPC_PARALLELISM = 100;
/** Pending hosts one round takes its turn for: the offline ones wait in the job, costing no RPC. */
export const PENDING_BATCH = 2000;
/**
 * While hosts wait, how often the job asks the registry which of them came online (or were revoked).
 * Their relays wake the job when the agent says hello; this catches a wake that got lost.
 */
export const WAIT_SWEEP_MS = 60_000;
/** An RPC whose answer was not recorded by then (the object was evicted mid-call) is tried again. */
export const LEASE_MS = 60_000;
/** job.progress events are coalesced: at most one per this interval while the job moves (the final one at once). */
export const PROGRESS_COALESCE_MS = 500;
/** A job.progress event that cannot be published is dropped after this many tries (events are best effort). */
export const PROGRESS_MAX_ATTEMPTS = 8;
/** Retries of a failed RPC (dispatch, cancel, progress publish, registry write): 1 s doubling to a minute, full jitter. */
export const JOB_RETRY_BACKOFF: BackoffPolicy = { baseMs: 1000, capMs: 60_000 };

/** Runs `fn` over `items` with at most `limit` calls in flight. */
export async function inPool<T>(items: T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) await fn(items[next++]!);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

/** A promise's outcome as data, so a thrown RPC error and an answered one are handled side by side. */
export async function settled<T>(p: Promise<T>): Promise<{ ok: true; value: T } | { ok: false; error: unknown }> {
  try {
    return { ok: true, value: await p };
  } catch (error) {
    return { ok: false, error };
  }
}

/** The wait before retry number `attempt` of a failed RPC, with the context's clock's jitter. */
export function retryDelay(rc: JobContext, attempt: number): number {
  return backoffMs(attempt, JOB_RETRY_BACKOFF, () => rc.clock.random());
}
