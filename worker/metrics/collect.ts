import type { MetricsMinute, MetricsOverview } from "../../schemas/index.ts";
import { auditConfig } from "../config.ts";
import type { Env } from "../env.ts";
import { auditLog, fleetEvents } from "../stubs.ts";
import type { MetricsSnapshot } from "./aggregate.ts";
import { M, RELAY_VERSION } from "./catalogue.ts";
import { histogramQuantile, LATENCY_BUCKETS_S } from "./contract.ts";
import { BUCKET_COUNT } from "./delta.ts";
import type { ExpositionInput } from "./exposition.ts";
import { labelValue, seriesKey, splitSeriesKey } from "./series.ts";
import { flushWorkerMetrics } from "./worker-recorder.ts";

/** What `/metrics` and `/api/metrics` read: FleetEvents' aggregate, the registry's host counts, the audit shards' record counts. */
export interface Collected {
  snapshot: MetricsSnapshot;
  hosts: { online: number; offline: number; revoked: number };
  auditRecords: number | null;
}

async function hostsByStatus(db: D1Database): Promise<Collected["hosts"]> {
  const { results } = await db
    .prepare(
      `SELECT CASE WHEN revoked_at IS NOT NULL THEN 'revoked' WHEN online = 1 THEN 'online' ELSE 'offline' END AS status,
              COUNT(*) AS n
       FROM hosts GROUP BY status`,
    )
    .all<{ status: "online" | "offline" | "revoked"; n: number }>();
  const out = { online: 0, offline: 0, revoked: 0 };
  for (const r of results) out[r.status] = r.n;
  return out;
}

/**
 * Records written over all audit shards (each shard's sequence head), or null when a shard cannot
 * say: the sample is left out rather than summed short, which Prometheus would read as a counter reset.
 */
async function auditRecords(env: Env): Promise<number | null> {
  try {
    const counts = await Promise.all(
      Array.from({ length: auditConfig(env).shards }, async (_, i) => (await auditLog(env, i).stats()).records),
    );
    return counts.reduce((a, b) => a + b, 0);
  } catch {
    return null;
  }
}

export async function collect(env: Env): Promise<Collected> {
  // What this isolate counted goes in first, so a scrape sees it.
  await flushWorkerMetrics(env, { force: true });
  const [snapshot, hosts, audit] = await Promise.all([fleetEvents(env).metricsSnapshot(), hostsByStatus(env.DB), auditRecords(env)]);
  return { snapshot, hosts, auditRecords: audit };
}

/** The samples `/metrics` renders: the aggregate plus the registry's, the audit shards' and build_info. */
export function expositionInput(c: Collected): ExpositionInput {
  const gauges = { ...c.snapshot.gauges };
  for (const [status, n] of Object.entries(c.hosts)) gauges[seriesKey(M.HOSTS, { status })] = n;
  gauges[seriesKey(M.BUILD_INFO, { version: RELAY_VERSION })] = 1;
  const counters = { ...c.snapshot.counters, ...(c.auditRecords === null ? {} : { [seriesKey(M.AUDIT_RECORDS)]: c.auditRecords }) };
  return { counters, gauges, histograms: c.snapshot.histograms };
}

const finite = (q: number | null): number | null =>
  q === null ? null : Number.isFinite(q) ? q : LATENCY_BUCKETS_S[LATENCY_BUCKETS_S.length - 1]!;

/** Sums the series of `name` by the value of `label`. */
function byLabel(values: Record<string, number>, name: string, label: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [key, v] of Object.entries(values)) {
    if (splitSeriesKey(key).name !== name) continue;
    const l = labelValue(key, label) ?? "";
    out[l] = (out[l] ?? 0) + v;
  }
  return out;
}

function sumOf(values: Record<string, number>, name: string): number {
  let n = 0;
  for (const [key, v] of Object.entries(values)) if (splitSeriesKey(key).name === name) n += v;
  return n;
}

/** `/api/metrics`: current values and the last hour by minute. */
export function overview(c: Collected): MetricsOverview {
  const { snapshot: s } = c;
  const hour = new Array<number>(BUCKET_COUNT).fill(0);
  const series: MetricsMinute[] = s.series.map((p) => {
    p.delivery_buckets.forEach((n, i) => {
      hour[i]! += n;
    });
    return {
      minute: new Date(p.minute).toISOString(),
      commands_by_state: p.commands_by_state,
      deliveries: p.delivery_buckets.reduce((a, b) => a + b, 0),
      delivery_p50_seconds: finite(histogramQuantile(p.delivery_buckets, 0.5)),
      delivery_p99_seconds: finite(histogramQuantile(p.delivery_buckets, 0.99)),
      online_hosts: Math.max(0, Math.round(p.online_hosts)),
      dead_letters_new: p.dead_letters_new,
    };
  });
  return {
    at: new Date(s.at).toISOString(),
    current: {
      hosts: c.hosts,
      agents_connected: Math.max(0, Math.round(s.gauges[seriesKey(M.AGENTS_CONNECTED)] ?? 0)),
      queue_depth: byLabel(s.gauges, M.QUEUE_DEPTH, "state"),
      dead_letters: Math.max(0, Math.round(s.gauges[seriesKey(M.DEAD_LETTERS)] ?? 0)),
      commands_enqueued_total: sumOf(s.counters, M.COMMANDS_ENQUEUED),
      commands_finished_total: byLabel(s.counters, M.COMMANDS_FINISHED, "state"),
      delivery_p50_seconds: finite(histogramQuantile(hour, 0.5)),
      delivery_p99_seconds: finite(histogramQuantile(hour, 0.99)),
      event_subscribers: s.gauges[seriesKey(M.EVENT_SUBSCRIBERS)] ?? 0,
      jobs_by_state: byLabel(s.gauges, M.JOBS, "state"),
    },
    series,
  };
}
