import type { AuditRecord } from "../../schemas/index.ts";
import { MetaTable } from "../meta-table.ts";
import { applySqlMigrations } from "../sql-migrations.ts";
import { GENESIS_HASH } from "./canonical.ts";
import { AUDIT_LOG_MIGRATIONS } from "./storage-schema.ts";

/** Most sources remembered for deduplication; the longest idle are forgotten first. */
export const MAX_SOURCES = 100_000;
/** Sources idle this long are forgotten (their outboxes have long been delivered). */
export const SOURCE_IDLE_MS = 30 * 86_400_000;

/** Filters of `GET /api/audit`, after validation; times in epoch ms. */
export interface RecordFilter {
  sub?: string | undefined;
  action?: string | undefined;
  host_id?: string | undefined;
  job_id?: string | undefined;
  since?: number | undefined;
  until?: number | undefined;
}

/** A page position: records strictly before (at, shard, seq) in newest-first order. */
export interface RecordCursor {
  at: number;
  shard: number;
  seq: number;
}

export interface StoredRecord {
  seq: number;
  at: number;
  body: string;
  [key: string]: SqlStorageValue;
}

/** Owns an AuditLog shard's tables; every method is synchronous so callers compose them atomically. */
export class AuditLogStorage {
  private readonly sql: SqlStorage;
  /** Meta rows, read once per instance (only this object writes them). */
  private readonly meta: MetaTable;
  private headCache: { seq: number; hash: string } | undefined;

  constructor(storage: DurableObjectStorage) {
    this.sql = storage.sql;
    this.meta = new MetaTable(storage.sql);
  }

  migrate(): void {
    applySqlMigrations(this.sql, AUDIT_LOG_MIGRATIONS);
  }

  getMeta(key: string): string | null {
    return this.meta.get(key);
  }

  setMeta(key: string, value: string | number): void {
    this.meta.set(key, value);
  }

  /** The chain's last record (seq 0 and the genesis hash before the first). */
  head(): { seq: number; hash: string } {
    this.headCache ??= { seq: Number(this.getMeta("head_seq") ?? 0), hash: this.getMeta("head_hash") ?? GENESIS_HASH };
    return this.headCache;
  }

  prunedThrough(): number {
    return Number(this.getMeta("pruned_through") ?? 0);
  }

  lastCheckpoint(): { seq: number; at: number } {
    return { seq: Number(this.getMeta("checkpoint_seq") ?? 0), at: Number(this.getMeta("checkpoint_at") ?? 0) };
  }

  /** Appends a record whose seq and prev_hash continue the head (the caller computed them). */
  insert(record: AuditRecord, body: string, at: number, storedAt: number): void {
    this.sql.exec(
      "INSERT INTO records (seq, at, stored_at, action, sub, host_id, job_id, body) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
      record.seq,
      at,
      storedAt,
      record.action,
      record.actor.sub,
      record.target.host_id ?? null,
      record.target.job_id ?? null,
      body,
    );
    this.setMeta("head_seq", record.seq);
    this.setMeta("head_hash", record.hash);
    this.headCache = { seq: record.seq, hash: record.hash };
  }

  addPending(id: string, now: number, body: string): void {
    this.sql.exec("INSERT INTO pending (id, created_at, body) VALUES (?, ?, ?) ON CONFLICT(id) DO NOTHING", id, now, body);
  }

  getPending(id: string): string | null {
    return this.sql.exec<{ body: string }>("SELECT body FROM pending WHERE id = ?", id).toArray()[0]?.body ?? null;
  }

  /** Removes and returns a pending entry; null if there is none (already completed or timed out). */
  takePending(id: string): string | null {
    const row = this.sql.exec<{ body: string }>("DELETE FROM pending WHERE id = ? RETURNING body", id).toArray()[0];
    return row?.body ?? null;
  }

  /** Pending entries created at or before `before`, oldest first. */
  duePending(before: number, limit: number): { id: string; body: string }[] {
    return this.sql
      .exec<{ id: string; body: string }>("SELECT id, body FROM pending WHERE created_at <= ? ORDER BY created_at LIMIT ?", before, limit)
      .toArray();
  }

  oldestPendingAt(): number | null {
    return this.sql.exec<{ t: number | null }>("SELECT MIN(created_at) AS t FROM pending").one().t;
  }

  pendingCount(): number {
    return this.sql.exec<{ n: number }>("SELECT COUNT(*) AS n FROM pending").one().n;
  }

  /** The highest item chained from `source` (0 for a new source). */
  sourceSeq(source: string): number {
    return this.sql.exec<{ seq: number }>("SELECT seq FROM sources WHERE source = ?", source).toArray()[0]?.seq ?? 0;
  }

  /** Whether item `seq` from `source` is new (and remembers it); sources deliver in order. */
  acceptFromSource(source: string, seq: number, now: number): boolean {
    const seen = this.sql.exec<{ seq: number }>("SELECT seq FROM sources WHERE source = ?", source).toArray()[0];
    if (seen !== undefined && seq <= seen.seq) return false;
    this.sql.exec(
      "INSERT INTO sources (source, seq, at) VALUES (?, ?, ?) ON CONFLICT (source) DO UPDATE SET seq = excluded.seq, at = excluded.at",
      source,
      seq,
      now,
    );
    if (seen === undefined) {
      const n = this.sql.exec<{ n: number }>("SELECT COUNT(*) AS n FROM sources").one().n;
      if (n > MAX_SOURCES) {
        this.sql.exec("DELETE FROM sources WHERE source IN (SELECT source FROM sources ORDER BY at LIMIT ?)", n - MAX_SOURCES);
      }
    }
    return true;
  }

  addCheckpoint(seq: number, kind: string, at: number, body: string): void {
    this.sql.exec("INSERT INTO checkpoints (seq, kind, at, body) VALUES (?, ?, ?, ?)", seq, kind, at, body);
    if (kind !== "export") {
      this.setMeta("checkpoint_seq", seq);
      this.setMeta("checkpoint_at", at);
    }
  }

  /** Stored checkpoints (JSON text), oldest first. */
  checkpoints(): string[] {
    return this.sql
      .exec<{ body: string }>("SELECT body FROM checkpoints WHERE kind != 'export' ORDER BY seq, id")
      .toArray()
      .map((r) => r.body);
  }

  /** Records after `afterSeq` up to `throughSeq`, in seq order, as stored. */
  page(afterSeq: number, throughSeq: number, limit: number): StoredRecord[] {
    return this.sql
      .exec<StoredRecord>("SELECT seq, at, body FROM records WHERE seq > ? AND seq <= ? ORDER BY seq LIMIT ?", afterSeq, throughSeq, limit)
      .toArray();
  }

  /** Newest first by (at, seq), strictly before `before` in that order (this shard's part of the merged order). */
  query(filter: RecordFilter, before: { at: number; seq: number; inclusiveAt: boolean } | null, limit: number): StoredRecord[] {
    const where: string[] = [];
    const args: SqlStorageValue[] = [];
    const add = (condition: string, value: SqlStorageValue | undefined) => {
      if (value === undefined) return;
      where.push(condition);
      args.push(value);
    };
    add("sub = ?", filter.sub);
    add("action = ?", filter.action);
    add("host_id = ?", filter.host_id);
    add("job_id = ?", filter.job_id);
    add("at >= ?", filter.since);
    add("at < ?", filter.until);
    if (before) {
      where.push(before.inclusiveAt ? "(at < ? OR (at = ? AND seq < ?))" : "at < ?");
      args.push(before.at);
      if (before.inclusiveAt) args.push(before.at, before.seq);
    }
    const clause = where.length ? `WHERE ${where.join(" AND ")}` : "";
    return this.sql
      .exec<StoredRecord>(`SELECT seq, at, body FROM records ${clause} ORDER BY at DESC, seq DESC LIMIT ?`, ...args, limit)
      .toArray();
  }

  /**
   * The highest seq S such that every record up to S was stored at or before `cutoff` (0 when
   * none): retention removes a prefix of the chain, never a hole.
   */
  prunableThrough(cutoff: number): number {
    const firstYoung = this.sql.exec<{ s: number | null }>("SELECT MIN(seq) AS s FROM records WHERE stored_at > ?", cutoff).one().s;
    const through = firstYoung === null ? this.head().seq : firstYoung - 1;
    return Math.max(through, this.prunedThrough());
  }

  /** The stored hash of record `seq` (which must be kept). */
  hashAt(seq: number): string | null {
    if (seq === 0) return GENESIS_HASH;
    const row = this.sql.exec<{ body: string }>("SELECT body FROM records WHERE seq = ?", seq).toArray()[0];
    return row ? (JSON.parse(row.body) as { hash: string }).hash : null;
  }

  /** Removes records up to `through` and the checkpoints before it; the prune checkpoint at `through` stays. */
  prune(through: number, now: number): number {
    const removed = this.sql.exec<{ n: number }>("SELECT COUNT(*) AS n FROM records WHERE seq <= ?", through).one().n;
    this.sql.exec("DELETE FROM records WHERE seq <= ?", through);
    this.sql.exec("DELETE FROM checkpoints WHERE seq < ?", through);
    this.sql.exec("DELETE FROM sources WHERE at <= ?", now - SOURCE_IDLE_MS);
    this.setMeta("pruned_through", through);
    return removed;
  }

  oldestStoredAt(): number | null {
    return this.sql.exec<{ t: number | null }>("SELECT MIN(stored_at) AS t FROM records").one().t;
  }
}
