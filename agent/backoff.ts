/**
 * Exponential backoff with full jitter: the n-th wait is uniform in [0, min(cap, base·2ⁿ)),
 * so a fleet that lost the relay at once does not come back at once.
 */
export class Backoff {
  readonly baseMs: number;
  readonly capMs: number;
  readonly #random: () => number;
  #attempt = 0;

  constructor(baseMs: number, capMs: number, random: () => number = Math.random) {
    this.baseMs = baseMs;
    this.capMs = capMs;
    this.#random = random;
  }

  /** Failed attempts since the last reset. */
  get attempt(): number {
    return this.#attempt;
  }

  /** The ceiling of the next wait (before jitter). */
  ceiling(): number {
    // 2^31 already exceeds any cap; stop doubling so the number stays finite.
    return Math.min(this.capMs, this.baseMs * 2 ** Math.min(this.#attempt, 31));
  }

  next(): number {
    const delay = Math.floor(this.#random() * this.ceiling());
    this.#attempt++;
    return delay;
  }

  reset(): void {
    this.#attempt = 0;
  }
}
