/** An outbox row as stored. */
export interface OutboxRow {
  id: number;
  kind: string;
  target: string;
  body: string;
  attempts: number;
  next_at: number;
  backoff_until: number | null;
  coalesce_key: string | null;
  not_before: number;
  /** Migration 3's column, no longer written or read: leases live in the instance's memory (`#leased`). */
  leased: number;
  [key: string]: SqlStorageValue;
}

/** What deciding when the outbox is due needs of a row: everything but its body. */
type DueRow = Pick<OutboxRow, "kind" | "target" | "next_at" | "backoff_until" | "coalesce_key" | "not_before">;

/**
 * Owns the `outbox` table: notifications for other objects (fleet events, job progress), written in
 * the same synchronous step as the change that made them and delivered first-in-first-out per target.
 */
export class OutboxStore {
  readonly #sql: SqlStorage;
  /**
   * Every stored row without its body, by id, read from the table once per instance and then kept by
   * the writes below (they are the only ones), so the questions asked after every entry point — is
   * anything deliverable, when is the outbox next due, is there an open row to merge into — cost no
   * statement. Updated only after a statement succeeded; a failed commit resets the object, and
   * with it this copy. Null until first needed.
   */
  #due: Map<number, DueRow> | null = null;
  /**
   * Rows a flush of this instance is delivering, with the time the alarm retries them if that flush
   * never settles. Kept in memory, not in the row: a new instance owns no flush, so a stored lease
   * would be void anyway, and not writing it saves a row write per notification.
   */
  readonly #leased = new Map<number, number>();

  constructor(sql: SqlStorage) {
    this.#sql = sql;
  }

  /** The leased ids as a JSON array, for `id NOT IN (SELECT value FROM json_each(?))`. */
  #leasedIds(): string {
    return JSON.stringify([...this.#leased.keys()]);
  }

  #index(): Map<number, DueRow> {
    if (this.#due === null) {
      this.#due = new Map();
      for (const r of this.#sql.exec<OutboxRow>(
        "SELECT id, kind, target, next_at, backoff_until, coalesce_key, not_before FROM outbox ORDER BY id",
      )) {
        this.#due.set(r.id, r);
      }
    }
    return this.#due;
  }

  /** Queues a notification; `backupAt` is when the alarm looks at it if no flush delivers it first. */
  add(kind: string, target: string, body: unknown, backupAt: number, coalesce?: { key: string; notBefore: number }): number {
    const index = this.#index();
    // A coalescing row wakes the alarm when its window closes; others only if no flush delivers them.
    const nextAt = coalesce ? coalesce.notBefore : backupAt;
    const cursor = this.#sql.exec<{ id: number }>(
      "INSERT INTO outbox (kind, target, body, next_at, coalesce_key, not_before) VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
      kind,
      target,
      JSON.stringify(body),
      nextAt,
      coalesce?.key ?? null,
      coalesce?.notBefore ?? 0,
    );
    const id = cursor.one().id;
    index.set(id, {
      kind,
      target,
      next_at: nextAt,
      backoff_until: null,
      coalesce_key: coalesce?.key ?? null,
      not_before: coalesce?.notBefore ?? 0,
    });
    return id;
  }

  /** The open (not yet leased, still inside its window) row for `key`, to merge into. */
  openCoalesced(key: string, now: number): OutboxRow | null {
    let open: number | null = null;
    for (const [id, r] of this.#index()) {
      if (r.coalesce_key === key && r.not_before > now && !this.#leased.has(id) && (open === null || id > open)) open = id;
    }
    if (open === null) return null;
    return this.#sql.exec<OutboxRow>("SELECT * FROM outbox WHERE id = ?", open).toArray()[0] ?? null;
  }

  /**
   * Leases the open row for `key` before its window closes, so it travels with a flush that is
   * going anyway, but only if every older row of its kind is leased already (taken by this flush:
   * first in, first out per target) and it is not backing off. Its window is closed on the way:
   * nothing merges into a row once it was sent.
   */
  takeOpenCoalesced(key: string, kind: string, now: number, leaseUntil: number): OutboxRow[] {
    const index = this.#index();
    if (![...index.values()].some((r) => r.coalesce_key === key)) return [];
    const leased = this.#leasedIds();
    // The closed window is stored (a row once sent must never grow, even after an eviction); the lease is not.
    const rows = this.#sql
      .exec<OutboxRow>(
        `UPDATE outbox SET not_before = MIN(not_before, ?)
           WHERE coalesce_key = ? AND id NOT IN (SELECT value FROM json_each(?3)) AND (backoff_until IS NULL OR backoff_until <= ?)
             AND NOT EXISTS (SELECT 1 FROM outbox AS older WHERE older.kind = ? AND older.id < outbox.id
                               AND older.id NOT IN (SELECT value FROM json_each(?3)))
           RETURNING *`,
        now,
        key,
        leased,
        now,
        kind,
      )
      .toArray()
      .sort((a, b) => a.id - b.id);
    for (const r of rows) {
      const known = index.get(r.id);
      if (known) known.not_before = r.not_before;
      this.#leased.set(r.id, leaseUntil);
    }
    return rows;
  }

  replaceBody(id: number, body: unknown): void {
    this.#sql.exec("UPDATE outbox SET body = ? WHERE id = ?", JSON.stringify(body), id);
  }

  /**
   * Rows to deliver now, oldest first, at most `limit`, leased until `leaseUntil`. First-in-first-out
   * per target: a row that may not go yet (backing off after a failure, inside its coalescing window,
   * or already leased) holds back every later row for the same target.
   */
  lease(now: number, leaseUntil: number, limit: number): OutboxRow[] {
    const blocked = new Set<string>();
    const ids: number[] = [];
    // The in-memory copy picks the rows (in id order: ids only grow, and the copy is filled in id
    // order), so a flush with nothing deliverable runs no statement and one that has reads only bodies.
    for (const [id, r] of this.#index()) {
      const key = `${r.kind}\u0000${r.target}`;
      if (blocked.has(key)) continue;
      if (this.#leased.has(id) || (r.backoff_until !== null && r.backoff_until > now) || r.not_before > now) {
        blocked.add(key);
        continue;
      }
      ids.push(id);
      if (ids.length >= limit) break;
    }
    if (ids.length === 0) return [];
    const taken =
      ids.length === 1
        ? this.#sql.exec<OutboxRow>("SELECT * FROM outbox WHERE id = ?", ids[0]).toArray()
        : this.#sql
            .exec<OutboxRow>("SELECT * FROM outbox WHERE id IN (SELECT value FROM json_each(?)) ORDER BY id", JSON.stringify(ids))
            .toArray();
    for (const r of taken) this.#leased.set(r.id, leaseUntil);
    return taken;
  }

  delete(ids: number[]): void {
    const index = this.#index();
    if (ids.length === 1) this.#sql.exec("DELETE FROM outbox WHERE id = ?", ids[0]);
    else if (ids.length > 1) this.#sql.exec("DELETE FROM outbox WHERE id IN (SELECT value FROM json_each(?))", JSON.stringify(ids));
    for (const id of ids) {
      this.#leased.delete(id);
      index.delete(id);
    }
  }

  /** Delivery failed: the rows back off (and, being first, hold back their target's later rows). */
  defer(ids: number[], until: (attempts: number) => number): void {
    const index = this.#index();
    for (const id of ids) {
      this.#leased.delete(id);
      const row = this.#sql.exec<{ attempts: number }>("SELECT attempts FROM outbox WHERE id = ?", id).toArray()[0];
      if (!row) continue;
      const at = until(row.attempts + 1);
      this.#sql.exec(
        "UPDATE outbox SET attempts = ?, next_at = ?, backoff_until = ?, leased = 0 WHERE id = ?",
        row.attempts + 1,
        at,
        at,
        id,
      );
      const known = index.get(id);
      if (known) {
        known.next_at = at;
        known.backoff_until = at;
      }
    }
  }

  hasDeliverable(now: number): boolean {
    for (const [id, r] of this.#index()) {
      if (!this.#leased.has(id) && (r.backoff_until === null || r.backoff_until <= now) && r.not_before <= now) return true;
    }
    return false;
  }

  /** Earliest time the alarm must look at the outbox: a row's next look, or a lease's end. */
  nextDue(): number | null {
    let next: number | null = null;
    for (const [id, r] of this.#index()) if (!this.#leased.has(id) && (next === null || r.next_at < next)) next = r.next_at;
    for (const until of this.#leased.values()) if (next === null || until < next) next = until;
    return next;
  }

  count(): number {
    return this.#index().size;
  }
}
