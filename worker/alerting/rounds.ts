import { backoffMs } from "../backoff.ts";
import { fleetEvents } from "../stubs.ts";
import {
  type AlertingContext,
  DELIVERY_BUDGET,
  DELIVERY_PARALLELISM,
  EVENT_BACKOFF,
  EVENT_BATCH,
  EVENT_SOURCE,
  NOTIFY_BACKOFF,
} from "./context.ts";
import { type ActiveAlert, type EvalInputs, evaluateGone, evaluateRule, type RuleEvaluation } from "./evaluate.ts";
import { buildPayload } from "./payload.ts";
import { DELIVERY_HEADER, SIGNATURE_HEADER, signatureFor, TIMESTAMP_HEADER } from "./signature.ts";
import type { DueDelivery } from "./storage.ts";

const HOST_KINDS = new Set(["host_offline", "hosts_offline_ratio"]);

/**
 * One alarm round: evaluate the rules if an interval has passed, POST the notifications that are
 * due, publish pending events, enforce the outbox bounds. Rounds never overlap.
 */
export function runRound(ac: AlertingContext): Promise<void> {
  const next = ac.rounds.then(() => round(ac));
  ac.rounds = next.catch(() => {});
  return next;
}

async function round(ac: AlertingContext): Promise<void> {
  if (evaluationDue(ac, ac.clock.now())) await evaluateAll(ac);
  await deliverDue(ac);
  await publishEvents(ac);
  ac.store.pruneOutbox(ac.clock.now(), ac.config.notifyMaxAgeMs);
}

/** Something to evaluate (an enabled rule, or alerts left by a rule since disabled or deleted), and an interval since the last time. */
function hasWork(ac: AlertingContext): boolean {
  return ac.store.enabledRuleCount() > 0 || ac.store.alertRuleIds().length > 0;
}

function nextEvaluationAt(ac: AlertingContext, now: number): number | null {
  if (!hasWork(ac)) return null;
  const last = ac.store.getMeta("last_eval_at");
  return last === null ? now : Number(last) + ac.config.evalIntervalMs;
}

function evaluationDue(ac: AlertingContext, now: number): boolean {
  const at = nextEvaluationAt(ac, now);
  return at !== null && at <= now;
}

async function evaluateAll(ac: AlertingContext): Promise<void> {
  const { store } = ac;
  // Recorded first: a round that throws waits for the next interval instead of looping at once.
  store.setMeta("last_eval_at", String(ac.clock.now()));
  const wanted = store.rules().filter((r) => r.enabled);
  const [fleet, metrics] = await Promise.all([
    wanted.some((r) => HOST_KINDS.has(r.spec.kind)) ? ac.inputs.fleet() : null,
    wanted.some((r) => !HOST_KINDS.has(r.spec.kind)) ? ac.inputs.metrics() : null,
  ]);
  applyEvaluation(ac, { fleet, metrics }, ac.clock.now());
}

/**
 * Synchronous from the rules' read to the last write, so a rule changed while the inputs were being
 * fetched is evaluated as it is now, and every alert, history row, notification and event of the
 * round is written together.
 */
export function applyEvaluation(ac: AlertingContext, inputs: EvalInputs, now: number): void {
  const { store } = ac;
  const rules = store.rules();
  const known = new Set(rules.map((r) => r.rule_id));
  const externalUrl = ac.config.externalUrl || store.getMeta("external_url") || "";
  const apply = (ruleId: string, ev: RuleEvaluation) => {
    if (ev.skipped) return;
    store.replaceAlerts(ruleId, ev.active, ev.resolved);
    for (const a of ev.pended) store.addEvent(alertEvent("alert.pending", "pending", a, now), now);
    for (const a of ev.withdrawn) store.addEvent(alertEvent("alert.pending", "inactive", a, now), now);
    for (const a of ev.fired) store.addEvent(alertEvent("alert.firing", "firing", a, now), now);
    for (const a of ev.resolved) store.addEvent(alertEvent("alert.resolved", "resolved", a, now), now);
    if (ev.notify) store.addNotification(ruleId, ev.notify.status, JSON.stringify(buildPayload(ruleId, ev.notify, externalUrl)), now);
  };
  for (const rule of rules) apply(rule.rule_id, evaluateRule(rule, inputs, store.alerts(rule.rule_id), now));
  for (const ruleId of store.alertRuleIds()) {
    if (!known.has(ruleId)) apply(ruleId, evaluateGone(store.alerts(ruleId), now));
  }
}

/** `alert.pending` says an alert started waiting out its `for` (state "pending") or stopped before it fired ("inactive"). */
function alertEvent(
  type: "alert.pending" | "alert.firing" | "alert.resolved",
  state: "pending" | "inactive" | "firing" | "resolved",
  a: ActiveAlert,
  now: number,
) {
  return {
    type,
    at: new Date(now).toISOString(),
    rule_id: a.rule_id,
    fingerprint: a.fingerprint,
    labels: a.labels,
    annotations: a.annotations,
    state,
    ...(a.host_id ? { host_id: a.host_id } : {}),
    ...(a.job_id ? { job_id: a.job_id } : {}),
    ...(a.tags ? { tags: [...a.tags] } : {}),
  };
}

// ---- notifications ----

async function deliverDue(ac: AlertingContext): Promise<void> {
  const due = ac.store.dueDeliveries(ac.clock.now(), DELIVERY_BUDGET);
  let next = 0;
  const worker = async () => {
    while (next < due.length) await deliverOne(ac, due[next++]!);
  };
  await Promise.all(Array.from({ length: Math.min(DELIVERY_PARALLELISM, due.length) }, worker));
}

async function deliverOne(ac: AlertingContext, d: DueDelivery): Promise<void> {
  const error = await post(ac, d);
  const now = ac.clock.now();
  const attempts = d.attempts + 1;
  if (error === null) {
    ac.store.delivered(d.notification_id, d.receiver_id, attempts, now);
    return;
  }
  const giveUpAt = d.created_at + ac.config.notifyMaxAgeMs;
  if (now >= giveUpAt) {
    ac.store.failed(d.notification_id, d.receiver_id, attempts, now, `${error} (gave up after ${attempts} attempts)`);
    return;
  }
  // The last try is made at the bound itself, so "delivered within the bound" holds to the end.
  const retryAt = Math.min(
    now +
      Math.max(
        1,
        backoffMs(attempts, NOTIFY_BACKOFF, () => ac.clock.random()),
      ),
    giveUpAt,
  );
  ac.store.retryLater(d.notification_id, d.receiver_id, attempts, retryAt, error);
}

/** POSTs one delivery; null on a 2xx answer, else why not. Redirects are not followed (the URL was checked, its target was not). */
async function post(ac: AlertingContext, d: DueDelivery): Promise<string | null> {
  const body = JSON.stringify({ ...JSON.parse(d.payload), receiver: d.receiver.name });
  const timestamp = String(Math.floor(ac.clock.now() / 1000));
  const request = new Request(d.receiver.url, {
    method: "POST",
    redirect: "manual",
    headers: {
      "content-type": "application/json",
      "user-agent": "fleet-relay-alerting",
      [TIMESTAMP_HEADER]: timestamp,
      [SIGNATURE_HEADER]: await signatureFor(d.receiver.secret, timestamp, body),
      [DELIVERY_HEADER]: `${d.notification_id}-${d.receiver_id}`,
    },
    body,
    signal: AbortSignal.timeout(ac.config.notifyTimeoutMs),
  });
  try {
    const res = await ac.transport(request);
    await res.body?.cancel().catch(() => {});
    return res.status >= 200 && res.status < 300 ? null : `HTTP ${res.status}`;
  } catch (err) {
    return err instanceof Error ? `${err.name}: ${err.message}` : String(err);
  }
}

// ---- events ----

/** Pending events in order, one batch a round; a failed publish retries the batch (FleetEvents drops repeats by source_seq). */
async function publishEvents(ac: AlertingContext): Promise<void> {
  const due = ac.store.dueEvents(ac.clock.now(), EVENT_BATCH);
  if (due.length === 0) return;
  try {
    ac.faults.check("alerting.publish");
    await fleetEvents(ac.env).publish(due.map((e) => ({ ...JSON.parse(e.body), source: EVENT_SOURCE, source_seq: e.seq })));
    ac.faults.check("alerting.after_publish");
    ac.store.eventsPublished(due[due.length - 1]!.seq);
  } catch (err) {
    const attempts = ac.store.eventAttempts() + 1;
    console.error(JSON.stringify({ level: "error", msg: "alerting: event publish failed; retrying", attempts, error: String(err) }));
    ac.store.eventsRetryAt(
      ac.clock.now() +
        Math.max(
          1,
          backoffMs(attempts, EVENT_BACKOFF, () => ac.clock.random()),
        ),
    );
  }
}

// ---- the alarm ----

/** Points the single alarm at the earliest of: the next evaluation, the next delivery retry, the next event publish. */
export function scheduleAlarm(ac: AlertingContext, now: number): void {
  const candidates = [nextEvaluationAt(ac, now), ac.store.nextDeliveryAt(), ac.store.nextEventAt()].filter((t): t is number => t !== null);
  let next = candidates.length ? Math.min(...candidates) : null;
  if (next !== null && next < now) next = now;
  if (next === null) {
    if (ac.alarmAt !== null) void ac.ctx.storage.deleteAlarm();
    ac.alarmAt = null;
    return;
  }
  if (typeof ac.alarmAt === "number" && ac.alarmAt <= next) return;
  void ac.ctx.storage.setAlarm(next);
  ac.alarmAt = next;
}
