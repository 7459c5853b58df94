import type { Labels } from "./contract.ts";

/**
 * A series key is how one time series is named everywhere in the pipeline (deltas, FleetEvents'
 * tables, Analytics Engine): the metric name followed by its labels exactly as the Prometheus text
 * format writes them, sorted by label name, e.g. `fleet_relay_commands_enqueued_total{command_type="system_info"}`.
 * One canonical spelling per series, so merging deltas is a string-keyed sum and rendering needs no re-escaping.
 */

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
/** Longest label value kept; longer ones are cut (a label is a category, never free text). */
export const MAX_LABEL_VALUE_CHARS = 128;

/** The text format's escaping of a label value: backslash, double quote and line feed. */
export function escapeLabelValue(value: string): string {
  return value.replaceAll("\\", "\\\\").replaceAll('"', '\\"').replaceAll("\n", "\\n");
}

/** `name{a="x",b="y"}` (just `name` without labels). Throws on an invalid metric or label name: those are ours, never input. */
export function seriesKey(name: string, labels: Labels = {}): string {
  if (!NAME.test(name)) throw new Error(`invalid metric name ${name}`);
  const names = Object.keys(labels).sort();
  if (names.length === 0) return name;
  const parts = names.map((k) => {
    if (!LABEL_NAME.test(k) || k === "le") throw new Error(`invalid label name ${k}`);
    return `${k}="${escapeLabelValue(String(labels[k]).slice(0, MAX_LABEL_VALUE_CHARS))}"`;
  });
  return `${name}{${parts.join(",")}}`;
}

/** The metric name and the label list (without braces, "" for none) of a series key. */
export function splitSeriesKey(key: string): { name: string; labels: string } {
  const brace = key.indexOf("{");
  if (brace < 0) return { name: key, labels: "" };
  return { name: key.slice(0, brace), labels: key.slice(brace + 1, -1) };
}

/**
 * Whether `key` is a well-formed series key: a metric name and, optionally, a brace-enclosed list of
 * `name="escaped value"` pairs. Checked where keys arrive from other objects, before they are stored.
 */
export const SERIES_KEY =
  /^[a-zA-Z_:][a-zA-Z0-9_:]*(\{[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*"(,[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*")*\})?$/;

/** The value of label `label` in a series key, unescaped; undefined when absent. */
export function labelValue(key: string, label: string): string | undefined {
  const { labels } = splitSeriesKey(key);
  const re = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;
  for (const m of labels.matchAll(re)) {
    if (m[1] === label) return m[2]!.replace(/\\(.)/g, (_, c: string) => (c === "n" ? "\n" : c));
  }
  return undefined;
}
