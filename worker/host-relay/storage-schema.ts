import { foldMigrations, type SqlBaseline } from "../sql-migrations.ts";

/**
 * Numbered, additive migrations for a HostRelay's SQLite storage. Never edit an
 * applied entry; append a new one.
 */
export const HOST_RELAY_MIGRATIONS: readonly string[] = [
  /* 1 */ `
  CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);

  -- One row per accepted command; seq is the acceptance order, which is the delivery order.
  CREATE TABLE commands (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    message_id TEXT NOT NULL UNIQUE,
    command_type TEXT NOT NULL,
    parameters TEXT NOT NULL,
    timeout_s INTEGER NOT NULL,
    max_attempts INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    -- Sent on the current connection and not yet acked.
    in_flight INTEGER NOT NULL DEFAULT 0,
    last_attempt_at INTEGER,
    retry_at INTEGER,
    terminal_at INTEGER,
    response_status TEXT,
    result TEXT,
    output_bytes INTEGER NOT NULL DEFAULT 0,
    idempotency_key TEXT UNIQUE,
    request_hash TEXT
  );
  CREATE INDEX commands_by_state ON commands(state, seq);
  CREATE INDEX commands_by_retry ON commands(retry_at) WHERE in_flight = 1;
  CREATE INDEX commands_by_expiry ON commands(expires_at) WHERE state = 'queued';
  CREATE INDEX commands_by_terminal ON commands(terminal_at) WHERE terminal_at IS NOT NULL;

  CREATE TABLE transitions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    message_id TEXT NOT NULL,
    state TEXT NOT NULL,
    at INTEGER NOT NULL,
    attempt INTEGER,
    detail TEXT
  );
  CREATE INDEX transitions_by_command ON transitions(message_id, id);

  CREATE TABLE dead_letters (
    message_id TEXT PRIMARY KEY,
    dead_lettered_at INTEGER NOT NULL,
    reason TEXT NOT NULL
  );

  -- Output streamed in status frames; frame_id makes a resent frame a no-op.
  CREATE TABLE outputs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    message_id TEXT NOT NULL,
    frame_id TEXT NOT NULL UNIQUE,
    seq INTEGER,
    chunk TEXT NOT NULL,
    at INTEGER NOT NULL
  );
  CREATE INDEX outputs_by_command ON outputs(message_id, seq, id);

  -- Invalid frames received from the agent, newest kept (bounded).
  CREATE TABLE frame_errors (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at INTEGER NOT NULL,
    code TEXT NOT NULL,
    detail TEXT NOT NULL
  );
  `,
  /* 2 */ `
  -- The job a command belongs to (null for direct commands).
  ALTER TABLE commands ADD COLUMN job_id TEXT;

  -- Notifications for other objects (job progress, fleet events), sent after the change that made them
  -- is stored and retried by the alarm until delivered, so nothing on the command path waits for them.
  CREATE TABLE outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    target TEXT NOT NULL,
    body TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    -- When the alarm must look at the row again if the flush that took it never finished.
    next_at INTEGER NOT NULL,
    -- After a failed delivery, no flush takes the row before this.
    backoff_until INTEGER
  );
  CREATE INDEX outbox_by_due ON outbox(next_at);
  `,
  /* 3 */ `
  -- Execution deadline of a delivered, running or cancelling command (timeout + grace).
  ALTER TABLE commands ADD COLUMN deadline_at INTEGER;
  -- The cancel frame last sent for a cancelling command, and whether the agent acked it.
  ALTER TABLE commands ADD COLUMN cancel_frame_id TEXT;
  ALTER TABLE commands ADD COLUMN cancel_sent_at INTEGER;
  CREATE INDEX commands_by_deadline ON commands(deadline_at) WHERE deadline_at IS NOT NULL;
  CREATE INDEX commands_by_cancel_frame ON commands(cancel_frame_id) WHERE cancel_frame_id IS NOT NULL;

  -- Rows merge under coalesce_key until not_before (streamed output); a leased row is being delivered.
  ALTER TABLE outbox ADD COLUMN coalesce_key TEXT;
  ALTER TABLE outbox ADD COLUMN not_before INTEGER NOT NULL DEFAULT 0;
  ALTER TABLE outbox ADD COLUMN leased INTEGER NOT NULL DEFAULT 0;
  CREATE INDEX outbox_by_coalesce_key ON outbox(coalesce_key) WHERE coalesce_key IS NOT NULL;
  `,
];

/**
 * What the migrations leave, as one script without ALTERs, for a HostRelay created from scratch: a
 * job to 10,000 hosts creates 10,000 of them, and each ALTER makes SQLite re-read the whole schema.
 */
export const HOST_RELAY_BASELINE: SqlBaseline | undefined = foldMigrations(HOST_RELAY_MIGRATIONS) ?? undefined;
