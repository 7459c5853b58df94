import { Limits } from "../schemas/index.ts";
import { ErrorCode, RelayError } from "./errors.ts";

/**
 * One bound on every delivery deadline a REST caller gives (commands, jobs, requeue): an absolute
 * `expires_at` may be at most `Limits.MAX_EXPIRES_IN_S` (30 days) after acceptance, the same bound
 * the schema puts on a relative `expires_in`. Without it `9999-12-31` kept a command (and its queue
 * slot, its retries, its job's window) alive for ever.
 */
export function assertDeadlineWithinBound(expiresAt: string | undefined, now: number): void {
  if (expiresAt === undefined) return;
  const at = Date.parse(expiresAt);
  const latest = now + Limits.MAX_EXPIRES_IN_S * 1000;
  if (at > latest) {
    const message = `must be at most ${Limits.MAX_EXPIRES_IN_S} s (${Limits.MAX_EXPIRES_IN_S / 86_400} days) after acceptance, i.e. no later than ${new Date(latest).toISOString()}`;
    throw new RelayError(ErrorCode.DEADLINE_TOO_FAR, `expires_at: ${message}`, { errors: [{ path: "expires_at", message }] });
  }
}
