import type { AlertRuleInput } from "../../schemas/index.ts";
import { MetaTable } from "../meta-table.ts";
import { applySqlMigrations } from "../sql-migrations.ts";
import type { ActiveAlert, ResolvedAlert } from "./evaluate.ts";
import { ALERTING_MIGRATIONS } from "./storage-schema.ts";

export interface RuleRow {
  rule_id: string;
  spec: AlertRuleInput;
  enabled: boolean;
  created_at: number;
  updated_at: number;
}

export interface ReceiverRow {
  receiver_id: string;
  name: string;
  url: string;
  secret: string;
  enabled: boolean;
  created_at: number;
  updated_at: number;
}

export interface HistoryRow {
  id: number;
  fingerprint: string;
  rule_id: string;
  labels: Record<string, string>;
  annotations: Record<string, string>;
  active_since: number;
  fired_at: number;
  resolved_at: number;
}

export type DeliveryState = "pending" | "delivered" | "failed";

export interface DeliveryRow {
  notification_id: number;
  receiver_id: string;
  rule_id: string;
  status: "firing" | "resolved";
  state: DeliveryState;
  attempts: number;
  next_at: number | null;
  created_at: number;
  finished_at: number | null;
  last_error: string | null;
}

export interface DueDelivery extends DeliveryRow {
  payload: string;
  receiver: ReceiverRow;
}

export interface EventRow {
  seq: number;
  body: string;
  attempts: number;
}

/** Resolved alerts kept for `GET /api/alerts`. */
export const MAX_HISTORY = 1000;
/** Finished deliveries (and their notifications) kept for the API. */
export const MAX_FINISHED_DELIVERIES = 2000;
/** Pending deliveries at most: past it the oldest are recorded as failed, so a dead receiver cannot grow storage without bound. */
export const MAX_PENDING_DELIVERIES = 10_000;
/** Longest error text kept per delivery. */
const MAX_ERROR_CHARS = 500;

type Row = Record<string, SqlStorageValue>;

/** Owns the Alerting tables; every method is synchronous so callers compose them atomically. */
export class AlertingStorage {
  private readonly sql: SqlStorage;
  /** Meta rows, read once per instance (only this object writes them). */
  private readonly meta: MetaTable;

  constructor(storage: DurableObjectStorage) {
    this.sql = storage.sql;
    this.meta = new MetaTable(storage.sql);
  }

  migrate(): void {
    applySqlMigrations(this.sql, ALERTING_MIGRATIONS);
  }

  getMeta(key: string): string | null {
    return this.meta.get(key);
  }

  setMeta(key: string, value: string): void {
    this.meta.set(key, value);
  }

  // ---- rules ----

  rules(): RuleRow[] {
    return this.sql.exec<Row>("SELECT * FROM rules ORDER BY created_at, rowid").toArray().map(toRule);
  }

  rule(ruleId: string): RuleRow | null {
    const row = this.sql.exec<Row>("SELECT * FROM rules WHERE rule_id = ?", ruleId).toArray()[0];
    return row ? toRule(row) : null;
  }

  ruleCount(): number {
    return this.sql.exec<{ n: number }>("SELECT COUNT(*) AS n FROM rules").one().n;
  }

  enabledRuleCount(): number {
    return this.sql.exec<{ n: number }>("SELECT COUNT(*) AS n FROM rules WHERE enabled = 1").one().n;
  }

  putRule(ruleId: string, spec: AlertRuleInput, now: number): void {
    this.sql.exec(
      `INSERT INTO rules (rule_id, spec, enabled, created_at, updated_at) VALUES (?, ?, ?, ?, ?)
       ON CONFLICT (rule_id) DO UPDATE SET spec = excluded.spec, enabled = excluded.enabled, updated_at = excluded.updated_at`,
      ruleId,
      JSON.stringify(spec),
      spec.enabled ? 1 : 0,
      now,
      now,
    );
  }

  deleteRule(ruleId: string): boolean {
    return this.sql.exec("DELETE FROM rules WHERE rule_id = ?", ruleId).rowsWritten > 0;
  }

  // ---- receivers ----

  receivers(): ReceiverRow[] {
    return this.sql.exec<Row>("SELECT * FROM receivers ORDER BY created_at, rowid").toArray().map(toReceiver);
  }

  receiver(receiverId: string): ReceiverRow | null {
    const row = this.sql.exec<Row>("SELECT * FROM receivers WHERE receiver_id = ?", receiverId).toArray()[0];
    return row ? toReceiver(row) : null;
  }

  receiverCount(): number {
    return this.sql.exec<{ n: number }>("SELECT COUNT(*) AS n FROM receivers").one().n;
  }

  putReceiver(r: ReceiverRow): void {
    this.sql.exec(
      `INSERT INTO receivers (receiver_id, name, url, secret, enabled, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT (receiver_id) DO UPDATE SET name = excluded.name, url = excluded.url, secret = excluded.secret,
         enabled = excluded.enabled, updated_at = excluded.updated_at`,
      r.receiver_id,
      r.name,
      r.url,
      r.secret,
      r.enabled ? 1 : 0,
      r.created_at,
      r.updated_at,
    );
  }

  /** Deletes the receiver and its outbox rows: nothing is sent to it any more. */
  deleteReceiver(receiverId: string): boolean {
    const gone = this.sql.exec("DELETE FROM receivers WHERE receiver_id = ?", receiverId).rowsWritten > 0;
    this.sql.exec("DELETE FROM deliveries WHERE receiver_id = ?", receiverId);
    return gone;
  }

  // ---- alerts ----

  alerts(ruleId?: string): ActiveAlert[] {
    const rows =
      ruleId === undefined
        ? this.sql.exec<Row>("SELECT * FROM alerts ORDER BY active_since, fingerprint").toArray()
        : this.sql.exec<Row>("SELECT * FROM alerts WHERE rule_id = ? ORDER BY active_since, fingerprint", ruleId).toArray();
    return rows.map(toAlert);
  }

  /** Rule ids with active alerts. */
  alertRuleIds(): string[] {
    return this.sql
      .exec<{ rule_id: string }>("SELECT DISTINCT rule_id FROM alerts")
      .toArray()
      .map((r) => r.rule_id);
  }

  /** Replaces a rule's active set and appends its resolved alerts to the bounded history. */
  replaceAlerts(ruleId: string, active: readonly ActiveAlert[], resolved: readonly ResolvedAlert[]): void {
    this.sql.exec("DELETE FROM alerts WHERE rule_id = ?", ruleId);
    for (const a of active) {
      this.sql.exec(
        `INSERT INTO alerts (fingerprint, rule_id, state, labels, annotations, active_since, fired_at, last_notified_at, extra)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (fingerprint) DO NOTHING`,
        a.fingerprint,
        ruleId,
        a.state,
        JSON.stringify(a.labels),
        JSON.stringify(a.annotations),
        a.active_since,
        a.fired_at,
        a.last_notified_at,
        JSON.stringify({ host_id: a.host_id, job_id: a.job_id, tags: a.tags }),
      );
    }
    for (const r of resolved) {
      this.sql.exec(
        "INSERT INTO history (fingerprint, rule_id, labels, annotations, active_since, fired_at, resolved_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
        r.fingerprint,
        ruleId,
        JSON.stringify(r.labels),
        JSON.stringify(r.annotations),
        r.active_since,
        r.fired_at,
        r.resolved_at,
      );
    }
    if (resolved.length > 0) {
      this.sql.exec("DELETE FROM history WHERE id <= (SELECT MAX(id) FROM history) - ?", MAX_HISTORY);
    }
  }

  history(limit: number, before?: number): HistoryRow[] {
    return this.sql
      .exec<Row>("SELECT * FROM history WHERE id < ? ORDER BY id DESC LIMIT ?", before ?? Number.MAX_SAFE_INTEGER, limit)
      .toArray()
      .map((r) => ({
        id: r.id as number,
        fingerprint: r.fingerprint as string,
        rule_id: r.rule_id as string,
        labels: JSON.parse(r.labels as string),
        annotations: JSON.parse(r.annotations as string),
        active_since: r.active_since as number,
        fired_at: r.fired_at as number,
        resolved_at: r.resolved_at as number,
      }));
  }

  // ---- notifications and their outbox ----

  /** Stores a payload and one pending delivery per enabled receiver, due now. */
  addNotification(ruleId: string, status: "firing" | "resolved", payload: string, now: number): number {
    const id = this.sql
      .exec<{ id: number }>(
        "INSERT INTO notifications (rule_id, status, payload, created_at) VALUES (?, ?, ?, ?) RETURNING notification_id AS id",
        ruleId,
        status,
        payload,
        now,
      )
      .one().id;
    this.sql.exec(
      `INSERT INTO deliveries (notification_id, receiver_id, state, next_at, created_at)
       SELECT ?, receiver_id, 'pending', ?, ? FROM receivers WHERE enabled = 1`,
      id,
      now,
      now,
    );
    return id;
  }

  /** Pending deliveries due by `now` to enabled receivers, oldest first. */
  dueDeliveries(now: number, limit: number): DueDelivery[] {
    return this.sql
      .exec<Row>(
        `SELECT d.*, n.payload, n.rule_id, n.status, r.name AS r_name, r.url AS r_url, r.secret AS r_secret, r.enabled AS r_enabled,
           r.created_at AS r_created_at, r.updated_at AS r_updated_at
         FROM deliveries d JOIN notifications n USING (notification_id) JOIN receivers r USING (receiver_id)
         WHERE d.state = 'pending' AND d.next_at <= ? AND r.enabled = 1 ORDER BY d.next_at LIMIT ?`,
        now,
        limit,
      )
      .toArray()
      .map((r) => ({
        ...toDelivery(r),
        payload: r.payload as string,
        receiver: {
          receiver_id: r.receiver_id as string,
          name: r.r_name as string,
          url: r.r_url as string,
          secret: r.r_secret as string,
          enabled: r.r_enabled === 1,
          created_at: r.r_created_at as number,
          updated_at: r.r_updated_at as number,
        },
      }));
  }

  /** When the next pending delivery to an enabled receiver is due, or null. */
  nextDeliveryAt(): number | null {
    return this.sql
      .exec<{ t: number | null }>(
        "SELECT MIN(d.next_at) AS t FROM deliveries d JOIN receivers r USING (receiver_id) WHERE d.state = 'pending' AND r.enabled = 1",
      )
      .one().t;
  }

  delivered(notificationId: number, receiverId: string, attempts: number, now: number): void {
    this.sql.exec(
      "UPDATE deliveries SET state = 'delivered', attempts = ?, next_at = NULL, finished_at = ?, last_error = NULL WHERE notification_id = ? AND receiver_id = ? AND state = 'pending'",
      attempts,
      now,
      notificationId,
      receiverId,
    );
  }

  retryLater(notificationId: number, receiverId: string, attempts: number, nextAt: number, error: string): void {
    this.sql.exec(
      "UPDATE deliveries SET attempts = ?, next_at = ?, last_error = ? WHERE notification_id = ? AND receiver_id = ? AND state = 'pending'",
      attempts,
      nextAt,
      error.slice(0, MAX_ERROR_CHARS),
      notificationId,
      receiverId,
    );
  }

  failed(notificationId: number, receiverId: string, attempts: number, now: number, error: string): void {
    this.sql.exec(
      "UPDATE deliveries SET state = 'failed', attempts = ?, next_at = NULL, finished_at = ?, last_error = ? WHERE notification_id = ? AND receiver_id = ? AND state = 'pending'",
      attempts,
      now,
      error.slice(0, MAX_ERROR_CHARS),
      notificationId,
      receiverId,
    );
  }

  /**
   * Enforces the outbox bounds: pending rows older than `maxAgeMs` (their receiver disabled, say)
   * and pending rows past MAX_PENDING_DELIVERIES fail; finished rows past MAX_FINISHED_DELIVERIES
   * and notifications nothing refers to are deleted.
   */
  pruneOutbox(now: number, maxAgeMs: number): void {
    this.sql.exec(
      "UPDATE deliveries SET state = 'failed', next_at = NULL, finished_at = ?, last_error = COALESCE(last_error, 'not delivered') || ' (gave up: older than the notification age bound)' WHERE state = 'pending' AND created_at < ?",
      now,
      now - maxAgeMs,
    );
    const pending = this.sql.exec<{ n: number }>("SELECT COUNT(*) AS n FROM deliveries WHERE state = 'pending'").one().n;
    if (pending > MAX_PENDING_DELIVERIES) {
      this.sql.exec(
        `UPDATE deliveries SET state = 'failed', next_at = NULL, finished_at = ?, last_error = 'dropped: too many undelivered notifications'
         WHERE rowid IN (SELECT rowid FROM deliveries WHERE state = 'pending' ORDER BY created_at LIMIT ?)`,
        now,
        pending - MAX_PENDING_DELIVERIES,
      );
    }
    const finished = this.sql.exec<{ n: number }>("SELECT COUNT(*) AS n FROM deliveries WHERE state != 'pending'").one().n;
    if (finished > MAX_FINISHED_DELIVERIES) {
      this.sql.exec(
        "DELETE FROM deliveries WHERE rowid IN (SELECT rowid FROM deliveries WHERE state != 'pending' ORDER BY finished_at LIMIT ?)",
        finished - MAX_FINISHED_DELIVERIES,
      );
    }
    this.sql.exec(
      "DELETE FROM notifications WHERE created_at < ? AND notification_id NOT IN (SELECT notification_id FROM deliveries)",
      now - 60_000,
    );
  }

  deliveries(opts: { state?: DeliveryState | undefined; limit: number }): DeliveryRow[] {
    const where = opts.state ? "WHERE d.state = ?" : "";
    const binds = opts.state ? [opts.state, opts.limit] : [opts.limit];
    return this.sql
      .exec<Row>(
        `SELECT d.*, n.rule_id, n.status FROM deliveries d JOIN notifications n USING (notification_id) ${where}
         ORDER BY d.notification_id DESC, d.receiver_id LIMIT ?`,
        ...binds,
      )
      .toArray()
      .map(toDelivery);
  }

  // ---- events outbox ----

  addEvent(body: unknown, now: number): void {
    this.sql.exec("INSERT INTO event_outbox (body, next_at) VALUES (?, ?)", JSON.stringify(body), now);
  }

  dueEvents(now: number, limit: number): EventRow[] {
    return this.sql
      .exec<Row>("SELECT seq, body, attempts FROM event_outbox WHERE next_at <= ? ORDER BY seq LIMIT ?", now, limit)
      .toArray()
      .map((r) => ({ seq: r.seq as number, body: r.body as string, attempts: r.attempts as number }));
  }

  eventsPublished(throughSeq: number): void {
    this.sql.exec("DELETE FROM event_outbox WHERE seq <= ?", throughSeq);
  }

  /** The whole outbox waits for the retry: events go out in order. */
  eventsRetryAt(nextAt: number): void {
    this.sql.exec("UPDATE event_outbox SET attempts = attempts + 1, next_at = ?", nextAt);
  }

  nextEventAt(): number | null {
    return this.sql.exec<{ t: number | null }>("SELECT MIN(next_at) AS t FROM event_outbox").one().t;
  }

  eventAttempts(): number {
    return this.sql.exec<{ a: number | null }>("SELECT MAX(attempts) AS a FROM event_outbox").one().a ?? 0;
  }
}

function toRule(r: Row): RuleRow {
  return {
    rule_id: r.rule_id as string,
    spec: JSON.parse(r.spec as string) as AlertRuleInput,
    enabled: r.enabled === 1,
    created_at: r.created_at as number,
    updated_at: r.updated_at as number,
  };
}

function toReceiver(r: Row): ReceiverRow {
  return {
    receiver_id: r.receiver_id as string,
    name: r.name as string,
    url: r.url as string,
    secret: r.secret as string,
    enabled: r.enabled === 1,
    created_at: r.created_at as number,
    updated_at: r.updated_at as number,
  };
}

function toAlert(r: Row): ActiveAlert {
  const extra = JSON.parse(r.extra as string) as { host_id?: string; job_id?: string; tags?: string[] };
  return {
    fingerprint: r.fingerprint as string,
    rule_id: r.rule_id as string,
    state: r.state as ActiveAlert["state"],
    labels: JSON.parse(r.labels as string),
    annotations: JSON.parse(r.annotations as string),
    active_since: r.active_since as number,
    fired_at: r.fired_at as number | null,
    last_notified_at: r.last_notified_at as number | null,
    host_id: extra.host_id,
    job_id: extra.job_id,
    tags: extra.tags,
  };
}

function toDelivery(r: Row): DeliveryRow {
  return {
    notification_id: r.notification_id as number,
    receiver_id: r.receiver_id as string,
    rule_id: r.rule_id as string,
    status: r.status as DeliveryRow["status"],
    state: r.state as DeliveryState,
    attempts: r.attempts as number,
    next_at: r.next_at as number | null,
    created_at: r.created_at as number,
    finished_at: r.finished_at as number | null,
    last_error: r.last_error as string | null,
  };
}
