import { ErrorCode, RelayError } from "./errors.ts";

export interface RateWindow {
  /** Attempts allowed per address per window. */
  limit: number;
  windowMs: number;
}

/**
 * Counts one enrolment attempt from `address` in a fixed window (one D1 statement), and refuses it
 * with 429 and `Retry-After` past the limit. Counted before the token is looked at, so guessing
 * tokens costs the guesser the same as anyone. Rows of past windows are deleted as attempts arrive.
 */
export async function countEnrollmentAttempt(db: D1Database, address: string, rate: RateWindow, now: number): Promise<void> {
  const fresh = now - rate.windowMs;
  const [, counted] = await db.batch<{ attempts: number; window_start: number }>([
    db.prepare("DELETE FROM enrollment_attempts WHERE window_start <= ?").bind(fresh),
    db
      .prepare(
        `INSERT INTO enrollment_attempts (address, window_start, attempts) VALUES (?1, ?2, 1)
         ON CONFLICT(address) DO UPDATE SET attempts = attempts + 1
         RETURNING attempts, window_start`,
      )
      .bind(address, now),
  ]);
  const row = counted?.results[0];
  if (!row || row.attempts <= rate.limit) return;
  const retryAfterS = Math.max(1, Math.ceil((row.window_start + rate.windowMs - now) / 1000));
  throw new RelayError(
    ErrorCode.RATE_LIMITED,
    `more than ${rate.limit} enrolment attempts from this address in ${rate.windowMs / 1000} s; retry in ${retryAfterS} s`,
    {
      headers: { "retry-after": String(retryAfterS) },
    },
  );
}
