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
  /* 3 */ `
  -- Metrics aggregated from every publisher (worker/metrics/metrics-store.ts owns these tables).
  -- Series keys are the Prometheus spelling: name{label="value",...}, labels sorted, never per host.
  CREATE TABLE metric_counters (key TEXT PRIMARY KEY, value REAL NOT NULL);
  -- buckets: JSON array of per-bucket (not cumulative) counts, LATENCY_BUCKETS_S then +Inf.
  CREATE TABLE metric_histograms (key TEXT PRIMARY KEY, buckets TEXT NOT NULL, sum REAL NOT NULL, count INTEGER NOT NULL);
  -- Absolute gauges per publishing source (a host's queue depth, its online 0/1), and their running sums,
  -- kept by difference so reading a total never scans the fleet.
  CREATE TABLE metric_gauges (source TEXT NOT NULL, key TEXT NOT NULL, value REAL NOT NULL, at INTEGER NOT NULL, PRIMARY KEY (source, key));
  CREATE TABLE metric_gauge_totals (key TEXT PRIMARY KEY, value REAL NOT NULL);
  -- One row per minute (start, epoch ms) with activity, kept a little over an hour; body: JSON MinuteRow.
  CREATE TABLE metric_minutes (minute INTEGER PRIMARY KEY, body TEXT NOT NULL);
  -- Exactly-once metrics: the highest delta number applied per source, apart from the events' watermark
  -- (a HostRelay numbers both from one outbox, but sends them as separate streams).
  CREATE TABLE metric_sources (source TEXT PRIMARY KEY, seq INTEGER NOT NULL, at INTEGER NOT NULL);
  CREATE INDEX metric_sources_by_at ON metric_sources(at);
  -- Each job's last reported state (from job.progress events); final ones are kept 24 hours.
  CREATE TABLE metric_jobs (job_id TEXT PRIMARY KEY, state TEXT NOT NULL, at INTEGER NOT NULL, final INTEGER NOT NULL);
  CREATE INDEX metric_jobs_by_final ON metric_jobs(final, at);
  `,
  /* 4 */ `
  -- Subscriber filters too long for the socket's attachment (the runtime caps it at 2,048 bytes),
  -- by subscriber id; the attachment then says the filter is here. A row lives as long as its
  -- socket: deleted when the subscriber goes, and rows of sockets gone while the object slept are
  -- swept when it wakes. filter: JSON EventFilter.
  CREATE TABLE subscriber_filters (id TEXT PRIMARY KEY, filter TEXT NOT NULL);
  `,
];
