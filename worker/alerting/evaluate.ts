import type { AlertRuleInput } from "../../schemas/index.ts";
import { durationSeconds } from "../../schemas/index.ts";
import { histogramQuantile, type MetricsSummary } from "../metrics/contract.ts";

/**
 * Rule evaluation, pure: a rule, what the fleet looks like, the rule's alerts as they were and the
 * time in; the rule's alerts as they are now and what changed out. No storage, no clock, no I/O, so
 * every case is a table test (test/worker/alerting/evaluate.test.ts).
 */

/** A non-revoked host that is offline, with when it went offline (its last_seen_at, or created_at if it never connected). */
export interface OfflineHost {
  host_id: string;
  hostname: string;
  tags: readonly string[];
  offline_since: number;
}

/** The registry's view of the fleet for one round. `offline` may be cut short (oldest first); the counts are exact. */
export interface FleetSnapshot {
  /** Hosts not revoked. */
  active_hosts: number;
  /** Of those, offline. */
  offline_hosts: number;
  offline: readonly OfflineHost[];
}

/** What one round evaluates over; null where that source could not be read this round (its rules are skipped). */
export interface EvalInputs {
  fleet: FleetSnapshot | null;
  metrics: MetricsSummary | null;
}

export type AlertPhase = "pending" | "firing";

/** An active alert as stored between rounds. Times are epoch ms. */
export interface ActiveAlert {
  fingerprint: string;
  rule_id: string;
  state: AlertPhase;
  labels: Record<string, string>;
  annotations: Record<string, string>;
  active_since: number;
  fired_at: number | null;
  last_notified_at: number | null;
  /** Carried to the alert's events so subscribers filtering by host, job or tag get them. */
  host_id?: string | undefined;
  job_id?: string | undefined;
  tags?: readonly string[] | undefined;
}

export interface ResolvedAlert extends ActiveAlert {
  state: "firing";
  fired_at: number;
  resolved_at: number;
}

/** One webhook notification for the rule's group: Alertmanager semantics (every firing alert, and those just resolved). */
export interface NotificationPlan {
  status: "firing" | "resolved";
  firing: ActiveAlert[];
  resolved: ResolvedAlert[];
}

export interface RuleEvaluation {
  /** The rule's alerts after this round (pending and firing). */
  active: ActiveAlert[];
  /** Alerts that started firing this round. */
  fired: ActiveAlert[];
  /** Alerts that started pending this round (their condition holds, `for` has not passed yet). */
  pended: ActiveAlert[];
  /** Pending alerts whose condition stopped holding before `for` passed: dropped, with no notification. */
  withdrawn: ActiveAlert[];
  /** Alerts that were firing and no longer hold. Pending alerts that stop holding are simply dropped. */
  resolved: ResolvedAlert[];
  /** A notification to send now, or null. */
  notify: NotificationPlan | null;
  /** The rule's inputs were unavailable: nothing changed. */
  skipped: boolean;
}

/** Most alerts one rule keeps active (one per host for host_offline); the rest are not tracked. */
export const MAX_ALERTS_PER_RULE = 1000;

export interface RuleForEval {
  rule_id: string;
  spec: AlertRuleInput;
}

interface Candidate {
  labels: Record<string, string>;
  since: number;
  summary: string;
  host_id?: string;
  job_id?: string;
  tags?: readonly string[];
}

const MINUTE_MS = 60_000;

export function evaluateRule(rule: RuleForEval, inputs: EvalInputs, previous: readonly ActiveAlert[], now: number): RuleEvaluation {
  const candidates = rule.spec.enabled ? conditions(rule, inputs, now) : [];
  if (candidates === null)
    return { active: [...previous], fired: [], pended: [], withdrawn: [], resolved: [], notify: null, skipped: true };
  const forMs = durationSeconds(rule.spec.for)! * 1000;
  const repeatMs = durationSeconds(rule.spec.repeat_interval)! * 1000;
  const before = new Map(previous.map((a) => [a.fingerprint, a]));
  const seen = new Set<string>();

  const active: ActiveAlert[] = [];
  const fired: ActiveAlert[] = [];
  const pended: ActiveAlert[] = [];
  for (const c of bounded(candidates, before, rule.rule_id)) {
    const labels = { alertname: rule.spec.name, rule_id: rule.rule_id, ...rule.spec.labels, ...c.labels };
    const fingerprint = labelsFingerprint(labels);
    if (seen.has(fingerprint)) continue;
    seen.add(fingerprint);
    const prev = before.get(fingerprint);
    const activeSince = prev?.active_since ?? c.since;
    const firing = prev?.state === "firing" || now - activeSince >= forMs;
    const alert: ActiveAlert = {
      fingerprint,
      rule_id: rule.rule_id,
      state: firing ? "firing" : "pending",
      labels,
      annotations: { summary: c.summary, ...rule.spec.annotations },
      active_since: activeSince,
      fired_at: prev?.fired_at ?? (firing ? now : null),
      last_notified_at: prev?.last_notified_at ?? null,
      host_id: c.host_id,
      job_id: c.job_id,
      tags: c.tags,
    };
    if (firing && prev?.state !== "firing") fired.push(alert);
    if (!firing && !prev) pended.push(alert);
    active.push(alert);
  }
  const resolved = resolveMissing(previous, seen, now);
  const withdrawn = withdrawMissing(previous, seen);
  return { active, fired, pended, withdrawn, resolved, notify: plan(active, fired, resolved, repeatMs, now), skipped: false };
}

/** Alerts of a rule that no longer exists: every firing one resolves, and a last notification says so. */
export function evaluateGone(previous: readonly ActiveAlert[], now: number): RuleEvaluation {
  const resolved = resolveMissing(previous, new Set(), now);
  const withdrawn = withdrawMissing(previous, new Set());
  return {
    active: [],
    fired: [],
    pended: [],
    withdrawn,
    resolved,
    notify: plan([], [], resolved, Number.POSITIVE_INFINITY, now),
    skipped: false,
  };
}

function withdrawMissing(previous: readonly ActiveAlert[], seen: Set<string>): ActiveAlert[] {
  return previous.filter((p) => !seen.has(p.fingerprint) && p.state === "pending");
}

function resolveMissing(previous: readonly ActiveAlert[], seen: Set<string>, now: number): ResolvedAlert[] {
  return previous
    .filter((p) => !seen.has(p.fingerprint) && p.state === "firing")
    .map((p) => ({ ...p, state: "firing", fired_at: p.fired_at ?? p.active_since, resolved_at: now }));
}

/**
 * A notification is due when an alert fired or resolved this round, or when the group's last one is
 * `repeat_interval` old while something fires. It carries every firing alert of the rule, as
 * Alertmanager's group notifications do, and marks them notified now.
 */
function plan(
  active: ActiveAlert[],
  fired: ActiveAlert[],
  resolved: ResolvedAlert[],
  repeatMs: number,
  now: number,
): NotificationPlan | null {
  const firing = active.filter((a) => a.state === "firing");
  const repeatDue = firing.some((a) => a.last_notified_at === null || now - a.last_notified_at >= repeatMs);
  if (fired.length === 0 && resolved.length === 0 && !repeatDue) return null;
  for (const a of firing) a.last_notified_at = now;
  return { status: firing.length > 0 ? "firing" : "resolved", firing, resolved };
}

/** Keeps alerts already tracked first, then the oldest, up to the per-rule bound. */
function bounded(candidates: Candidate[], before: Map<string, ActiveAlert>, ruleId: string): Candidate[] {
  if (candidates.length <= MAX_ALERTS_PER_RULE) return candidates;
  const known = new Set([...before.values()].map((a) => a.host_id ?? a.job_id ?? ""));
  const rank = (c: Candidate) => (known.has(c.host_id ?? c.job_id ?? "") ? 0 : 1);
  console.warn(
    JSON.stringify({ level: "warn", msg: "alert rule matches more instances than tracked", rule_id: ruleId, n: candidates.length }),
  );
  return [...candidates].sort((a, b) => rank(a) - rank(b) || a.since - b.since).slice(0, MAX_ALERTS_PER_RULE);
}

/** Where the rule's condition holds now, one candidate per alert instance; null when its input is unavailable. */
function conditions(rule: RuleForEval, inputs: EvalInputs, now: number): Candidate[] | null {
  const spec = rule.spec;
  switch (spec.kind) {
    case "host_offline": {
      if (!inputs.fleet) return null;
      return inputs.fleet.offline
        .filter((h) => matchesSelector(h.tags, spec.selector))
        .map((h) => ({
          labels: { host_id: h.host_id, hostname: h.hostname },
          since: h.offline_since,
          summary: `host ${h.hostname} (${h.host_id}) offline since ${new Date(h.offline_since).toISOString()}`,
          host_id: h.host_id,
          tags: h.tags,
        }));
    }
    case "hosts_offline_ratio": {
      if (!inputs.fleet) return null;
      const { active_hosts: total, offline_hosts: offline } = inputs.fleet;
      const percent = total === 0 ? 0 : (offline / total) * 100;
      if (total === 0 || percent <= spec.threshold_percent) return [];
      return [
        {
          labels: {},
          since: now,
          summary: `${offline} of ${total} hosts offline (${round(percent)}% > ${spec.threshold_percent}%)`,
        },
      ];
    }
    case "dead_letters": {
      if (!inputs.metrics) return null;
      const points = inWindow(inputs.metrics, spec.window, now);
      const n = points.reduce((sum, p) => sum + p.dead_letters_new, 0);
      return n > 0 ? [{ labels: {}, since: now, summary: `${n} command(s) dead-lettered in the last ${spec.window}` }] : [];
    }
    case "delivery_latency_p99": {
      if (!inputs.metrics) return null;
      const counts: number[] = [];
      for (const p of inWindow(inputs.metrics, spec.window, now)) {
        p.delivery_buckets.forEach((c, i) => {
          counts[i] = (counts[i] ?? 0) + c;
        });
      }
      const p99 = histogramQuantile(counts, 0.99);
      if (p99 === null || p99 <= spec.threshold_seconds) return [];
      const shown = Number.isFinite(p99) ? `${p99} s` : "above the largest bucket";
      return [
        {
          labels: {},
          since: now,
          summary: `p99 delivery latency over ${spec.window} is ${shown} (threshold ${spec.threshold_seconds} s)`,
        },
      ];
    }
    case "job_stopped": {
      if (!inputs.metrics) return null;
      const from = now - durationSeconds(spec.window)! * 1000;
      const byJob = new Map<string, number>();
      for (const j of inputs.metrics.recent_final_jobs) {
        if (j.state === "stopped" && j.at > from && j.at <= now) byJob.set(j.job_id, Math.max(byJob.get(j.job_id) ?? 0, j.at));
      }
      return [...byJob].map(([jobId, at]) => ({
        labels: { job_id: jobId },
        since: at,
        summary: `job ${jobId} stopped by max_errors at ${new Date(at).toISOString()}`,
        job_id: jobId,
      }));
    }
  }
}

function matchesSelector(tags: readonly string[], selector: { tags: string[]; match: "any" | "all" } | undefined): boolean {
  if (!selector) return true;
  return selector.match === "all" ? selector.tags.every((t) => tags.includes(t)) : selector.tags.some((t) => tags.includes(t));
}

/** Minutes overlapping (now - window, now]. */
function inWindow(metrics: MetricsSummary, window: string, now: number) {
  const from = now - durationSeconds(window)! * 1000;
  return metrics.series.filter((p) => p.minute + MINUTE_MS > from && p.minute <= now);
}

function round(n: number): number {
  return Math.round(n * 10) / 10;
}

/**
 * 16 hex digits of FNV-1a 64 over the sorted labels, the way Alertmanager identifies an alert: the
 * same labels give the same fingerprint across rounds and restarts.
 */
export function labelsFingerprint(labels: Record<string, string>): string {
  const bytes = new TextEncoder().encode(
    Object.keys(labels)
      .sort()
      .map((k) => `${k}\u00ff${labels[k]}\u00ff`)
      .join(""),
  );
  let hash = 0xcbf29ce484222325n;
  for (const b of bytes) {
    hash ^= BigInt(b);
    hash = (hash * 0x100000001b3n) & 0xffffffffffffffffn;
  }
  return hash.toString(16).padStart(16, "0");
}
