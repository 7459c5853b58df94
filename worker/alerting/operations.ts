import type {
  Alert,
  AlertList,
  AlertNotification,
  AlertReceiver,
  AlertReceiverInput,
  AlertReceiverUpdate,
  AlertRule,
  AlertRuleInput,
} from "../../schemas/index.ts";
import { AlertLimits } from "../../schemas/index.ts";
import { ErrorCode, type RpcResult, rpcError } from "../errors.ts";
import type { AlertingContext } from "./context.ts";
import type { ActiveAlert } from "./evaluate.ts";
import type { DeliveryRow, DeliveryState, ReceiverRow, RuleRow } from "./storage.ts";

/** The object's RPC handlers for the REST routes: CRUD on rules and receivers, and the alert and notification lists. */

const iso = (ms: number) => new Date(ms).toISOString();
const ok = <T>(value: T): RpcResult<T> => ({ ok: true, value });

function ruleView(r: RuleRow): AlertRule {
  return { ...r.spec, rule_id: r.rule_id, created_at: iso(r.created_at), updated_at: iso(r.updated_at) };
}

/** Never the secret: a receiver is shown with has_secret only. */
function receiverView(r: ReceiverRow): AlertReceiver {
  return {
    receiver_id: r.receiver_id,
    name: r.name,
    url: r.url,
    enabled: r.enabled,
    has_secret: true,
    created_at: iso(r.created_at),
    updated_at: iso(r.updated_at),
  };
}

function rememberOrigin(ac: AlertingContext, origin: string | undefined): void {
  if (origin && origin.length <= AlertLimits.MAX_URL_CHARS) ac.store.setMeta("external_url", origin);
}

export function createRule(ac: AlertingContext, spec: AlertRuleInput, origin: string | undefined, now: number): RpcResult<AlertRule> {
  if (ac.store.ruleCount() >= AlertLimits.MAX_RULES) {
    return rpcError(ErrorCode.ALERT_LIMIT_REACHED, `at most ${AlertLimits.MAX_RULES} alert rules; delete one first`);
  }
  const ruleId = crypto.randomUUID();
  ac.store.putRule(ruleId, spec, now);
  rememberOrigin(ac, origin);
  return ok(ruleView(ac.store.rule(ruleId)!));
}

export function listRules(ac: AlertingContext): RpcResult<{ items: AlertRule[] }> {
  return ok({ items: ac.store.rules().map(ruleView) });
}

export function getRule(ac: AlertingContext, ruleId: string): RpcResult<AlertRule> {
  const rule = ac.store.rule(ruleId);
  return rule ? ok(ruleView(rule)) : rpcError(ErrorCode.ALERT_RULE_NOT_FOUND, `no alert rule ${ruleId}`);
}

/** Replaces the rule; its alerts are re-evaluated against the new rule at the next round. */
export function updateRule(
  ac: AlertingContext,
  ruleId: string,
  spec: AlertRuleInput,
  origin: string | undefined,
  now: number,
): RpcResult<AlertRule> {
  if (!ac.store.rule(ruleId)) return rpcError(ErrorCode.ALERT_RULE_NOT_FOUND, `no alert rule ${ruleId}`);
  ac.store.putRule(ruleId, spec, now);
  rememberOrigin(ac, origin);
  return ok(ruleView(ac.store.rule(ruleId)!));
}

/** Its firing alerts resolve (and are notified so) at the next round. */
export function deleteRule(ac: AlertingContext, ruleId: string): RpcResult<null> {
  return ac.store.deleteRule(ruleId) ? ok(null) : rpcError(ErrorCode.ALERT_RULE_NOT_FOUND, `no alert rule ${ruleId}`);
}

export function createReceiver(ac: AlertingContext, input: AlertReceiverInput, now: number): RpcResult<AlertReceiver> {
  if (ac.store.receiverCount() >= AlertLimits.MAX_RECEIVERS) {
    return rpcError(ErrorCode.ALERT_LIMIT_REACHED, `at most ${AlertLimits.MAX_RECEIVERS} receivers; delete one first`);
  }
  const row: ReceiverRow = { receiver_id: crypto.randomUUID(), ...input, created_at: now, updated_at: now };
  ac.store.putReceiver(row);
  return ok(receiverView(row));
}

export function listReceivers(ac: AlertingContext): RpcResult<{ items: AlertReceiver[] }> {
  return ok({ items: ac.store.receivers().map(receiverView) });
}

export function getReceiver(ac: AlertingContext, receiverId: string): RpcResult<AlertReceiver> {
  const r = ac.store.receiver(receiverId);
  return r ? ok(receiverView(r)) : rpcError(ErrorCode.RECEIVER_NOT_FOUND, `no receiver ${receiverId}`);
}

export function updateReceiver(ac: AlertingContext, receiverId: string, input: AlertReceiverUpdate, now: number): RpcResult<AlertReceiver> {
  const r = ac.store.receiver(receiverId);
  if (!r) return rpcError(ErrorCode.RECEIVER_NOT_FOUND, `no receiver ${receiverId}`);
  const row: ReceiverRow = {
    ...r,
    name: input.name,
    url: input.url,
    enabled: input.enabled,
    secret: input.secret ?? r.secret,
    updated_at: now,
  };
  ac.store.putReceiver(row);
  return ok(receiverView(row));
}

export function deleteReceiver(ac: AlertingContext, receiverId: string): RpcResult<null> {
  return ac.store.deleteReceiver(receiverId) ? ok(null) : rpcError(ErrorCode.RECEIVER_NOT_FOUND, `no receiver ${receiverId}`);
}

function alertView(a: ActiveAlert): Alert {
  return {
    fingerprint: a.fingerprint,
    rule_id: a.rule_id,
    state: a.state,
    labels: a.labels,
    annotations: a.annotations,
    active_since: iso(a.active_since),
    fired_at: a.fired_at === null ? null : iso(a.fired_at),
    last_notified_at: a.last_notified_at === null ? null : iso(a.last_notified_at),
  };
}

export function listAlerts(ac: AlertingContext, q: { history_limit: number; history_before?: number | undefined }): RpcResult<AlertList> {
  return ok({
    active: ac.store.alerts().map(alertView),
    history: ac.store.history(q.history_limit, q.history_before).map((h) => ({
      ...h,
      active_since: iso(h.active_since),
      fired_at: iso(h.fired_at),
      resolved_at: iso(h.resolved_at),
    })),
  });
}

function notificationView(d: DeliveryRow): AlertNotification {
  return {
    notification_id: d.notification_id,
    receiver_id: d.receiver_id,
    rule_id: d.rule_id,
    status: d.status,
    state: d.state,
    attempts: d.attempts,
    created_at: iso(d.created_at),
    next_attempt_at: d.next_at === null ? null : iso(d.next_at),
    finished_at: d.finished_at === null ? null : iso(d.finished_at),
    last_error: d.last_error,
  };
}

export function listNotifications(
  ac: AlertingContext,
  q: { state?: DeliveryState | undefined; limit: number },
): RpcResult<{ items: AlertNotification[] }> {
  return ok({ items: ac.store.deliveries(q).map(notificationView) });
}
