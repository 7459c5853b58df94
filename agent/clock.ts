/**
 * The relay's clock as the agent estimates it. Times the relay set (a command's `expires_at`, a
 * certificate's validity) are compared with this, not with the host's own clock, so a host whose
 * clock is off by a little is not refusing commands or certificates that are still good.
 */

/**
 * Clock skew the agent tolerates without complaint: 5 minutes. Past it the agent logs a warning at
 * every connection (it still uses the relay's clock); the fleet CA backdates certificates by the
 * same 5 minutes, so a certificate is valid at once for peers whose clocks lag by up to this much.
 */
export const MAX_CLOCK_SKEW_MS = 5 * 60_000;

export class RelayClock {
  /** The host's clock (injectable for tests; default Date.now). */
  readonly localNow: () => number;
  #offsetMs: number | null = null;

  constructor(localNow: () => number = Date.now) {
    this.localNow = localNow;
  }

  /** Relay minus host, ms, from the last `welcome`; null before the first. */
  get offsetMs(): number | null {
    return this.#offsetMs;
  }

  /**
   * Takes the relay's `server_time` from a `welcome` that answered a `hello` sent at `sentAt` and
   * arrived at `receivedAt` (host clock): the relay set it somewhere in between, so the midpoint is
   * the best guess (off by at most half the round trip). Returns the offset.
   */
  measure(serverTime: string, sentAt: number, receivedAt: number): number {
    const server = Date.parse(serverTime);
    const offset = Math.round(server - (sentAt + receivedAt) / 2);
    this.#offsetMs = offset;
    return offset;
  }

  /** The relay's time now, as best known: the host's clock corrected by the last measured offset. */
  now(): number {
    return this.localNow() + (this.#offsetMs ?? 0);
  }

  /** True when the last measured offset exceeds MAX_CLOCK_SKEW_MS either way. */
  beyondBound(): boolean {
    return this.#offsetMs !== null && Math.abs(this.#offsetMs) > MAX_CLOCK_SKEW_MS;
  }
}
