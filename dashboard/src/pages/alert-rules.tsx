/** Alert rule management (admin): the five kinds, each with its own fields; the API validates, its field errors show next to the fields. */
import { type FormEvent, useState } from "react";
import { ApiError, api, unwrap } from "../api/client";
import { ALERT_RULE_KINDS, type AlertRule, type AlertRuleInput, type AlertRuleKind } from "../api/types";
import { EditableList, type FormProps } from "../components/editable-list";
import { ErrorNote, FieldError } from "../components/ui";
import { LabelList } from "./alerts";

const KIND_HELP: Record<AlertRuleKind, string> = {
  host_offline: "a host offline longer than “for” (one alert per host)",
  hosts_offline_ratio: "more than a share of the hosts offline",
  dead_letters: "any command dead-lettered within the window",
  delivery_latency_p99: "p99 of send → ack over the window above a threshold",
  job_stopped: "a job stopped by max_errors within the window (one alert per job)",
};

interface Draft {
  kind: AlertRuleKind;
  name: string;
  for: string;
  repeat_interval: string;
  enabled: boolean;
  tags: string;
  match: "any" | "all";
  threshold_percent: string;
  window: string;
  threshold_seconds: string;
  labels: string;
  annotations: string;
}

const EMPTY: Draft = {
  kind: "host_offline",
  name: "",
  for: "5m",
  repeat_interval: "4h",
  enabled: true,
  tags: "",
  match: "any",
  threshold_percent: "",
  window: "5m",
  threshold_seconds: "",
  labels: "",
  annotations: "",
};

const pairsText = (r: Record<string, string> | undefined) =>
  Object.entries(r ?? {})
    .map(([k, v]) => `${k}=${v}`)
    .join("\n");

function draftOf(rule: AlertRule): Draft {
  return {
    ...EMPTY,
    kind: rule.kind,
    name: rule.name,
    for: rule.for,
    repeat_interval: rule.repeat_interval,
    enabled: rule.enabled,
    tags: "selector" in rule && rule.selector ? rule.selector.tags.join(" ") : "",
    match: "selector" in rule && rule.selector ? rule.selector.match : "any",
    threshold_percent: "threshold_percent" in rule ? String(rule.threshold_percent) : "",
    window: "window" in rule && rule.window ? rule.window : EMPTY.window,
    threshold_seconds: "threshold_seconds" in rule ? String(rule.threshold_seconds) : "",
    labels: pairsText(rule.labels),
    annotations: pairsText(rule.annotations),
  };
}

/** `key=value` lines; a line without `=` is reported as a field error the way the API would. */
function parsePairs(text: string, field: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split("\n")) {
    if (!line.trim()) continue;
    const eq = line.indexOf("=");
    if (eq <= 0)
      throw new ApiError(400, {
        code: "ERR_VALIDATION",
        detail: `${field}: "${line}" is not key=value`,
        errors: [{ path: field, message: `"${line.trim()}" is not key=value` }],
      });
    out[line.slice(0, eq).trim()] = line.slice(eq + 1).trim();
  }
  return out;
}

/** A number field: an empty box is sent as-is (missing), so the API names it. */
const numberOrRaw = (v: string): number => (v.trim() === "" ? (undefined as never) : Number(v));

function bodyOf(d: Draft): AlertRuleInput {
  const common = {
    name: d.name,
    for: d.for,
    repeat_interval: d.repeat_interval,
    enabled: d.enabled,
    labels: parsePairs(d.labels, "labels"),
    annotations: parsePairs(d.annotations, "annotations"),
  };
  const tags = d.tags.split(/[\s,]+/).filter(Boolean);
  switch (d.kind) {
    case "host_offline":
      return { kind: d.kind, ...common, ...(tags.length ? { selector: { tags, match: d.match } } : {}) };
    case "hosts_offline_ratio":
      return { kind: d.kind, ...common, threshold_percent: numberOrRaw(d.threshold_percent) };
    case "dead_letters":
    case "job_stopped":
      return { kind: d.kind, ...common, window: d.window };
    case "delivery_latency_p99":
      return { kind: d.kind, ...common, window: d.window, threshold_seconds: numberOrRaw(d.threshold_seconds) };
  }
}

function ruleDetail(r: AlertRule): string {
  const parts = [`for ${r.for}`];
  if ("selector" in r && r.selector) parts.push(`tags ${r.selector.match} of ${r.selector.tags.join(", ")}`);
  if ("threshold_percent" in r) parts.push(`> ${r.threshold_percent}% offline`);
  if ("window" in r && r.window) parts.push(`window ${r.window}`);
  if ("threshold_seconds" in r) parts.push(`p99 > ${r.threshold_seconds} s`);
  parts.push(`repeat ${r.repeat_interval}`);
  return parts.join(" · ");
}

export function AlertRules() {
  return (
    <EditableList<AlertRule>
      title="Alert rules"
      noun="rule"
      rowAttribute="rule-id"
      load={() => unwrap(api.GET("/api/alert-rules"))}
      idOf={(r) => r.rule_id}
      nameOf={(r) => r.name}
      remove={(id) => unwrap(api.DELETE("/api/alert-rules/{rule_id}", { params: { path: { rule_id: id } } }))}
      head={
        <>
          <th>Name</th>
          <th>Kind</th>
          <th>Condition</th>
          <th>Labels</th>
          <th>Enabled</th>
        </>
      }
      cells={(r) => (
        <>
          <td>{r.name}</td>
          <td>
            <code>{r.kind}</code>
          </td>
          <td>{ruleDetail(r)}</td>
          <td>
            <LabelList labels={r.labels ?? {}} />
          </td>
          <td>{r.enabled ? "yes" : "no"}</td>
        </>
      )}
      form={RuleForm}
      empty="No rules: nothing is evaluated."
    />
  );
}

function RuleForm({ item: rule, onDone, onCancel }: FormProps<AlertRule>) {
  const [d, setD] = useState<Draft>(rule ? draftOf(rule) : EMPTY);
  const [error, setError] = useState<unknown>();
  const [busy, setBusy] = useState(false);
  const set =
    <K extends keyof Draft>(k: K) =>
    (v: Draft[K]) =>
      setD((prev) => ({ ...prev, [k]: v }));

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setError(undefined);
    try {
      const body = bodyOf(d);
      if (rule) await unwrap(api.PUT("/api/alert-rules/{rule_id}", { params: { path: { rule_id: rule.rule_id } }, body }));
      else await unwrap(api.POST("/api/alert-rules", { body }));
      onDone();
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };

  const text = (
    k: "name" | "for" | "repeat_interval" | "window" | "threshold_percent" | "threshold_seconds",
    label: string,
    hint?: string,
  ) => (
    <label>
      {label}
      <input value={d[k]} onChange={(e) => set(k)(e.target.value)} placeholder={hint} aria-describedby={`rule-${k}-error`} />
      <FieldError error={error} field={k} id={`rule-${k}-error`} />
    </label>
  );

  return (
    <form onSubmit={submit} aria-label={rule ? "Edit rule" : "New rule"} className="forms">
      <div className="form-row">
        <label>
          Kind
          <select value={d.kind} onChange={(e) => set("kind")(e.target.value as AlertRuleKind)} disabled={rule !== null}>
            {ALERT_RULE_KINDS.map((k) => (
              <option key={k} value={k}>
                {k}
              </option>
            ))}
          </select>
          <FieldError error={error} field="kind" />
        </label>
        <span className="muted">fires on {KIND_HELP[d.kind]}</span>
      </div>
      <div className="form-row">
        {text("name", "Name", "HostDown")}
        {text("for", "For", "5m")}
        {text("repeat_interval", "Repeat interval", "4h")}
        {(d.kind === "dead_letters" || d.kind === "delivery_latency_p99" || d.kind === "job_stopped") && text("window", "Window", "5m")}
        {d.kind === "hosts_offline_ratio" && text("threshold_percent", "Threshold %", "25")}
        {d.kind === "delivery_latency_p99" && text("threshold_seconds", "Threshold (s)", "2")}
        <label className="check">
          <input type="checkbox" checked={d.enabled} onChange={(e) => set("enabled")(e.target.checked)} /> enabled
        </label>
      </div>
      {d.kind === "host_offline" && (
        <div className="form-row">
          <label className="grow">
            Only hosts tagged
            <input value={d.tags} onChange={(e) => set("tags")(e.target.value)} placeholder="all hosts" />
            <FieldError error={error} field="selector" />
          </label>
          <label>
            Match
            <select value={d.match} onChange={(e) => set("match")(e.target.value as "any" | "all")}>
              <option value="any">any tag</option>
              <option value="all">all tags</option>
            </select>
          </label>
        </div>
      )}
      <div className="form-row">
        <label className="grow">
          Labels (key=value per line)
          <textarea rows={2} value={d.labels} onChange={(e) => set("labels")(e.target.value)} placeholder="severity=page" />
          <FieldError error={error} field="labels" />
        </label>
        <label className="grow">
          Annotations (key=value per line)
          <textarea
            rows={2}
            value={d.annotations}
            onChange={(e) => set("annotations")(e.target.value)}
            placeholder="runbook_url=https://runbooks.example/host-down"
          />
          <FieldError error={error} field="annotations" />
        </label>
      </div>
      <div className="form-row">
        <button type="submit" disabled={busy}>
          {rule ? "Save rule" : "Create rule"}
        </button>
        <button type="button" onClick={onCancel}>
          Cancel
        </button>
      </div>
      <ErrorNote error={error} />
    </form>
  );
}
