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
    ...[...new Set(host.tags)].map((tag) =>
      db.prepare("INSERT INTO host_tags (host_id, tag) VALUES (?, ?)").bind(host.host_id, tag),
    ),
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

export async function listHosts(
  db: D1Database,
  opts: { status?: HostStatus | undefined; limit: number; after?: string | undefined },
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
  const sql = `${HOST_SELECT} ${where.length ? `WHERE ${where.join(" AND ")}` : ""} ORDER BY h.host_id LIMIT ?`;
  const { results } = await db
    .prepare(sql)
    .bind(...binds, opts.limit + 1)
    .all<HostRow>();
  const page = results.slice(0, opts.limit);
  return { items: page.map(toView), last: results.length > opts.limit ? page[page.length - 1]!.host_id : null };
}

export async function findHostByFingerprint(
  db: D1Database,
  fingerprint: string,
): Promise<{ host_id: string; revoked_at: string | null } | null> {
  return db
    .prepare("SELECT host_id, revoked_at FROM hosts WHERE cert_fingerprint_sha256 = ?")
    .bind(fingerprint)
    .first<{ host_id: string; revoked_at: string | null }>();
}

export async function hostRegistration(
  db: D1Database,
  hostId: string,
): Promise<{ host_id: string; revoked_at: string | null } | null> {
  return db
    .prepare("SELECT host_id, revoked_at FROM hosts WHERE host_id = ?")
    .bind(hostId)
    .first<{ host_id: string; revoked_at: string | null }>();
}

/** Marks a host revoked; returns false if it does not exist. Revoking twice keeps the first time. */
export async function revokeHost(db: D1Database, hostId: string, at: string): Promise<boolean> {
  const res = await db
    .prepare("UPDATE hosts SET revoked_at = COALESCE(revoked_at, ?), online = 0 WHERE host_id = ?")
    .bind(at, hostId)
    .run();
  return res.meta.changes > 0;
}

export async function markOnline(
  db: D1Database,
  hostId: string,
  connectionId: string,
  at: string,
  agent: AgentInfo,
): Promise<void> {
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
