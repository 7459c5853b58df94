/**
 * Where every command's milestones meet, keyed by message_id: the agent side reports "received"
 * (command frame arrived) and "stored" (the relay's ack of the response frame arrived); the REST side
 * learns the message_id only when its call returns, which may be after both.
 */
export class Tracker {
  readonly received = new Map<string, number>();
  readonly stored = new Map<string, number>();
  readonly #waiters = new Map<string, (t: number) => void>();

  onReceived(id: string, t: number): void {
    if (!this.received.has(id)) this.received.set(id, t);
  }

  onStored(id: string, t: number): void {
    if (this.stored.has(id)) return;
    this.stored.set(id, t);
    const w = this.#waiters.get(id);
    if (w) {
      this.#waiters.delete(id);
      w(t);
    }
  }

  /** Resolves with the time the response to `id` was stored; rejects after `timeoutMs`. */
  waitStored(id: string, timeoutMs = 30_000): Promise<number> {
    const t = this.stored.get(id);
    if (t !== undefined) return Promise.resolve(t);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#waiters.delete(id);
        reject(new Error(`command ${id}: no stored response within ${timeoutMs} ms`));
      }, timeoutMs);
      this.#waiters.set(id, (at) => {
        clearTimeout(timer);
        resolve(at);
      });
    });
  }

  /** Drops what is no longer needed (keeps memory flat across phases). */
  forget(id: string): void {
    this.received.delete(id);
    this.stored.delete(id);
  }
}
