import type { ActiveAlert, NotificationPlan, ResolvedAlert } from "./evaluate.ts";

/** Alerts one payload lists at most; the rest are counted in truncatedAlerts (as Alertmanager's max_alerts). */
export const MAX_PAYLOAD_ALERTS = 100;
/** Alertmanager's "not ended" endsAt. */
const ZERO_TIME = "0001-01-01T00:00:00Z";

/** One alert of an Alertmanager webhook payload. */
export interface WebhookAlert {
  status: "firing" | "resolved";
  labels: Record<string, string>;
  annotations: Record<string, string>;
  startsAt: string;
  endsAt: string;
  generatorURL: string;
  fingerprint: string;
}

/** The Alertmanager webhook payload, version "4", so existing receivers work unchanged. */
export interface WebhookPayload {
  receiver: string;
  status: "firing" | "resolved";
  alerts: WebhookAlert[];
  groupLabels: Record<string, string>;
  commonLabels: Record<string, string>;
  commonAnnotations: Record<string, string>;
  externalURL: string;
  version: "4";
  groupKey: string;
  truncatedAlerts: number;
}

/**
 * The payload for one rule's group notification (one group per rule: groupLabels are the rule's
 * alertname and rule_id). `receiver` is left empty here and filled in per receiver when sent.
 */
export function buildPayload(ruleId: string, plan: NotificationPlan, externalUrl: string): WebhookPayload {
  const generatorURL = `${externalUrl}/api/alert-rules/${ruleId}`;
  const all: WebhookAlert[] = [
    ...plan.firing.map((a) => webhookAlert(a, "firing", generatorURL)),
    ...plan.resolved.map((a) => webhookAlert(a, "resolved", generatorURL)),
  ];
  const alerts = all.slice(0, MAX_PAYLOAD_ALERTS);
  const first = plan.firing[0] ?? plan.resolved[0];
  const groupLabels = { alertname: first?.labels.alertname ?? "", rule_id: ruleId };
  return {
    receiver: "",
    status: plan.status,
    alerts,
    groupLabels,
    commonLabels: common(all.map((a) => a.labels)),
    commonAnnotations: common(all.map((a) => a.annotations)),
    externalURL: externalUrl,
    version: "4",
    groupKey: `{}:{rule_id=${JSON.stringify(ruleId)}}`,
    truncatedAlerts: all.length - alerts.length,
  };
}

function webhookAlert(a: ActiveAlert | ResolvedAlert, status: "firing" | "resolved", generatorURL: string): WebhookAlert {
  const startsAt = a.fired_at ?? a.active_since;
  return {
    status,
    labels: a.labels,
    annotations: a.annotations,
    startsAt: new Date(startsAt).toISOString(),
    endsAt: status === "resolved" && "resolved_at" in a ? new Date(a.resolved_at).toISOString() : ZERO_TIME,
    generatorURL,
    fingerprint: a.fingerprint,
  };
}

/** The pairs every map has with the same value. */
function common(maps: Record<string, string>[]): Record<string, string> {
  if (maps.length === 0) return {};
  const [first, ...rest] = maps as [Record<string, string>, ...Record<string, string>[]];
  return Object.fromEntries(Object.entries(first).filter(([k, v]) => rest.every((m) => m[k] === v)));
}
