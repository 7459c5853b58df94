import { z } from "zod";
import { Rfc3339, Tag, Uuid } from "./primitives.ts";

/** Bounds of what one rule or receiver may store; everything stored is bounded. */
export const AlertLimits = {
  MAX_RULES: 200,
  MAX_RECEIVERS: 20,
  MAX_NAME_CHARS: 128,
  MAX_LABELS: 16,
  MAX_LABEL_NAME_CHARS: 64,
  MAX_LABEL_VALUE_CHARS: 256,
  MAX_ANNOTATIONS: 16,
  MAX_ANNOTATION_VALUE_CHARS: 2048,
  /** All annotation names and values of one rule together. */
  MAX_ANNOTATIONS_TOTAL_CHARS: 8192,
  MAX_SELECTOR_TAGS: 16,
  MAX_URL_CHARS: 2048,
  MIN_SECRET_CHARS: 16,
  MAX_SECRET_CHARS: 256,
  /** `for` and `repeat_interval`: at most 7 days. */
  MAX_DURATION_S: 7 * 86_400,
  /** `window`: at most the hour of per-minute metrics the relay keeps. */
  MAX_WINDOW_S: 3600,
  MAX_HISTORY_PAGE: 500,
} as const;

const UNIT_SECONDS = { s: 1, m: 60, h: 3600, d: 86_400 } as const;
const DURATION = /^([0-9]{1,7})(s|m|h|d)$/;
const DURATION_MESSAGE = 'expected a duration: a whole number followed by s, m, h or d, e.g. "30s", "5m", "1h" (never negative)';

/** Seconds in a duration string ("30s", "5m", "1h", "2d"); null if it is not one. */
export function durationSeconds(text: string): number | null {
  const m = DURATION.exec(text);
  if (!m) return null;
  return Number(m[1]) * UNIT_SECONDS[m[2] as keyof typeof UNIT_SECONDS];
}

/** A duration string between `min` and `max` seconds. */
export function Duration(min: number, max: number) {
  return z
    .string({ error: DURATION_MESSAGE })
    .max(16, { message: DURATION_MESSAGE, abort: true })
    .regex(DURATION, { message: DURATION_MESSAGE, abort: true })
    .refine((s) => {
      const n = durationSeconds(s)!;
      return n >= min && n <= max;
    }, `must be between ${min} s and ${max} s`)
    .meta({ description: `A duration such as "30s", "5m", "1h" or "1d"; ${min} s to ${max} s.`, pattern: DURATION.source });
}

/** Prometheus label names; names starting with `__` are reserved there. */
const LabelName = z
  .string()
  .max(AlertLimits.MAX_LABEL_NAME_CHARS)
  .regex(/^[a-zA-Z_][a-zA-Z0-9_]*$/, { message: "label names are letters, digits and _, not starting with a digit" })
  .refine((n) => !n.startsWith("__"), "label names starting with __ are reserved");

/** Labels the relay sets on every alert itself; a rule may not set them. */
export const RESERVED_ALERT_LABELS = ["alertname", "rule_id", "host_id", "hostname", "job_id"] as const;

export const AlertLabels = z
  .record(LabelName, z.string().max(AlertLimits.MAX_LABEL_VALUE_CHARS))
  .refine((r) => Object.keys(r).length <= AlertLimits.MAX_LABELS, `at most ${AlertLimits.MAX_LABELS} labels`)
  .superRefine((r, ctx) => {
    for (const key of Object.keys(r)) {
      if ((RESERVED_ALERT_LABELS as readonly string[]).includes(key)) {
        ctx.addIssue({
          code: "custom",
          path: [key],
          message: `${key} is set by the relay (reserved: ${RESERVED_ALERT_LABELS.join(", ")})`,
        });
      }
    }
  })
  .meta({
    id: "AlertLabels",
    description: `Extra labels on every alert of the rule (at most ${AlertLimits.MAX_LABELS}; values up to ${AlertLimits.MAX_LABEL_VALUE_CHARS} characters). The relay sets ${RESERVED_ALERT_LABELS.join(", ")} itself.`,
  });

export const AlertAnnotations = z
  .record(LabelName, z.string().max(AlertLimits.MAX_ANNOTATION_VALUE_CHARS))
  .refine((r) => Object.keys(r).length <= AlertLimits.MAX_ANNOTATIONS, `at most ${AlertLimits.MAX_ANNOTATIONS} annotations`)
  .refine(
    (r) => Object.entries(r).reduce((n, [k, v]) => n + k.length + v.length, 0) <= AlertLimits.MAX_ANNOTATIONS_TOTAL_CHARS,
    `annotations are at most ${AlertLimits.MAX_ANNOTATIONS_TOTAL_CHARS} characters in all`,
  )
  .meta({
    id: "AlertAnnotations",
    description: `Annotations (summary, description, runbook_url, …) copied to every alert of the rule: at most ${AlertLimits.MAX_ANNOTATIONS}, ${AlertLimits.MAX_ANNOTATION_VALUE_CHARS} characters each, ${AlertLimits.MAX_ANNOTATIONS_TOTAL_CHARS} in all. A missing summary is filled in by the relay.`,
  });

export const AlertRuleKind = z
  .enum(["host_offline", "hosts_offline_ratio", "dead_letters", "delivery_latency_p99", "job_stopped"])
  .meta({ id: "AlertRuleKind", description: "What the rule watches." });
export type AlertRuleKind = z.infer<typeof AlertRuleKind>;

export const HostSelector = z
  .strictObject({
    tags: z.array(Tag).min(1).max(AlertLimits.MAX_SELECTOR_TAGS),
    match: z.enum(["any", "all"]).default("any").describe("any: a host with one of the tags; all: a host with every tag"),
  })
  .meta({ id: "HostSelector", description: "Limits a host_offline rule to hosts carrying these tags." });

const common = {
  name: z.string().min(1).max(AlertLimits.MAX_NAME_CHARS).describe("Shown as the alerts' alertname label"),
  for: Duration(0, AlertLimits.MAX_DURATION_S)
    .default("0s")
    .describe('How long the condition must hold before the alert fires (pending until then). Default "0s".'),
  repeat_interval: Duration(60, AlertLimits.MAX_DURATION_S)
    .default("4h")
    .describe('While firing, the notification is sent again this often. Default "4h" (as Alertmanager).'),
  labels: AlertLabels.default({}),
  annotations: AlertAnnotations.default({}),
  enabled: z.boolean().default(true).describe("A disabled rule is not evaluated; its alerts resolve."),
};

const Window = Duration(60, AlertLimits.MAX_WINDOW_S);

/** Body of `POST /api/alert-rules` and `PUT /api/alert-rules/{rule_id}` (a PUT replaces the whole rule). */
export const AlertRuleInput = z
  .discriminatedUnion(
    "kind",
    [
      z
        .strictObject({ kind: z.literal("host_offline"), ...common, selector: HostSelector.optional() })
        .describe("A host (not revoked) offline for longer than `for`; one alert per host, labelled host_id and hostname."),
      z
        .strictObject({
          kind: z.literal("hosts_offline_ratio"),
          ...common,
          threshold_percent: z.number().min(0).lt(100).describe("Fires when more than this share of non-revoked hosts is offline"),
        })
        .describe("More than threshold_percent of the non-revoked hosts offline for `for`."),
      z
        .strictObject({ kind: z.literal("dead_letters"), ...common, window: Window.describe("Look-back window, 1m to 1h") })
        .describe("Any command dead-lettered within the window."),
      z
        .strictObject({
          kind: z.literal("delivery_latency_p99"),
          ...common,
          window: Window.describe("Look-back window, 1m to 1h"),
          threshold_seconds: z.number().gt(0).max(3600).describe("Fires when the p99 of send → ack over the window is above this"),
        })
        .describe("The p99 of command delivery latency (send → ack) over the window above threshold_seconds."),
      z
        .strictObject({
          kind: z.literal("job_stopped"),
          ...common,
          window: Window.default("1h").describe('Jobs stopped within this window alert; default "1h"'),
        })
        .describe("A job stopped by max_errors; one alert per job, labelled job_id, resolved once it leaves the window."),
    ],
    { error: `unknown kind: expected one of ${AlertRuleKind.options.join(", ")}` },
  )
  .meta({ id: "AlertRuleInput", description: "An alert rule: one of five kinds, with for, repeat_interval, labels and annotations." });
export type AlertRuleInput = z.infer<typeof AlertRuleInput>;

export const AlertRule = z
  .intersection(AlertRuleInput, z.object({ rule_id: Uuid, created_at: Rfc3339, updated_at: Rfc3339 }))
  .meta({ id: "AlertRule", description: "A stored alert rule." });
export type AlertRule = AlertRuleInput & { rule_id: string; created_at: string; updated_at: string };

export const AlertRuleList = z
  .object({ items: z.array(AlertRule) })
  .meta({ id: "AlertRuleList", description: "Every rule, oldest first." });

/** Only the URL's shape; whether plain http:// to loopback is allowed depends on the deployment (checked by the route). */
export const ReceiverUrl = z
  .url({ protocol: /^https?$/, error: "expected an absolute https:// URL" })
  .max(AlertLimits.MAX_URL_CHARS)
  .refine((u) => {
    // Runs even when the URL check above failed: a string that does not parse is that check's to report.
    if (!URL.canParse(u)) return true;
    const parsed = new URL(u);
    return parsed.username === "" && parsed.password === "";
  }, "URLs with credentials are refused; the request is signed instead")
  .describe("Where notifications are POSTed: https:// only (plain http:// only to a loopback address on a local relay)");

const ReceiverSecret = z
  .string()
  .min(AlertLimits.MIN_SECRET_CHARS)
  .max(AlertLimits.MAX_SECRET_CHARS)
  .describe("HMAC-SHA256 key of the X-Fleet-Relay-Signature header. Write-only: never returned.");

/** Body of `POST /api/alert-receivers`. */
export const AlertReceiverInput = z
  .strictObject({
    name: z.string().min(1).max(AlertLimits.MAX_NAME_CHARS).describe("Sent as the payload's receiver field"),
    url: ReceiverUrl,
    secret: ReceiverSecret,
    enabled: z.boolean().default(true),
  })
  .meta({ id: "AlertReceiverInput", description: "A webhook receiver of Alertmanager v4 payloads." });
export type AlertReceiverInput = z.infer<typeof AlertReceiverInput>;

/** Body of `PUT /api/alert-receivers/{receiver_id}`: replaces the receiver; without `secret` the stored one is kept. */
export const AlertReceiverUpdate = z
  .strictObject({
    name: z.string().min(1).max(AlertLimits.MAX_NAME_CHARS),
    url: ReceiverUrl,
    secret: ReceiverSecret.optional(),
    enabled: z.boolean().default(true),
  })
  .meta({ id: "AlertReceiverUpdate", description: "A receiver's new settings; omit secret to keep the stored one." });
export type AlertReceiverUpdate = z.infer<typeof AlertReceiverUpdate>;

export const AlertReceiver = z
  .object({
    receiver_id: Uuid,
    name: z.string(),
    url: z.string(),
    enabled: z.boolean(),
    has_secret: z.literal(true).describe("A secret is stored; it is never returned"),
    created_at: Rfc3339,
    updated_at: Rfc3339,
  })
  .meta({ id: "AlertReceiver", description: "A stored receiver, without its secret." });
export type AlertReceiver = z.infer<typeof AlertReceiver>;

export const AlertReceiverList = z
  .object({ items: z.array(AlertReceiver) })
  .meta({ id: "AlertReceiverList", description: "Every receiver, oldest first." });

export const AlertState = z
  .enum(["pending", "firing"])
  .meta({ id: "AlertState", description: "pending: condition holds, `for` not yet elapsed." });

export const Alert = z
  .object({
    fingerprint: z.string().describe("16 hex digits identifying the alert by its labels (as Alertmanager's)"),
    rule_id: Uuid,
    state: AlertState,
    labels: z.record(z.string(), z.string()),
    annotations: z.record(z.string(), z.string()),
    active_since: Rfc3339.describe("When the condition started to hold"),
    fired_at: Rfc3339.nullable(),
    last_notified_at: Rfc3339.nullable(),
  })
  .meta({ id: "Alert", description: "An active alert: pending or firing." });
export type Alert = z.infer<typeof Alert>;

export const AlertHistoryEntry = z
  .object({
    id: z.int(),
    fingerprint: z.string(),
    rule_id: Uuid,
    labels: z.record(z.string(), z.string()),
    annotations: z.record(z.string(), z.string()),
    active_since: Rfc3339,
    fired_at: Rfc3339,
    resolved_at: Rfc3339,
  })
  .meta({ id: "AlertHistoryEntry", description: "An alert that fired and has resolved." });

export const AlertsQuery = z.strictObject({
  history_limit: z.coerce
    .number()
    .int()
    .min(0)
    .max(AlertLimits.MAX_HISTORY_PAGE)
    .default(50)
    .describe(`Resolved alerts to include, newest first (at most ${AlertLimits.MAX_HISTORY_PAGE})`),
  history_before: z.coerce.number().int().min(1).optional().describe("Only history entries with an id below this (the page's last id)"),
});

export const AlertList = z
  .object({
    active: z.array(Alert).describe("Pending and firing alerts"),
    history: z.array(AlertHistoryEntry).describe("Resolved alerts, newest first"),
  })
  .meta({ id: "AlertList", description: "Active alerts and recent history." });
export type AlertList = z.infer<typeof AlertList>;

export const NotificationState = z.enum(["pending", "delivered", "failed"]);

export const AlertNotification = z
  .object({
    notification_id: z.int(),
    receiver_id: Uuid,
    rule_id: Uuid,
    status: z.enum(["firing", "resolved"]),
    state: NotificationState.describe("pending: being retried with backoff; failed: gave up at ALERT_NOTIFY_MAX_AGE_S"),
    attempts: z.int(),
    created_at: Rfc3339,
    next_attempt_at: Rfc3339.nullable(),
    finished_at: Rfc3339.nullable(),
    last_error: z.string().nullable(),
  })
  .meta({ id: "AlertNotification", description: "One notification to one receiver, and how its delivery went." });
export type AlertNotification = z.infer<typeof AlertNotification>;

export const AlertNotificationsQuery = z.strictObject({
  state: NotificationState.optional(),
  limit: z.coerce.number().int().min(1).max(AlertLimits.MAX_HISTORY_PAGE).default(50),
});

export const AlertNotificationList = z
  .object({ items: z.array(AlertNotification) })
  .meta({ id: "AlertNotificationList", description: "Recent notification deliveries, newest first." });
