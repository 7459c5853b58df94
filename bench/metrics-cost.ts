/**
 * What the metrics cost per command, read from the relay's own `/metrics` before and after a stretch
 * of the benchmark: publish calls to FleetEvents, event rows and metrics rows (each outbox row is one
 * event or one coalesced metrics delta) per finished command, and how many metrics rows had to travel
 * alone (an RPC of their own) instead of riding in an event publish. "Before metrics" is the same
 * run without the metrics rows: the events and their publishes are unchanged by them.
 */

export type Counters = Map<string, number>;

/** Sample lines of a Prometheus text exposition, by series (name and labels as written). */
export async function scrapeCounters(url: string, token: string): Promise<Counters> {
  const res = await fetch(`${url}/metrics`, { headers: { authorization: `Bearer ${token}` } });
  if (res.status !== 200) throw new Error(`/metrics: ${res.status} ${await res.text()}`);
  const out: Counters = new Map();
  for (const line of (await res.text()).split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const at = line.lastIndexOf(" ");
    out.set(line.slice(0, at), Number(line.slice(at + 1)));
  }
  return out;
}

function sum(c: Counters, name: string, filter: (series: string) => boolean = () => true): number {
  let n = 0;
  for (const [series, v] of c) if ((series === name || series.startsWith(`${name}{`)) && filter(series)) n += v;
  return n;
}

export interface MetricsCost {
  commands: number;
  publish_calls_per_command: number;
  event_rows_per_command: number;
  metrics_rows_per_command: number;
  metrics_rows_alone_per_command: number;
  outbox_rows_per_command_before_metrics: number;
  outbox_rows_per_command_with_metrics: number;
  rpcs_per_command_before_metrics: number;
  rpcs_per_command_with_metrics: number;
}

export function metricsCost(before: Counters, after: Counters): MetricsCost {
  const d = (name: string, filter?: (s: string) => boolean) => sum(after, name, filter) - sum(before, name, filter);
  const commands = d("fleet_relay_commands_finished_total");
  const per = (n: number) => (commands > 0 ? Math.round((n / commands) * 1000) / 1000 : 0);
  const publishes = d("fleet_relay_event_publish_calls_total");
  const events = d("fleet_relay_events_published_total");
  const alone = d("fleet_relay_metrics_deltas_total", (s) => s.includes('path="alone"'));
  const withEvents = d("fleet_relay_metrics_deltas_total", (s) => s.includes('path="with_events"'));
  return {
    commands,
    publish_calls_per_command: per(publishes),
    event_rows_per_command: per(events),
    metrics_rows_per_command: per(alone + withEvents),
    metrics_rows_alone_per_command: per(alone),
    outbox_rows_per_command_before_metrics: per(events),
    outbox_rows_per_command_with_metrics: per(events + alone + withEvents),
    rpcs_per_command_before_metrics: per(publishes - alone),
    rpcs_per_command_with_metrics: per(publishes),
  };
}
