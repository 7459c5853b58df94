/**
 * Bounds what one subscriber can have queued. workerd's `WebSocket.send` never blocks, never fails
 * for a slow peer and exposes no `bufferedAmount`, so a subscriber that stops reading would be
 * buffered without limit (48 MiB was queued for one paused socket). Instead, the object counts the
 * bytes it has sent to each subscriber and not yet had acknowledged (`{"type":"ack","offset":N}`
 * frames from the subscriber); a frame that would take that past the budget is not sent, and the
 * subscriber is closed with `EventStreamCloseCode.TOO_FAR_BEHIND` to resume from its offset.
 *
 * The counts live in memory, keyed by subscriber id: an object that hibernates (nothing published
 * for a while) starts each subscriber's count again at zero when it wakes.
 */
export class SendBudget {
  readonly maxUnackedBytes: number;
  readonly #subs = new Map<string, Unacked>();

  constructor(maxUnackedBytes: number) {
    this.maxUnackedBytes = maxUnackedBytes;
  }

  /**
   * Records a frame of `bytes` carrying `offset` for subscriber `id`, if it fits the budget.
   * Returns false (and records nothing) if it does not: the caller closes the subscriber.
   */
  charge(id: string, bytes: number, offset: number): boolean {
    let u = this.#subs.get(id);
    if (!u) {
      u = { sent: 0, acked: 0, marks: [], head: 0 };
      this.#subs.set(id, u);
    }
    if (u.sent + bytes - u.acked > this.maxUnackedBytes) return false;
    u.sent += bytes;
    u.marks.push(offset, u.sent);
    return true;
  }

  /** The subscriber has read every frame up to `offset`. */
  ack(id: string, offset: number): void {
    const u = this.#subs.get(id);
    if (!u) return;
    while (u.head < u.marks.length && (u.marks[u.head] as number) <= offset) {
      u.acked = u.marks[u.head + 1] as number;
      u.head += 2;
    }
    // Compact once the consumed prefix dominates, keeping acks amortised O(1).
    if (u.head > 1024 && u.head * 2 > u.marks.length) {
      u.marks = u.marks.slice(u.head);
      u.head = 0;
    }
  }

  /** Bytes sent to `id` and not yet acknowledged. */
  unacked(id: string): number {
    const u = this.#subs.get(id);
    return u ? u.sent - u.acked : 0;
  }

  forget(id: string): void {
    this.#subs.delete(id);
  }
}

interface Unacked {
  /** Bytes sent so far. */
  sent: number;
  /** Bytes covered by the subscriber's acknowledgements. */
  acked: number;
  /** Flat pairs (offset, sent after it), oldest first, from `head` on. */
  marks: number[];
  head: number;
}
