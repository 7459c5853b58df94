-- Single-use enrolment tokens; only a hash of the token is stored.
CREATE TABLE enrollment_tokens (
  token_id TEXT PRIMARY KEY,
  token_hash TEXT NOT NULL UNIQUE,
  created_at TEXT NOT NULL,
  created_by TEXT,
  expires_at TEXT NOT NULL,
  tags TEXT NOT NULL DEFAULT '[]',
  used_at TEXT,
  used_by_host TEXT
);

-- Every certificate a host may present: the enrolment one and its renewals, until they expire.
CREATE TABLE host_certs (
  fingerprint TEXT PRIMARY KEY,
  host_id TEXT NOT NULL REFERENCES hosts(host_id) ON DELETE CASCADE,
  not_after TEXT,
  created_at TEXT NOT NULL
);
CREATE INDEX host_certs_by_host ON host_certs(host_id);

INSERT INTO host_certs (fingerprint, host_id, not_after, created_at)
  SELECT cert_fingerprint_sha256, host_id, NULL, created_at FROM hosts;
