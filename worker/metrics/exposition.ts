import { CATALOGUE, type MetricType } from "./catalogue.ts";
import { LATENCY_BUCKETS_S } from "./contract.ts";
import type { HistogramRow } from "./metrics-store.ts";
import { splitSeriesKey } from "./series.ts";

/** The Prometheus text exposition format, version 0.0.4. */
export const EXPOSITION_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

export interface ExpositionInput {
  counters: Record<string, number>;
  gauges: Record<string, number>;
  histograms: Record<string, HistogramRow>;
}

function formatValue(v: number): string {
  if (Number.isNaN(v)) return "NaN";
  if (v === Number.POSITIVE_INFINITY) return "+Inf";
  if (v === Number.NEGATIVE_INFINITY) return "-Inf";
  return String(v);
}

/** HELP text escaping: backslash and line feed. */
function escapeHelp(text: string): string {
  return text.replaceAll("\\", "\\\\").replaceAll("\n", "\\n");
}

function withLabel(labels: string, extra: string): string {
  return `{${labels ? `${labels},` : ""}${extra}}`;
}

interface Family {
  type: MetricType;
  series: [labels: string, value: number | HistogramRow][];
}

/**
 * Renders every catalogued metric (`# HELP`, `# TYPE`, then its series sorted by labels) and any
 * other series given. A catalogued metric without labels and without samples is written as 0, so
 * a scrape always sees it; a labelled one without samples has only its HELP and TYPE lines.
 */
export function renderExposition(input: ExpositionInput): string {
  const families = new Map<string, Family>();
  const add = (key: string, type: MetricType, value: number | HistogramRow) => {
    const { name, labels } = splitSeriesKey(key);
    let f = families.get(name);
    if (!f) {
      f = { type: CATALOGUE[name]?.type ?? type, series: [] };
      families.set(name, f);
    }
    f.series.push([labels, value]);
  };
  for (const [k, v] of Object.entries(input.counters)) add(k, "counter", v);
  for (const [k, v] of Object.entries(input.gauges)) add(k, "gauge", v);
  for (const [k, v] of Object.entries(input.histograms)) add(k, "histogram", v);

  const lines: string[] = [];
  const names = [...Object.keys(CATALOGUE), ...[...families.keys()].filter((n) => !(n in CATALOGUE)).sort()];
  for (const name of names) {
    const info = CATALOGUE[name];
    const family = families.get(name);
    const type = info?.type ?? family!.type;
    lines.push(`# HELP ${name} ${escapeHelp(info?.help ?? "Fleet relay metric.")}`);
    lines.push(`# TYPE ${name} ${type}`);
    const series = family?.series ?? [];
    if (series.length === 0 && info && info.labels.length === 0) {
      series.push(["", type === "histogram" ? { buckets: new Array<number>(LATENCY_BUCKETS_S.length + 1).fill(0), sum: 0, count: 0 } : 0]);
    }
    series.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
    for (const [labels, value] of series) {
      if (typeof value === "number") {
        lines.push(`${name}${labels ? `{${labels}}` : ""} ${formatValue(value)}`);
        continue;
      }
      let cumulative = 0;
      LATENCY_BUCKETS_S.forEach((le, i) => {
        cumulative += value.buckets[i] ?? 0;
        lines.push(`${name}_bucket${withLabel(labels, `le="${le}"`)} ${cumulative}`);
      });
      cumulative += value.buckets[LATENCY_BUCKETS_S.length] ?? 0;
      lines.push(`${name}_bucket${withLabel(labels, 'le="+Inf"')} ${cumulative}`);
      lines.push(`${name}_sum${labels ? `{${labels}}` : ""} ${formatValue(value.sum)}`);
      lines.push(`${name}_count${labels ? `{${labels}}` : ""} ${cumulative}`);
    }
  }
  return `${lines.join("\n")}\n`;
}
