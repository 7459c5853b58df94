-- The fleet registry: one row per enrolled host, bound to its certificate.
CREATE TABLE hosts (
  host_id TEXT PRIMARY KEY,
  hostname TEXT NOT NULL,
  cert_fingerprint_sha256 TEXT NOT NULL UNIQUE,
  created_at TEXT NOT NULL,
  revoked_at TEXT,
  online INTEGER NOT NULL DEFAULT 0,
  -- The connection that last set `online`, so a late close of a replaced socket cannot mark a live host offline.
  connection_id TEXT,
  connected_at TEXT,
  last_seen_at TEXT,
  agent_info TEXT
);

CREATE TABLE host_tags (
  host_id TEXT NOT NULL REFERENCES hosts(host_id) ON DELETE CASCADE,
  tag TEXT NOT NULL,
  PRIMARY KEY (host_id, tag)
);
CREATE INDEX host_tags_by_tag ON host_tags(tag, host_id);
