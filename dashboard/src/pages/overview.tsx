import { useEffect } from "react";
import { api, unwrap } from "../api/client";
import type { MetricsOverview } from "../api/types";
import { type ChartSeries, TimeChart } from "../components/time-chart";
import { Badge, ErrorNote, Section, Time, useCoalesced, useResource } from "../components/ui";
import { useFleetEvents, useRefetchGeneration } from "../live/hooks";
import { Link } from "../router";

/** Metrics are per minute: a poll this often keeps the current minute fresh without load. */
const METRICS_POLL_MS = 15_000;
/** Relevant events re-read the metrics at most this often (a busy fleet sends many). */
const METRICS_EVENT_MIN_MS = 2_000;
const ALERTS_EVENT_MIN_MS = 500;

const STATE_COLORS: Record<string, string> = {
  queued: "#5d6878",
  delivered: "#2458c6",
  running: "#7a4fd0",
  cancelling: "#a86300",
  succeeded: "#1d7a46",
  failed: "#b42318",
  timed_out: "#d9480f",
  expired: "#9aa3af",
  cancelled: "#c99a2e",
  dead_lettered: "#6b0f0f",
};

export function Overview() {
  const generation = useRefetchGeneration();
  const metrics = useResource(() => unwrap(api.GET("/api/metrics")), [generation]);
  const alerts = useResource(() => unwrap(api.GET("/api/alerts", { params: { query: { history_limit: 0 } } })), [generation]);
  // Re-read on a relevant event, coalesced; and on a timer, since the current minute keeps moving.
  const reloadMetricsSoon = useCoalesced(metrics.reload, METRICS_EVENT_MIN_MS);
  const reloadAlertsSoon = useCoalesced(alerts.reload, ALERTS_EVENT_MIN_MS);
  useEffect(() => {
    const t = setInterval(metrics.reload, METRICS_POLL_MS);
    return () => clearInterval(t);
  }, [metrics.reload]);
  useFleetEvents((e) => {
    if (e.type === "command.state" || e.type === "host.online" || e.type === "host.offline") reloadMetricsSoon();
    if (e.type.startsWith("alert.")) reloadAlertsSoon();
  });

  const m = metrics.data;
  // One registry count per status, from /api/metrics (re-read within seconds of a host event), so
  // the page costs the same at 10 hosts and at 10,000.
  const counts = m?.current.hosts;
  return (
    <>
      <h1>Fleet overview</h1>
      <div className="tiles">
        {(["online", "offline", "revoked"] as const).map((s) => (
          <Link key={s} href={`/hosts?status=${s}`} className={`tile tile-${s}`} aria-label={`${s} hosts`}>
            <span className="tile-value" data-testid={`count-${s}`}>
              {counts ? counts[s] : "…"}
            </span>
            <span className="tile-label">hosts {s}</span>
          </Link>
        ))}
        <div className="tile">
          <span className="tile-value" data-testid="queue-depth">
            {m ? Object.values(m.current.queue_depth).reduce((a, b) => a + b, 0) : "…"}
          </span>
          <span className="tile-label">commands queued or in flight</span>
        </div>
        <div className="tile">
          <span className="tile-value" data-testid="dead-letters">
            {m ? m.current.dead_letters : "…"}
          </span>
          <span className="tile-label">dead letters</span>
        </div>
        <Link href="/alerts" className="tile" aria-label="active alerts">
          <span className="tile-value" data-testid="active-alerts">
            {alerts.data ? alerts.data.active.filter((a) => a.state === "firing").length : "…"}
          </span>
          <span className="tile-label">alerts firing</span>
        </Link>
      </div>
      <ErrorNote error={metrics.error} />
      {m && <MetricsCharts m={m} />}
      <Section title="Active alerts">
        <ErrorNote error={alerts.error} />
        {alerts.data?.active.length === 0 && <p className="muted">Nothing firing.</p>}
        <ul className="alert-list">
          {alerts.data?.active.map((a) => (
            <li key={a.fingerprint}>
              <Badge value={a.state} /> <Link href="/alerts">{a.labels.alertname}</Link> {a.labels.hostname ?? ""}{" "}
              <span className="muted">
                since <Time at={a.fired_at ?? a.active_since} />
              </span>
            </li>
          ))}
        </ul>
      </Section>
    </>
  );
}

function MetricsCharts({ m }: { m: MetricsOverview }) {
  const times = m.series.map((p) => Date.parse(p.minute) / 1000);
  const states = Object.keys(STATE_COLORS).filter((s) => m.series.some((p) => (p.commands_by_state[s] ?? 0) > 0));
  const perState: ChartSeries[] = states.map((s) => ({
    label: s,
    color: STATE_COLORS[s]!,
    values: m.series.map((p) => p.commands_by_state[s] ?? 0),
  }));
  const latency: ChartSeries[] = [
    { label: "p50", color: "#2458c6", values: m.series.map((p) => p.delivery_p50_seconds), points: true },
    { label: "p99", color: "#b42318", values: m.series.map((p) => p.delivery_p99_seconds), points: true },
  ];
  const online: ChartSeries[] = [{ label: "online", color: "#1d7a46", values: m.series.map((p) => p.online_hosts) }];
  const p = (v: number | null) => (v === null ? "—" : `${v} s`);
  return (
    <>
      <Section title="Commands per state, last hour">
        {states.length === 0 ? (
          <p className="muted">No command changed state in the last hour.</p>
        ) : (
          <TimeChart label="Commands per state per minute" times={times} series={perState} />
        )}
      </Section>
      <Section title="Delivery latency, last hour">
        <p className="muted">
          send → ack over the hour: p50 {p(m.current.delivery_p50_seconds)}, p99 {p(m.current.delivery_p99_seconds)} (bucket upper bounds)
        </p>
        <TimeChart label="Delivery latency p50 and p99 per minute" times={times} series={latency} unit="s" />
      </Section>
      <Section title="Online hosts, last hour">
        <TimeChart label="Online hosts per minute" times={times} series={online} />
      </Section>
    </>
  );
}
