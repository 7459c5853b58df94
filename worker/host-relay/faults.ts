/**
 * Failure injection for tests. Armed only from inside the object (`runInDurableObject` in the
 * workerd tests); no RPC, route or setting reaches it, so production never fails on purpose.
 */
export class Faults {
  readonly #armed = new Map<string, number>();

  /** The next `times` calls of `point` throw. */
  fail(point: string, times = 1): void {
    this.#armed.set(point, times);
  }

  check(point: string): void {
    const left = this.#armed.get(point) ?? 0;
    if (left <= 0) return;
    this.#armed.set(point, left - 1);
    throw new Error(`injected fault at ${point}`);
  }
}
