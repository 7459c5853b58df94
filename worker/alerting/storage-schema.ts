/**
 * Numbered, additive migrations for the Alerting object's SQLite storage. Never edit an applied
 * entry; append a new one. Times are epoch milliseconds.
 */
export const ALERTING_MIGRATIONS: readonly string[] = [
  /* 1 */ `
  -- last_eval_at: when rules were last evaluated; external_url: the origin of the latest rule change.
  CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);

  -- spec: the rule as validated (schemas/alerts.ts AlertRuleInput), JSON.
  CREATE TABLE rules (
    rule_id TEXT PRIMARY KEY,
    spec TEXT NOT NULL,
    enabled INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
  );

  -- secret: the HMAC key; stored because every POST is signed with it, never returned by the API.
  CREATE TABLE receivers (
    receiver_id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    url TEXT NOT NULL,
    secret TEXT NOT NULL,
    enabled INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
  );

  -- The active set: pending and firing alerts, one row per fingerprint (its labels' hash).
  -- extra: host_id, job_id and tags for the alert's events.
  CREATE TABLE alerts (
    fingerprint TEXT PRIMARY KEY,
    rule_id TEXT NOT NULL,
    state TEXT NOT NULL,
    labels TEXT NOT NULL,
    annotations TEXT NOT NULL,
    active_since INTEGER NOT NULL,
    fired_at INTEGER,
    last_notified_at INTEGER,
    extra TEXT NOT NULL
  );
  CREATE INDEX alerts_by_rule ON alerts(rule_id);

  -- Alerts that fired and resolved, newest kept (MAX_HISTORY).
  CREATE TABLE history (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    fingerprint TEXT NOT NULL,
    rule_id TEXT NOT NULL,
    labels TEXT NOT NULL,
    annotations TEXT NOT NULL,
    active_since INTEGER NOT NULL,
    fired_at INTEGER NOT NULL,
    resolved_at INTEGER NOT NULL
  );

  -- One Alertmanager payload per group notification; receiver is filled in at send time.
  CREATE TABLE notifications (
    notification_id INTEGER PRIMARY KEY AUTOINCREMENT,
    rule_id TEXT NOT NULL,
    status TEXT NOT NULL,
    payload TEXT NOT NULL,
    created_at INTEGER NOT NULL
  );

  -- The durable outbox: one row per (notification, receiver). state: pending (next_at: when to
  -- try), delivered or failed (finished_at). Finished rows are kept for the API, then pruned.
  CREATE TABLE deliveries (
    notification_id INTEGER NOT NULL,
    receiver_id TEXT NOT NULL,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_at INTEGER,
    created_at INTEGER NOT NULL,
    finished_at INTEGER,
    last_error TEXT,
    PRIMARY KEY (notification_id, receiver_id)
  );
  CREATE INDEX deliveries_due ON deliveries(next_at) WHERE state = 'pending';
  CREATE INDEX deliveries_by_receiver ON deliveries(receiver_id);

  -- alert.firing / alert.resolved events not yet accepted by FleetEvents; seq is their source_seq.
  CREATE TABLE event_outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    body TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_at INTEGER NOT NULL
  );
  `,
];
