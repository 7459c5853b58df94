import type { AgentInfo, HostStatus, HostView } from "../schemas/index.ts";

/** D1 queries for the fleet registry (hosts and their certificate bindings). */

interface HostRow {
  host_id: string;
  hostname: string;
  cert_fingerprint_sha256: string;
  created_at: string;
  revoked_at: string | null;
  online: number;
  connected_at: string | null;
  last_seen_at: string | null;
  agent_info: string | null;
  tags: string | null;
}

const HOST_SELECT = `SELECT h.*, (SELECT json_group_array(tag) FROM (SELECT tag FROM host_tags t WHERE t.host_id = h.host_id ORDER BY tag)) AS tags FROM hosts h`;

function toView(row: HostRow): HostView {
  const status: HostStatus = row.revoked_at ? "revoked" : row.online ? "online" : "offline";
  return {
    host_id: row.host_id,
    hostname: row.hostname,
    cert_fingerprint_sha256: row.cert_fingerprint_sha256,
    tags: row.tags ? (JSON.parse(row.tags) as string[]) : [],
    status,
    created_at: row.created_at,
    connected_at: row.connected_at,
    last_seen_at: row.last_seen_at,
    revoked_at: row.revoked_at,
    agent: row.agent_info ? (JSON.parse(row.agent_info) as AgentInfo) : null,
  };
}

export async function insertHost(
  db: D1Database,
  host: { host_id: string; hostname: string; cert_fingerprint_sha256: string; tags: string[]; created_at: string },
): Promise<"ok" | "duplicate"> {
  const statements = [
    db
      .prepare("INSERT INTO hosts (host_id, hostname, cert_fingerprint_sha256, created_at) VALUES (?, ?, ?, ?)")
      .bind(host.host_id, host.hostname, host.cert_fingerprint_sha256, host.created_at),
    db
      .prepare("INSERT INTO host_certs (fingerprint, host_id, not_after, created_at) VALUES (?, ?, NULL, ?)")
      .bind(host.cert_fingerprint_sha256, host.host_id, host.created_at),
    ...[...new Set(host.tags)].map((tag) => db.prepare("INSERT INTO host_tags (host_id, tag) VALUES (?, ?)").bind(host.host_id, tag)),
  ];
  try {
    // batch() is one transaction: the host and its tags land together or not at all.
    await db.batch(statements);
    return "ok";
  } catch (err) {
    if (String(err).includes("UNIQUE constraint failed")) return "duplicate";
    throw err;
  }
}

export async function getHost(db: D1Database, hostId: string): Promise<HostView | null> {
  const row = await db.prepare(`${HOST_SELECT} WHERE h.host_id = ?`).bind(hostId).first<HostRow>();
  return row ? toView(row) : null;
}

/**
 * One page in host_id order. Every filter is a condition on the row being walked (tags through the
 * host_tags primary key, at most MAX_HOST_FILTER_TAGS lookups per host), so a page costs at most one
 * pass over the hosts after the cursor, and the LIMIT stops it as soon as the page is full.
 */
export async function listHosts(
  db: D1Database,
  opts: {
    status?: HostStatus | undefined;
    tags?: string[] | undefined;
    match?: "any" | "all" | undefined;
    q?: string | undefined;
    limit: number;
    after?: string | undefined;
  },
): Promise<{ items: HostView[]; last: string | null }> {
  const where: string[] = [];
  const binds: unknown[] = [];
  if (opts.after) {
    where.push("h.host_id > ?");
    binds.push(opts.after);
  }
  if (opts.status === "revoked") where.push("h.revoked_at IS NOT NULL");
  if (opts.status === "online") where.push("h.revoked_at IS NULL AND h.online = 1");
  if (opts.status === "offline") where.push("h.revoked_at IS NULL AND h.online = 0");
  if (opts.tags?.length) {
    const marks = opts.tags.map(() => "?").join(", ");
    where.push(
      opts.match === "all"
        ? `(SELECT COUNT(*) FROM host_tags t WHERE t.host_id = h.host_id AND t.tag IN (${marks})) = ${opts.tags.length}`
        : `EXISTS (SELECT 1 FROM host_tags t WHERE t.host_id = h.host_id AND t.tag IN (${marks}))`,
    );
    binds.push(...opts.tags);
  }
  if (opts.q) {
    // instr/substr rather than LIKE: the text is matched literally (no wildcards to escape), and D1
    // caps LIKE patterns at 50 bytes, which an escaped 64-character query can pass.
    const text = opts.q.toLowerCase();
    where.push("(instr(lower(h.hostname), ?) > 0 OR substr(h.host_id, 1, ?) = ?)");
    binds.push(text, text.length, text);
  }
  const sql = `${HOST_SELECT} ${where.length ? `WHERE ${where.join(" AND ")}` : ""} ORDER BY h.host_id LIMIT ?`;
  const { results } = await db
    .prepare(sql)
    .bind(...binds, opts.limit + 1)
    .all<HostRow>();
  const page = results.slice(0, opts.limit);
  return { items: page.map(toView), last: results.length > opts.limit ? page[page.length - 1]!.host_id : null };
}

/** The host a certificate is bound to, with its registration (so the connect path reads the registry once). */
export async function findHostByFingerprint(
  db: D1Database,
  fingerprint: string,
): Promise<{ host_id: string; revoked_at: string | null; tags: string[] } | null> {
  const row = await db
    .prepare(
      `SELECT h.host_id, h.revoked_at,
         (SELECT json_group_array(tag) FROM (SELECT tag FROM host_tags t WHERE t.host_id = h.host_id ORDER BY tag)) AS tags
       FROM host_certs c JOIN hosts h USING (host_id) WHERE c.fingerprint = ?`,
    )
    .bind(fingerprint)
    .first<{ host_id: string; revoked_at: string | null; tags: string | null }>();
  return row ? { host_id: row.host_id, revoked_at: row.revoked_at, tags: row.tags ? (JSON.parse(row.tags) as string[]) : [] } : null;
}

export async function hostRegistration(
  db: D1Database,
  hostId: string,
): Promise<{ host_id: string; revoked_at: string | null; tags: string[] } | null> {
  const row = await db
    .prepare(
      "SELECT host_id, revoked_at, (SELECT json_group_array(tag) FROM (SELECT tag FROM host_tags t WHERE t.host_id = h.host_id ORDER BY tag)) AS tags FROM hosts h WHERE host_id = ?",
    )
    .bind(hostId)
    .first<{ host_id: string; revoked_at: string | null; tags: string | null }>();
  return row ? { host_id: row.host_id, revoked_at: row.revoked_at, tags: row.tags ? (JSON.parse(row.tags) as string[]) : [] } : null;
}

/** `hostRegistration` for many hosts in one statement (ids as one JSON parameter), with whether each is online; unregistered ids are absent. */
export async function hostRegistrations(
  db: D1Database,
  hostIds: string[],
): Promise<Map<string, { revoked_at: string | null; tags: string[]; online: boolean }>> {
  const { results } = await db
    .prepare(
      `SELECT h.host_id, h.revoked_at, h.online,
         (SELECT json_group_array(tag) FROM (SELECT tag FROM host_tags t WHERE t.host_id = h.host_id ORDER BY tag)) AS tags
       FROM json_each(?) j JOIN hosts h ON h.host_id = j.value`,
    )
    .bind(JSON.stringify(hostIds))
    .all<{ host_id: string; revoked_at: string | null; online: number; tags: string | null }>();
  return new Map(
    results.map((r) => [
      r.host_id,
      { revoked_at: r.revoked_at, tags: r.tags ? (JSON.parse(r.tags) as string[]) : [], online: r.online === 1 },
    ]),
  );
}

// ---- job waits (migrations/0005_job_waits.sql) ----

/**
 * Records that `jobId` holds its command for each of `hostIds`, then reads which of them are online
 * (or revoked: their relays refuse, and the host is skipped) now, in one batch (one transaction). The relay of a host that says hello writes `online` first and
 * reads its waits after, so a host that comes online meanwhile is seen by one side or both.
 */
export async function addJobWaits(db: D1Database, jobId: string, hostIds: string[]): Promise<Set<string>> {
  const ids = JSON.stringify(hostIds);
  const [, online] = await db.batch<{ host_id: string }>([
    db.prepare("INSERT OR IGNORE INTO job_waits (host_id, job_id) SELECT value, ? FROM json_each(?)").bind(jobId, ids),
    db
      .prepare("SELECT h.host_id FROM json_each(?) j JOIN hosts h ON h.host_id = j.value WHERE h.online = 1 OR h.revoked_at IS NOT NULL")
      .bind(ids),
  ]);
  return new Set(online!.results.map((r) => r.host_id));
}

/** The jobs holding a command for this host. */
export async function jobsWaitingFor(db: D1Database, hostId: string): Promise<string[]> {
  const { results } = await db.prepare("SELECT job_id FROM job_waits WHERE host_id = ? LIMIT 1000").bind(hostId).all<{ job_id: string }>();
  return results.map((r) => r.job_id);
}

/** Of the hosts a job waits for, those to try now: online, revoked, or no longer registered. */
export async function jobWaitsReady(db: D1Database, jobId: string): Promise<string[]> {
  const { results } = await db
    .prepare(
      `SELECT w.host_id FROM job_waits w LEFT JOIN hosts h ON h.host_id = w.host_id
       WHERE w.job_id = ? AND (h.host_id IS NULL OR h.online = 1 OR h.revoked_at IS NOT NULL)`,
    )
    .bind(jobId)
    .all<{ host_id: string }>();
  return results.map((r) => r.host_id);
}

/** Forgets a job's waits: these hosts (or, with no list, all of them). */
export async function deleteJobWaits(db: D1Database, jobId: string, hostIds?: string[]): Promise<void> {
  if (hostIds === undefined) {
    await db.prepare("DELETE FROM job_waits WHERE job_id = ?").bind(jobId).run();
    return;
  }
  if (hostIds.length === 0) return;
  await db
    .prepare("DELETE FROM job_waits WHERE job_id = ? AND host_id IN (SELECT value FROM json_each(?))")
    .bind(jobId, JSON.stringify(hostIds))
    .run();
}

/** Whether the host is registered (revoked or not): one primary-key lookup. */
export async function hostExists(db: D1Database, hostId: string): Promise<boolean> {
  return (await db.prepare("SELECT 1 AS found FROM hosts WHERE host_id = ?").bind(hostId).first()) !== null;
}

/** Marks a host revoked; returns false if it does not exist. Revoking twice keeps the first time. */
export async function revokeHost(db: D1Database, hostId: string, at: string): Promise<boolean> {
  const res = await db
    .prepare("UPDATE hosts SET revoked_at = COALESCE(revoked_at, ?), online = 0 WHERE host_id = ?")
    .bind(at, hostId)
    .run();
  return res.meta.changes > 0;
}

export async function markOnline(db: D1Database, hostId: string, connectionId: string, at: string, agent: AgentInfo): Promise<void> {
  await db
    .prepare(
      "UPDATE hosts SET online = 1, connection_id = ?, connected_at = ?, last_seen_at = ?, agent_info = ? WHERE host_id = ? AND revoked_at IS NULL",
    )
    .bind(connectionId, at, at, JSON.stringify(agent), hostId)
    .run();
}

/** Only the connection that set `online` may clear it, so a replaced socket's late close is harmless. */
export async function markOffline(db: D1Database, hostId: string, connectionId: string, at: string): Promise<void> {
  await db
    .prepare("UPDATE hosts SET online = 0, last_seen_at = ? WHERE host_id = ? AND connection_id = ?")
    .bind(at, hostId, connectionId)
    .run();
}

// ---- enrolment ----

export async function insertEnrollmentToken(
  db: D1Database,
  t: { token_id: string; token_hash: string; created_at: string; created_by: string; expires_at: string; tags: string[] },
): Promise<void> {
  await db
    .prepare("INSERT INTO enrollment_tokens (token_id, token_hash, created_at, created_by, expires_at, tags) VALUES (?, ?, ?, ?, ?, ?)")
    .bind(t.token_id, t.token_hash, t.created_at, t.created_by, t.expires_at, JSON.stringify([...new Set(t.tags)]))
    .run();
}

export async function findEnrollmentToken(
  db: D1Database,
  tokenHash: string,
): Promise<{ token_id: string; expires_at: string; used_at: string | null; tags: string } | null> {
  return db.prepare("SELECT token_id, expires_at, used_at, tags FROM enrollment_tokens WHERE token_hash = ?").bind(tokenHash).first();
}

/**
 * Registers the enrolling host and burns its token in one transaction. Every statement is
 * conditioned on the token still being unused and unexpired, so two racing enrolments with
 * one token register exactly one host. Returns false if the token was no longer usable.
 */
export async function enrollHost(
  db: D1Database,
  e: { token_hash: string; host_id: string; hostname: string; fingerprint: string; not_after: string; now: string },
): Promise<boolean> {
  const usable = "SELECT 1 FROM enrollment_tokens WHERE token_hash = ? AND used_at IS NULL AND expires_at > ?";
  const results = await db.batch([
    db
      .prepare(`INSERT INTO hosts (host_id, hostname, cert_fingerprint_sha256, created_at) SELECT ?, ?, ?, ? WHERE EXISTS (${usable})`)
      .bind(e.host_id, e.hostname, e.fingerprint, e.now, e.token_hash, e.now),
    db
      .prepare(`INSERT INTO host_certs (fingerprint, host_id, not_after, created_at) SELECT ?, ?, ?, ? WHERE EXISTS (${usable})`)
      .bind(e.fingerprint, e.host_id, e.not_after, e.now, e.token_hash, e.now),
    db
      .prepare(
        `INSERT INTO host_tags (host_id, tag) SELECT ?, j.value FROM enrollment_tokens t, json_each(t.tags) j
         WHERE t.token_hash = ? AND t.used_at IS NULL AND t.expires_at > ?`,
      )
      .bind(e.host_id, e.token_hash, e.now),
    db
      .prepare("UPDATE enrollment_tokens SET used_at = ?, used_by_host = ? WHERE token_hash = ? AND used_at IS NULL AND expires_at > ?")
      .bind(e.now, e.host_id, e.token_hash, e.now),
  ]);
  return (results[0]?.meta.changes ?? 0) === 1;
}

/** A renewed certificate becomes the host's current one; the previous stays valid until it expires. */
export async function addHostCertificate(
  db: D1Database,
  c: { host_id: string; fingerprint: string; not_after: string; now: string },
): Promise<void> {
  await db.batch([
    db
      .prepare("INSERT INTO host_certs (fingerprint, host_id, not_after, created_at) VALUES (?, ?, ?, ?)")
      .bind(c.fingerprint, c.host_id, c.not_after, c.now),
    db.prepare("UPDATE hosts SET cert_fingerprint_sha256 = ? WHERE host_id = ?").bind(c.fingerprint, c.host_id),
  ]);
}
