import type { JobState } from "../../schemas/index.ts";
import type { JobStateRecord } from "./contract.ts";
import { BUCKET_COUNT } from "./delta.ts";
import { splitSeriesKey } from "./series.ts";

/** A minute as stored: contributions plus the online total at its end (`online`) and before its first change (`prev`). */
export interface MinuteRow {
  states: Record<string, number>;
  delivery: number[];
  dead_letters_new: number;
  online: number | null;
  prev: number | null;
}

export interface HistogramRow {
  buckets: number[];
  sum: number;
  count: number;
}

/** Counter and histogram series kept (each); past it new series are dropped and counted, so a bug cannot grow the tables without bound. */
export const MAX_SERIES = 5_000;
/** Gauge rows (sources × series) kept; the longest idle go first. */
export const MAX_GAUGE_ROWS = 1_000_000;
/** The row bounds are checked once per this many new rows (a COUNT per new row would make a growing fleet quadratic). */
const CAP_CHECK_EVERY = 1_000;
/** Metrics sources remembered for exactly-once (one per host, job or Worker isolate); the longest idle go first. */
export const MAX_METRIC_SOURCES = 100_000;
/** Jobs tracked; the oldest final ones go first. */
export const MAX_JOBS = 10_000;
/** Final jobs count in the jobs gauge this long after they ended. */
export const FINAL_JOB_KEEP_MS = 24 * 60 * 60 * 1000;

export const FINAL_JOB_STATES: ReadonlySet<string> = new Set<JobState>(["completed", "stopped", "cancelled"]);

const emptyMinute = (): MinuteRow => ({
  states: {},
  delivery: new Array<number>(BUCKET_COUNT).fill(0),
  dead_letters_new: 0,
  online: null,
  prev: null,
});

/**
 * Owns FleetEvents' metric tables (migration 3 in fleet-events/storage-schema.ts). Every method is
 * synchronous, so a publish's events and its metrics are stored in one step.
 */
export class MetricsStore {
  readonly #sql: SqlStorage;
  /** New rows since the last bound check, per table: the bounds are checked every CAP_CHECK_EVERY new rows, not on each. */
  readonly #newRows = new Map<string, number>();

  constructor(sql: SqlStorage) {
    this.#sql = sql;
  }

  /** Whether delta `seq` of `source` is new (and remembers it). Sources send in order, so one number each suffices. */
  acceptFromSource(source: string, seq: number, now: number): boolean {
    const seen = this.#sql.exec<{ seq: number }>("SELECT seq FROM metric_sources WHERE source = ?", source).toArray()[0];
    if (seen !== undefined && seq <= seen.seq) return false;
    this.#sql.exec(
      "INSERT INTO metric_sources (source, seq, at) VALUES (?, ?, ?) ON CONFLICT (source) DO UPDATE SET seq = excluded.seq, at = excluded.at",
      source,
      seq,
      now,
    );
    if (seen === undefined && this.#checkDue("metric_sources")) this.#cap("metric_sources", "source", MAX_METRIC_SOURCES);
    return true;
  }

  /** Forgets sources idle since `before` (their retries are long over). */
  pruneSources(before: number): void {
    this.#sql.exec("DELETE FROM metric_sources WHERE at <= ?", before);
  }

  #checkDue(table: string): boolean {
    const n = (this.#newRows.get(table) ?? 0) + 1;
    this.#newRows.set(table, n % CAP_CHECK_EVERY);
    return n >= CAP_CHECK_EVERY;
  }

  #cap(table: string, keyColumn: string, max: number): void {
    const n = this.#sql.exec<{ n: number }>(`SELECT COUNT(*) AS n FROM ${table}`).one().n;
    if (n <= max) return;
    this.#sql.exec(`DELETE FROM ${table} WHERE ${keyColumn} IN (SELECT ${keyColumn} FROM ${table} ORDER BY at LIMIT ?)`, n - max);
  }

  #seriesRoom(table: string): boolean {
    return this.#sql.exec<{ n: number }>(`SELECT COUNT(*) AS n FROM ${table}`).one().n < MAX_SERIES;
  }

  /** Adds to a counter; false when it is a new series and the limit is reached (nothing stored). */
  addCounter(key: string, by: number): boolean {
    if (this.#sql.exec("UPDATE metric_counters SET value = value + ? WHERE key = ?", by, key).rowsWritten > 0) return true;
    if (!this.#seriesRoom("metric_counters")) return false;
    this.#sql.exec("INSERT INTO metric_counters (key, value) VALUES (?, ?)", key, by);
    return true;
  }

  counter(key: string): number {
    return this.#sql.exec<{ value: number }>("SELECT value FROM metric_counters WHERE key = ?", key).toArray()[0]?.value ?? 0;
  }

  counters(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const r of this.#sql.exec<{ key: string; value: number }>("SELECT key, value FROM metric_counters")) out[r.key] = r.value;
    return out;
  }

  addHistogram(key: string, buckets: readonly number[], sum: number): boolean {
    const row = this.#sql
      .exec<{ buckets: string; sum: number }>("SELECT buckets, sum FROM metric_histograms WHERE key = ?", key)
      .toArray()[0];
    if (!row && !this.#seriesRoom("metric_histograms")) return false;
    const merged = row ? (JSON.parse(row.buckets) as number[]) : new Array<number>(BUCKET_COUNT).fill(0);
    for (let i = 0; i < BUCKET_COUNT; i++) merged[i] = (merged[i] ?? 0) + (buckets[i] ?? 0);
    const count = merged.reduce((a, b) => a + b, 0);
    this.#sql.exec(
      "INSERT INTO metric_histograms (key, buckets, sum, count) VALUES (?, ?, ?, ?) ON CONFLICT (key) DO UPDATE SET buckets = excluded.buckets, sum = excluded.sum, count = excluded.count",
      key,
      JSON.stringify(merged),
      (row?.sum ?? 0) + sum,
      count,
    );
    return true;
  }

  histograms(): Record<string, HistogramRow> {
    const out: Record<string, HistogramRow> = {};
    for (const r of this.#sql.exec<{ key: string; buckets: string; sum: number; count: number }>("SELECT * FROM metric_histograms")) {
      out[r.key] = { buckets: JSON.parse(r.buckets) as number[], sum: r.sum, count: r.count };
    }
    return out;
  }

  /** Sets `source`'s value of a gauge; the total moves by the difference. */
  setGauge(source: string, key: string, value: number, now: number): void {
    const old = this.#sql.exec<{ value: number }>("SELECT value FROM metric_gauges WHERE source = ? AND key = ?", source, key).toArray()[0];
    // A source's first report is mostly zeros (a new host's empty queue): an absent row already reads 0.
    if (old === undefined ? value === 0 : old.value === value) return;
    this.#sql.exec(
      "INSERT INTO metric_gauges (source, key, value, at) VALUES (?, ?, ?, ?) ON CONFLICT (source, key) DO UPDATE SET value = excluded.value, at = excluded.at",
      source,
      key,
      value,
      now,
    );
    this.#sql.exec(
      "INSERT INTO metric_gauge_totals (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = value + excluded.value",
      key,
      value - (old?.value ?? 0),
    );
    if (old === undefined && this.#checkDue("metric_gauges")) this.#capGauges();
  }

  /** Rare (a new source's first gauges past the bound): the longest idle rows go, and leave the totals with them. */
  #capGauges(): void {
    const n = this.#sql.exec<{ n: number }>("SELECT COUNT(*) AS n FROM metric_gauges").one().n;
    if (n <= MAX_GAUGE_ROWS) return;
    const victims = this.#sql
      .exec<{ source: string; key: string; value: number }>(
        "SELECT source, key, value FROM metric_gauges ORDER BY at LIMIT ?",
        n - MAX_GAUGE_ROWS,
      )
      .toArray();
    for (const v of victims) {
      this.#sql.exec("DELETE FROM metric_gauges WHERE source = ? AND key = ?", v.source, v.key);
      this.#sql.exec("UPDATE metric_gauge_totals SET value = value - ? WHERE key = ?", v.value, v.key);
    }
  }

  /**
   * Each source's sum of the series of gauge `name` (e.g. a host's queue depth over its states), for
   * at most a page of sources: one indexed lookup per source, never a scan of the fleet.
   */
  sourceGaugeSums(sources: readonly string[], name: string): Record<string, number> {
    const out: Record<string, number> = {};
    for (const source of sources) {
      let sum = 0;
      for (const r of this.#sql.exec<{ key: string; value: number }>("SELECT key, value FROM metric_gauges WHERE source = ?", source)) {
        if (splitSeriesKey(r.key).name === name) sum += r.value;
      }
      out[source] = sum;
    }
    return out;
  }

  gaugeTotal(key: string): number {
    return this.#sql.exec<{ value: number }>("SELECT value FROM metric_gauge_totals WHERE key = ?", key).toArray()[0]?.value ?? 0;
  }

  gaugeTotals(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const r of this.#sql.exec<{ key: string; value: number }>("SELECT key, value FROM metric_gauge_totals")) out[r.key] = r.value;
    return out;
  }

  minute(minute: number): MinuteRow | null {
    const row = this.#sql.exec<{ body: string }>("SELECT body FROM metric_minutes WHERE minute = ?", minute).toArray()[0];
    return row ? (JSON.parse(row.body) as MinuteRow) : null;
  }

  /** Reads, changes and writes back one minute's row. */
  updateMinute(minute: number, change: (m: MinuteRow) => void): void {
    const m = this.minute(minute) ?? emptyMinute();
    change(m);
    this.#sql.exec(
      "INSERT INTO metric_minutes (minute, body) VALUES (?, ?) ON CONFLICT (minute) DO UPDATE SET body = excluded.body",
      minute,
      JSON.stringify(m),
    );
  }

  /** Minutes from `from` on, oldest first. */
  minutesFrom(from: number): Map<number, MinuteRow> {
    const out = new Map<number, MinuteRow>();
    for (const r of this.#sql.exec<{ minute: number; body: string }>(
      "SELECT minute, body FROM metric_minutes WHERE minute >= ? ORDER BY minute",
      from,
    )) {
      out.set(r.minute, JSON.parse(r.body) as MinuteRow);
    }
    return out;
  }

  pruneMinutes(before: number): void {
    this.#sql.exec("DELETE FROM metric_minutes WHERE minute < ?", before);
  }

  /** Records a job's reported state; returns true when this report is the job's first final state. */
  setJobState(jobId: string, state: string, now: number): boolean {
    const final = FINAL_JOB_STATES.has(state);
    const old = this.#sql.exec<{ final: number }>("SELECT final FROM metric_jobs WHERE job_id = ?", jobId).toArray()[0];
    // A final state is the last word: a late progress report cannot revive the job.
    if (old?.final) return false;
    this.#sql.exec(
      "INSERT INTO metric_jobs (job_id, state, at, final) VALUES (?, ?, ?, ?) ON CONFLICT (job_id) DO UPDATE SET state = excluded.state, at = excluded.at, final = excluded.final",
      jobId,
      state,
      now,
      final ? 1 : 0,
    );
    if (old === undefined) this.#capJobs();
    return final;
  }

  #capJobs(): void {
    const n = this.#sql.exec<{ n: number }>("SELECT COUNT(*) AS n FROM metric_jobs").one().n;
    if (n <= MAX_JOBS) return;
    this.#sql.exec(
      "DELETE FROM metric_jobs WHERE job_id IN (SELECT job_id FROM metric_jobs ORDER BY final DESC, at LIMIT ?)",
      n - MAX_JOBS,
    );
  }

  pruneJobs(now: number): void {
    this.#sql.exec("DELETE FROM metric_jobs WHERE final = 1 AND at <= ?", now - FINAL_JOB_KEEP_MS);
  }

  jobsByState(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const r of this.#sql.exec<{ state: string; n: number }>("SELECT state, COUNT(*) AS n FROM metric_jobs GROUP BY state")) {
      out[r.state] = r.n;
    }
    return out;
  }

  finalJobsSince(since: number): JobStateRecord[] {
    return this.#sql
      .exec<{ job_id: string; state: string; at: number }>(
        "SELECT job_id, state, at FROM metric_jobs WHERE final = 1 AND at >= ? ORDER BY at, job_id",
        since,
      )
      .toArray()
      .map((r) => ({ job_id: r.job_id, state: r.state as JobState, at: r.at }));
  }
}
