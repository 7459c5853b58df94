import type { EventFilter, FleetEvent, FleetEventInput } from "../../schemas/index.ts";
import { MetaTable } from "../meta-table.ts";
import { MetricsStore } from "../metrics/metrics-store.ts";
import { applySqlMigrations } from "../sql-migrations.ts";
import { FLEET_EVENTS_MIGRATIONS } from "./storage-schema.ts";

interface EventRow {
  offset: number;
  body: string;
  [key: string]: SqlStorageValue;
}

/** How much history is kept: the newest `maxEvents`, none older than `maxAgeMs` (by the time stored). */
export interface HistoryBounds {
  maxEvents: number;
  maxAgeMs: number;
}

/** Most publishing sources remembered for deduplication; the longest idle are forgotten first. */
export const MAX_SOURCES = 100_000;

/**
 * How often a publish also applies the age bound (the count bound is applied on every one): the
 * history is bounded by a day by default, so a second of slack is nothing, and it spares every
 * publish two indexed scans and a delete. The alarm applies both bounds whenever it runs.
 */
export const AGE_PRUNE_EVERY_MS = 1000;

/** Owns the FleetEvents tables; every method is synchronous so callers compose them atomically. */
export class FleetEventsStorage {
  private readonly sql: SqlStorage;
  /**
   * Copies kept by this instance's own writes (only this object writes these tables): the number
   * of remembered sources (undefined: count once), the oldest kept event's time (undefined: read
   * once), and when a publish last applied the age bound.
   */
  private readonly meta: MetaTable;
  private sourceCount: number | undefined;
  private oldestCache: number | null | undefined;
  private agedAt = Number.NEGATIVE_INFINITY;
  /** The metric tables, over the same database (migration 3). */
  readonly metrics: MetricsStore;

  private readonly maxSources: number;

  /** `maxSources`: most publishing sources remembered; default MAX_SOURCES. */
  constructor(storage: DurableObjectStorage, maxSources = MAX_SOURCES) {
    this.sql = storage.sql;
    this.maxSources = maxSources;
    this.metrics = new MetricsStore(storage.sql);
    this.meta = new MetaTable(storage.sql);
  }

  /** Applies pending migrations and gives a new store its epoch. */
  migrate(): void {
    applySqlMigrations(this.sql, FLEET_EVENTS_MIGRATIONS);
    this.meta.setOnce("epoch", crypto.randomUUID());
  }

  /** Identifies this event store; offsets from another epoch mean nothing here. */
  epoch(): string {
    return this.meta.get("epoch")!;
  }

  /** The highest offset pruned so far (0: nothing ever pruned). A resume from below it is not covered. */
  prunedThrough(): number {
    return Number(this.meta.get("pruned_through") ?? 0);
  }

  /** The newest offset handed out (0 before the first event), whether or not its row is still kept. */
  head(): number {
    const newest = this.sql.exec<{ o: number | null }>('SELECT MAX("offset") AS o FROM events').one().o;
    return Math.max(newest ?? 0, this.prunedThrough());
  }

  /**
   * Whether an event numbered `seq` by `source` is new: true (and remembered) if `seq` is above the
   * highest stored for the source, false for a repeat. Sources publish in order, so one number per
   * source is enough.
   */
  acceptFromSource(source: string, seq: number, now: number): boolean {
    const seen = this.sql.exec<{ seq: number }>("SELECT seq FROM sources WHERE source = ?", source).toArray()[0];
    if (seen !== undefined && seq <= seen.seq) return false;
    this.sql.exec(
      "INSERT INTO sources (source, seq, at) VALUES (?, ?, ?) ON CONFLICT (source) DO UPDATE SET seq = excluded.seq, at = excluded.at",
      source,
      seq,
      now,
    );
    if (seen === undefined) this.capSources();
    return true;
  }

  /** Checked only when a new source appears (one per host or job: a job to 10,000 hosts brings 10,000), against a count kept in memory. */
  private capSources(): void {
    // Not known yet: counted from the table, which already holds the source just added.
    this.sourceCount =
      this.sourceCount === undefined ? this.sql.exec<{ n: number }>("SELECT COUNT(*) AS n FROM sources").one().n : this.sourceCount + 1;
    if (this.sourceCount <= this.maxSources) return;
    this.sql.exec(
      "DELETE FROM sources WHERE source IN (SELECT source FROM sources ORDER BY at LIMIT ?)",
      this.sourceCount - this.maxSources,
    );
    this.sourceCount = this.maxSources;
  }

  /** Stores one event and returns it as subscribers see it. */
  append(event: FleetEventInput, now: number): FleetEvent {
    const body = JSON.stringify(event);
    const { offset } = this.sql
      .exec<{ offset: number }>(
        'INSERT INTO events (at, type, host_id, message_id, job_id, body) VALUES (?, ?, ?, ?, ?, ?) RETURNING "offset"',
        now,
        event.type,
        event.host_id ?? null,
        event.message_id ?? null,
        event.job_id ?? null,
        body,
      )
      .one();
    if (this.oldestCache === null) this.oldestCache = now;
    return { ...event, offset, epoch: this.epoch() };
  }

  /** Stored events after `offset`, oldest first. */
  *after(offset: number): Generator<FleetEvent> {
    const epoch = this.epoch();
    for (const row of this.sql.exec<EventRow>('SELECT "offset", body FROM events WHERE "offset" > ? ORDER BY "offset"', offset)) {
      yield { ...(JSON.parse(row.body) as FleetEventInput), offset: row.offset, epoch };
    }
  }

  /** When the oldest kept event was stored, or null with none kept. */
  oldestAt(): number | null {
    this.oldestCache ??= this.sql.exec<{ at: number | null }>('SELECT at FROM events ORDER BY "offset" LIMIT 1').toArray()[0]?.at ?? null;
    return this.oldestCache;
  }

  /**
   * Enforces the bounds by removing the oldest events — always a prefix of the offsets, so the
   * history stays contiguous and `prunedThrough` says exactly what is missing. Returns how many went.
   * Tests and the alarm call it; a publish calls `pruneAfterAppend`.
   */
  prune(now: number, bounds: HistoryBounds): number {
    return this.pruneThrough(this.head(), now, bounds, true, true);
  }

  /**
   * The bounds after a publish whose newest offset is `newest`: the count bound every time, the age
   * bound at most every AGE_PRUNE_EVERY_MS.
   */
  pruneAfterAppend(newest: number, now: number, bounds: HistoryBounds): void {
    // With a full history this runs on every publish, so it does not count what it removes.
    this.pruneThrough(newest, now, bounds, now - this.agedAt >= AGE_PRUNE_EVERY_MS, false);
  }

  private pruneThrough(newest: number, now: number, bounds: HistoryBounds, byAgeToo: boolean, countRemoved: boolean): number {
    // Offsets are contiguous, so the count bound is arithmetic (no scan); a gap would only keep fewer.
    const byCount = newest - Math.max(0, bounds.maxEvents);
    let byAge = 0;
    if (byAgeToo) {
      this.agedAt = now;
      byAge =
        this.sql.exec<{ o: number | null }>('SELECT MAX("offset") AS o FROM events WHERE at <= ?', now - bounds.maxAgeMs).one().o ?? 0;
      // A source idle that long has nothing left in the history a repeat could duplicate.
      if (this.sql.exec("DELETE FROM sources WHERE at <= ?", now - bounds.maxAgeMs).rowsWritten > 0) this.sourceCount = undefined;
    }
    const through = Math.max(byCount, byAge);
    if (through <= this.prunedThrough()) return 0;
    const removed = countRemoved
      ? this.sql.exec<{ n: number }>('SELECT COUNT(*) AS n FROM events WHERE "offset" <= ?', through).one().n
      : 0;
    this.sql.exec('DELETE FROM events WHERE "offset" <= ?', through);
    this.meta.set("pruned_through", through);
    this.oldestCache = undefined;
    return removed;
  }

  /** Keeps a subscriber's filter that does not fit its attachment. */
  saveFilter(id: string, filter: EventFilter): void {
    this.sql.exec("INSERT OR REPLACE INTO subscriber_filters (id, filter) VALUES (?, ?)", id, JSON.stringify(filter));
  }

  deleteFilter(id: string): void {
    this.sql.exec("DELETE FROM subscriber_filters WHERE id = ?", id);
  }

  /** Every stored filter by subscriber id; rows not in `live` (their sockets went while the object slept) are deleted. */
  loadFilters(live: ReadonlySet<string>): Map<string, EventFilter> {
    const out = new Map<string, EventFilter>();
    const stale: string[] = [];
    for (const row of this.sql.exec<{ id: string; filter: string }>("SELECT id, filter FROM subscriber_filters")) {
      if (live.has(row.id)) out.set(row.id, JSON.parse(row.filter) as EventFilter);
      else stale.push(row.id);
    }
    for (const id of stale) this.deleteFilter(id);
    return out;
  }
}
