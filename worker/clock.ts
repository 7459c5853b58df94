/**
 * Time and randomness for a Durable Object, in one place so tests move time forward by hand
 * (through `runInDurableObject`) instead of rewriting stored timestamps.
 */
export interface Clock {
  /** Epoch milliseconds. */
  now(): number;
  /** Uniform in [0, 1), for jitter. */
  random(): number;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  random: () => Math.random(),
};

/** A clock that only moves when told; `random` is fixed unless set. Tests only. */
export class ManualClock implements Clock {
  #now: number;
  randomValue = 0.5;

  constructor(start: number = Date.now()) {
    this.#now = start;
  }

  now(): number {
    return this.#now;
  }

  random(): number {
    return this.randomValue;
  }

  advance(ms: number): number {
    this.#now += ms;
    return this.#now;
  }

  set(ms: number): void {
    this.#now = ms;
  }
}

/** Real time moved forward by a settable offset: time still passes, and a test can jump ahead. Tests only. */
export class OffsetClock implements Clock {
  offsetMs = 0;

  now(): number {
    return Date.now() + this.offsetMs;
  }

  random(): number {
    return Math.random();
  }
}
