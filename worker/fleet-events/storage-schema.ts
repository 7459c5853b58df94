/**
 * Numbered, additive migrations for the FleetEvents object's SQLite storage. Never edit an
 * applied entry; append a new one.
 */
export const FLEET_EVENTS_MIGRATIONS: readonly string[] = [
  /* 1 */ `
  -- epoch: a random UUID made with the storage (offsets are only comparable within one epoch);
  -- pruned_through: the highest offset ever pruned, so coverage is known even with no rows left.
  CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);

  -- The bounded history, a contiguous run of offsets: pruning only ever removes the oldest rows.
  -- AUTOINCREMENT keeps offsets from being reused after the newest rows are pruned.
  -- at: when FleetEvents stored the event (epoch ms), which the age bound uses; the
  -- publisher's own time is the body's "at".
  CREATE TABLE events (
    "offset" INTEGER PRIMARY KEY AUTOINCREMENT,
    at INTEGER NOT NULL,
    type TEXT NOT NULL,
    host_id TEXT,
    message_id TEXT,
    job_id TEXT,
    body TEXT NOT NULL
  );
  CREATE INDEX events_by_at ON events(at);
  `,
  /* 2 */ `
  -- Idempotent publishing: the highest source_seq stored per publishing source (a HostRelay's or
  -- JobCoordinator's name), so a republished event (its reply was lost) is dropped instead of
  -- stored under a new offset. at: when the source last published; rows idle past the history's
  -- age bound are pruned, and the table is capped (MAX_SOURCES).
  CREATE TABLE sources (
    source TEXT PRIMARY KEY,
    seq INTEGER NOT NULL,
    at INTEGER NOT NULL
  );
  CREATE INDEX sources_by_at ON sources(at);
  `,
];
