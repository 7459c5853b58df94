import type { FleetEventInput } from "../../schemas/index.ts";
import { M } from "./catalogue.ts";
import type { Labels, MetricsSummary, MinutePoint } from "./contract.ts";
import { BUCKET_COUNT, type MetricsDelta, MINUTE_MS, minuteOf, SourcedDeltaSchema } from "./delta.ts";
import type { HistogramRow, MetricsStore } from "./metrics-store.ts";
import { seriesKey, splitSeriesKey } from "./series.ts";

/**
 * The fleet's metrics, aggregated inside FleetEvents (the one object every publisher already
 * talks to): deltas from HostRelays (riding on their event publishes), from the Worker's isolates
 * and from other objects (`recordMetrics`), and FleetEvents' own counts. Each delta is applied
 * once per (source, number); counters also go to Workers Analytics Engine when it is bound.
 */

/** The per-minute series spans this many whole minutes before the current one. */
export const SERIES_MINUTES = 60;
/** Minute rows kept: the series plus one, so a minute that just closed is still whole. */
const KEEP_MINUTES = SERIES_MINUTES + 2;
/** Contributions dated further ahead than this (clock skew between objects) are not believed. */
const FUTURE_SLACK_MS = 5 * MINUTE_MS;
/** Analytics Engine takes at most 250 data points per invocation; leave room for anything else. */
const ANALYTICS_POINTS_PER_CALL = 200;

export interface MetricsContext {
  metrics: MetricsStore;
  analytics?: AnalyticsEngineDataset | undefined;
  /** The minute the last prune ran in (pruning runs once a minute). */
  prunedMinute: number;
  /**
   * Counters of FleetEvents' own load, kept in memory only (a storage write per publish to count
   * publishes would be the very cost they measure); they restart from 0 with the object, which
   * Prometheus' rate() reads as a counter reset.
   */
  volatile: Map<string, number>;
}

/** Adds to an in-memory counter (see MetricsContext.volatile). */
export function countVolatile(mc: MetricsContext, name: string, labels: Labels | undefined, by = 1): void {
  const key = seriesKey(name, labels);
  mc.volatile.set(key, (mc.volatile.get(key) ?? 0) + by);
}

/** The whole aggregate, as `/metrics` and `/api/metrics` read it. */
export interface MetricsSnapshot {
  at: number;
  counters: Record<string, number>;
  histograms: Record<string, HistogramRow>;
  /** Summed per-source gauges, and FleetEvents' own (subscribers, jobs by state). */
  gauges: Record<string, number>;
  /** The last SERIES_MINUTES minutes and the current one, oldest first. */
  series: MinutePoint[];
}

/** Data points left for this RPC call (one budget per call). */
export class AnalyticsBudget {
  left = ANALYTICS_POINTS_PER_CALL;
}

function writeAnalytics(mc: MetricsContext, budget: AnalyticsBudget, key: string, value: number): void {
  if (!mc.analytics || budget.left <= 0) return;
  budget.left--;
  const { name, labels } = splitSeriesKey(key);
  try {
    mc.analytics.writeDataPoint({ indexes: [name], blobs: [name, labels], doubles: [value] });
  } catch (err) {
    console.error(JSON.stringify({ level: "warn", msg: "analytics engine write failed", error: String(err) }));
  }
}

function addCounter(mc: MetricsContext, budget: AnalyticsBudget, key: string, by: number): void {
  if (by === 0) return;
  if (mc.metrics.addCounter(key, by)) writeAnalytics(mc, budget, key, by);
  else mc.metrics.addCounter(M.SERIES_DROPPED, 1);
}

/** Validates and applies one numbered delta; a repeat (a retried publish) or an invalid one changes nothing. */
export function applySourced(mc: MetricsContext, input: unknown, now: number, budget: AnalyticsBudget): boolean {
  const parsed = SourcedDeltaSchema.safeParse(input);
  if (!parsed.success) {
    const why = parsed.error.issues.map((i) => `${i.path.join(".") || "(root)"}: ${i.message}`).join("; ");
    // Refusing would make the publisher retry it forever; it is a bug to log, not a state to keep.
    console.error(JSON.stringify({ level: "error", msg: "dropping an invalid metrics delta", why: why.slice(0, 500) }));
    return false;
  }
  const { source, seq, delta } = parsed.data;
  // Gauges are absolute, so applying them again is harmless; a publisher sends only the ones that
  // changed since its last successful send, which may be the retry of a delta applied already.
  applyGauges(mc, source, delta, now);
  if (!mc.metrics.acceptFromSource(source, seq, now)) return false;
  applyIncrements(mc, delta, now, budget);
  return true;
}

function applyGauges(mc: MetricsContext, source: string, delta: MetricsDelta, now: number): void {
  if (!delta.gauges) return;
  const store = mc.metrics;
  const onlineKey = seriesKey(M.AGENTS_CONNECTED);
  const onlineBefore = store.gaugeTotal(onlineKey);
  for (const [key, value] of Object.entries(delta.gauges)) store.setGauge(source, key, value, now);
  const onlineAfter = store.gaugeTotal(onlineKey);
  if (onlineAfter !== onlineBefore) {
    store.updateMinute(minuteOf(now), (row) => {
      row.prev ??= onlineBefore;
      row.online = onlineAfter;
    });
  }
}

function applyIncrements(mc: MetricsContext, delta: MetricsDelta, now: number, budget: AnalyticsBudget): void {
  const store = mc.metrics;
  for (const [key, by] of Object.entries(delta.counters ?? {})) addCounter(mc, budget, key, by);
  for (const [key, h] of Object.entries(delta.histograms ?? {})) {
    if (!store.addHistogram(key, h.buckets, h.sum)) store.addCounter(M.SERIES_DROPPED, 1);
  }
  const oldest = minuteOf(now) - KEEP_MINUTES * MINUTE_MS;
  for (const [at, m] of Object.entries(delta.minutes ?? {})) {
    const minute = minuteOf(Number(at));
    if (minute < oldest || minute > now + FUTURE_SLACK_MS) continue;
    store.updateMinute(minute, (row) => {
      for (const [state, n] of Object.entries(m.states ?? {})) row.states[state] = (row.states[state] ?? 0) + n;
      m.delivery?.forEach((n, i) => {
        row.delivery[i] = (row.delivery[i] ?? 0) + n;
      });
      row.dead_letters_new += m.dead_letters_new ?? 0;
    });
  }
  prune(mc, now);
}

/** Once per minute: old minutes, idle sources, long-ended jobs. */
function prune(mc: MetricsContext, now: number): void {
  const minute = minuteOf(now);
  if (minute === mc.prunedMinute) return;
  mc.prunedMinute = minute;
  mc.metrics.pruneMinutes(minute - KEEP_MINUTES * MINUTE_MS);
  mc.metrics.pruneJobs(now);
  mc.metrics.pruneSources(now - 24 * 60 * 60 * 1000);
}

/** A count FleetEvents makes itself (events published, refetches). */
export function countHere(mc: MetricsContext, name: string, labels: Labels | undefined, by: number, budget: AnalyticsBudget): void {
  addCounter(mc, budget, seriesKey(name, labels), by);
}

/** Follows a job's state from its job.progress events. */
export function trackJobProgress(mc: MetricsContext, event: FleetEventInput, now: number, budget: AnalyticsBudget): void {
  if (event.type !== "job.progress" || !event.job_id || !event.state) return;
  if (mc.metrics.setJobState(event.job_id, event.state, now)) countHere(mc, M.JOBS_FINISHED, { state: event.state }, 1, budget);
}

/** The last SERIES_MINUTES whole minutes and the current one, oldest first; quiet minutes are zeros, online carried over. */
export function minuteSeries(mc: MetricsContext, now: number): MinutePoint[] {
  const store = mc.metrics;
  const current = minuteOf(now);
  const start = current - SERIES_MINUTES * MINUTE_MS;
  const rows = store.minutesFrom(start);
  // Before the first change in the window the total was that change's `prev`; with none, it is the total now.
  const first = [...rows.values()].find((r) => r.prev !== null);
  let online = first?.prev ?? store.gaugeTotal(seriesKey(M.AGENTS_CONNECTED));
  const points: MinutePoint[] = [];
  for (let minute = start; minute <= current; minute += MINUTE_MS) {
    const row = rows.get(minute);
    if (row?.online !== null && row?.online !== undefined) online = row.online;
    points.push({
      minute,
      commands_by_state: { ...(row?.states ?? {}) },
      delivery_buckets: row ? [...row.delivery] : new Array<number>(BUCKET_COUNT).fill(0),
      online_hosts: online,
      dead_letters_new: row?.dead_letters_new ?? 0,
    });
  }
  return points;
}

export function snapshot(mc: MetricsContext, subscribers: number, now: number): MetricsSnapshot {
  const gauges = mc.metrics.gaugeTotals();
  gauges[seriesKey(M.EVENT_SUBSCRIBERS)] = subscribers;
  for (const [state, n] of Object.entries(mc.metrics.jobsByState())) gauges[seriesKey(M.JOBS, { state })] = n;
  const counters = mc.metrics.counters();
  for (const [key, n] of mc.volatile) counters[key] = (counters[key] ?? 0) + n;
  return { at: now, counters, histograms: mc.metrics.histograms(), gauges, series: minuteSeries(mc, now) };
}

export function summary(mc: MetricsContext, now: number): MetricsSummary {
  const series = minuteSeries(mc, now);
  return {
    at: now,
    series,
    dead_letters_total: mc.metrics.counter(seriesKey(M.DEAD_LETTERS_TOTAL)),
    recent_final_jobs: mc.metrics.finalJobsSince(series[0]!.minute),
  };
}
