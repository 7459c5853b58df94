/**
 * Numbered, additive migrations for an AuditLog shard's SQLite storage. Never edit an applied
 * entry; append a new one.
 */
export const AUDIT_LOG_MIGRATIONS: readonly string[] = [
  /* 1 */ `
  -- head_seq / head_hash: the chain's last record; pruned_through: highest seq removed by
  -- retention; checkpoint_seq / checkpoint_at: the last signed checkpoint.
  CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);

  -- The chain. body is the record's canonical JSON exactly as hashed (hash included), so an
  -- export hands out the stored bytes. at: the record's own time (epoch ms), for queries;
  -- stored_at: when this shard chained it, for retention (monotonic with seq up to clock skew).
  CREATE TABLE records (
    seq INTEGER PRIMARY KEY,
    at INTEGER NOT NULL,
    stored_at INTEGER NOT NULL,
    action TEXT NOT NULL,
    sub TEXT,
    host_id TEXT,
    job_id TEXT,
    body TEXT NOT NULL
  );
  CREATE INDEX records_by_at ON records(at, seq);
  CREATE INDEX records_by_host ON records(host_id, at) WHERE host_id IS NOT NULL;
  CREATE INDEX records_by_job ON records(job_id, at) WHERE job_id IS NOT NULL;
  CREATE INDEX records_by_stored_at ON records(stored_at);

  -- First stage of a mutation's record (fail-closed): written before the handler runs, chained
  -- when its outcome arrives, or by the alarm with outcome "unknown" after the pending timeout.
  -- Never part of the chain itself.
  CREATE TABLE pending (
    id TEXT PRIMARY KEY,
    created_at INTEGER NOT NULL,
    body TEXT NOT NULL
  );
  CREATE INDEX pending_by_created ON pending(created_at);

  -- Signed checkpoints (body: the checkpoint's JSON, signature included), kept from the last prune on.
  CREATE TABLE checkpoints (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    seq INTEGER NOT NULL,
    kind TEXT NOT NULL,
    at INTEGER NOT NULL,
    body TEXT NOT NULL
  );
  CREATE INDEX checkpoints_by_seq ON checkpoints(seq);

  -- Idempotent ingest from HostRelay / JobCoordinator outboxes: the highest source_seq chained
  -- per source, so a re-delivered batch (its answer was lost) is not chained twice.
  CREATE TABLE sources (
    source TEXT PRIMARY KEY,
    seq INTEGER NOT NULL,
    at INTEGER NOT NULL
  );
  CREATE INDEX sources_by_at ON sources(at);
  `,
];
