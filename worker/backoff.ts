/** An exponential backoff with full jitter; every retry in the relay uses this one. */
export interface BackoffPolicy {
  /** Ceiling of the first wait, ms. */
  baseMs: number;
  /** Largest ceiling, ms. */
  capMs: number;
}

/**
 * The wait before retry number `attempt` (1 = first retry): uniform in [0, min(cap, base·2^(attempt-1))),
 * in whole milliseconds because an alarm keeps only whole milliseconds and must not fire before the row is due.
 */
export function backoffMs(attempt: number, policy: BackoffPolicy, random: () => number): number {
  const exponent = Math.min(Math.max(attempt - 1, 0), 30);
  return Math.floor(random() * Math.min(policy.capMs, policy.baseMs * 2 ** exponent));
}

/** Outbox rows that failed to deliver: 0.5 s doubling to a minute. */
export const OUTBOX_BACKOFF: BackoffPolicy = { baseMs: 500, capMs: 60_000 };
