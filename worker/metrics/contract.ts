import type { JobState } from "../../schemas/index.ts";

/**
 * What the metrics pipeline hands between objects. Publishers (HostRelay, the Worker's isolates,
 * AuditLog, Alerting) send deltas; FleetEvents aggregates them; `/metrics`, `/api/metrics` and the
 * Alerting object read the aggregate. No per-host labels: cardinality stays bounded by the fleet's
 * command types, states, routes and close codes, never by its size.
 */

export type Labels = Readonly<Record<string, string>>;

/** Upper bounds (seconds) of the latency histograms' buckets; +Inf is implied. Shared by every histogram. */
export const LATENCY_BUCKETS_S = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600] as const;

/** A minute of the fleet, for `/api/metrics` and alert windows. `minute` is its start (epoch ms). */
export interface MinutePoint {
  minute: number;
  /** Commands that entered each state during the minute. */
  commands_by_state: Record<string, number>;
  /** send → ack histogram counts for the minute, one per LATENCY_BUCKETS_S bound plus +Inf. */
  delivery_buckets: number[];
  /** Hosts online at the end of the minute (or now, for the current one). */
  online_hosts: number;
  /** Dead letters created during the minute. */
  dead_letters_new: number;
}

/** A job's state as last reported by its JobCoordinator, with when it was reported. */
export interface JobStateRecord {
  job_id: string;
  state: JobState;
  at: number;
}

/** What the Alerting object evaluates rules over (besides the registry in D1). */
export interface MetricsSummary {
  at: number;
  /** The last 60 minutes or more, oldest first; the last entry is the current, partial minute. */
  series: MinutePoint[];
  dead_letters_total: number;
  /** Jobs that reached a final state (completed, stopped, cancelled) in the series' span, oldest first. */
  recent_final_jobs: JobStateRecord[];
}

/** The value at quantile `q` (0..1) of a histogram in LATENCY_BUCKETS_S buckets (upper bound of its bucket); null when empty. */
export function histogramQuantile(counts: readonly number[], q: number): number | null {
  const total = counts.reduce((a, b) => a + b, 0);
  if (total === 0) return null;
  const rank = q * total;
  let seen = 0;
  for (let i = 0; i < counts.length; i++) {
    seen += counts[i] ?? 0;
    if (seen >= rank) return i < LATENCY_BUCKETS_S.length ? LATENCY_BUCKETS_S[i]! : Number.POSITIVE_INFINITY;
  }
  return Number.POSITIVE_INFINITY;
}
