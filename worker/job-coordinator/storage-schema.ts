/**
 * Numbered, additive migrations for a JobCoordinator's SQLite storage. Never edit an
 * applied entry; append a new one.
 */
export const JOB_COORDINATOR_MIGRATIONS: readonly string[] = [
  /* 1 */ `
  -- The job itself: one row. Times are epoch milliseconds.
  CREATE TABLE job (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    job_id TEXT NOT NULL,
    command_type TEXT NOT NULL,
    parameters TEXT NOT NULL,
    target TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    created_by TEXT NOT NULL,
    timeout_s INTEGER,
    max_attempts INTEGER,
    -- Delivery deadline of every host's copy (absolute, fixed at acceptance).
    expires_at INTEGER NOT NULL,
    host_count INTEGER NOT NULL,
    max_concurrency INTEGER NOT NULL,
    max_errors INTEGER,
    -- 'cancelled' | 'max_errors' once the rollout was stopped.
    stop_kind TEXT,
    stop_reason TEXT,
    stopped_at INTEGER,
    finished_at INTEGER,
    -- When the next coalesced job.progress event is due (null: nothing to report).
    progress_due_at INTEGER,
    progress_attempts INTEGER NOT NULL DEFAULT 0
  );

  -- One row per target host; seq is the dispatch order.
  CREATE TABLE hosts (
    seq INTEGER PRIMARY KEY,
    host_id TEXT NOT NULL UNIQUE,
    state TEXT NOT NULL,
    message_id TEXT,
    dispatched_at INTEGER,
    updated_at INTEGER NOT NULL,
    -- The HostRelay's time of the transition that set state, to order a requeue after a dead letter.
    state_at INTEGER NOT NULL,
    response_status TEXT,
    detail TEXT,
    -- Dispatch RPCs tried for this host.
    attempts INTEGER NOT NULL DEFAULT 0,
    -- dispatching: when to (re)try the enqueue RPC if its answer has not been recorded by then.
    due_at INTEGER,
    -- The job was stopped while this host's command was queued: when to ask its HostRelay to cancel it.
    cancel_at INTEGER
  );
  CREATE INDEX hosts_by_state ON hosts(state, seq);
  CREATE INDEX hosts_by_due ON hosts(due_at) WHERE due_at IS NOT NULL;
  CREATE INDEX hosts_by_cancel ON hosts(cancel_at) WHERE cancel_at IS NOT NULL;
  `,
  /* 2 */ `
  -- Idempotent creation: the hash of the request that created the job (null: no Idempotency-Key),
  -- and whether the job's registry (D1) row is known to exist. Nothing is dispatched before it is,
  -- so a running job is always listed; registry_due_at is when to retry the write.
  ALTER TABLE job ADD COLUMN request_hash TEXT;
  ALTER TABLE job ADD COLUMN registered_at INTEGER;
  ALTER TABLE job ADD COLUMN registry_due_at INTEGER;
  ALTER TABLE job ADD COLUMN registry_attempts INTEGER NOT NULL DEFAULT 0;
  -- Jobs created before this migration were registered by the route before they were stored.
  UPDATE job SET registered_at = created_at;
  -- Sequence number of the job's job.progress events, so FleetEvents drops a republished one.
  ALTER TABLE job ADD COLUMN progress_seq INTEGER NOT NULL DEFAULT 0;
  `,
  /* 3 */ `
  -- A cancel with abort_running also cancels commands already delivered or running on their hosts.
  ALTER TABLE job ADD COLUMN abort_running INTEGER NOT NULL DEFAULT 0;
  `,
  /* 4 */ `
  -- Audit records of the job's own lifecycle (1: stopped by max_errors, 2: finished), numbered so the
  -- audit shard drops a re-delivered one: the highest the shard has confirmed, and when to retry.
  ALTER TABLE job ADD COLUMN audit_seq INTEGER NOT NULL DEFAULT 0;
  ALTER TABLE job ADD COLUMN audit_due_at INTEGER;
  `,
  /* 5 */ `
  -- Hosts offline at their turn wait in the job (state 'waiting', listed in the registry's job_waits):
  -- when to next ask the registry which of them came online, and whether job_waits may hold rows of
  -- this job (cleared once the job has finished and they are deleted).
  ALTER TABLE job ADD COLUMN wait_sweep_at INTEGER;
  ALTER TABLE job ADD COLUMN waits_open INTEGER NOT NULL DEFAULT 0;
  `,
];
