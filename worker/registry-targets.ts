import type { JobSummary, TagCount } from "../schemas/index.ts";

/**
 * D1 queries for fleet targeting (tags, job targets) and the job record. Lists of ids and tags
 * travel as one JSON parameter (json_each), so a 10,000-host target is one statement, within
 * D1's limit on bound parameters.
 */

export interface ExplicitHost {
  index: number;
  host_id: string;
  problem: "unknown" | "revoked" | null;
}

/** Looks up hosts named explicitly, in the caller's order; each comes back with what is wrong with it, if anything. */
export async function checkHostIds(db: D1Database, hostIds: string[]): Promise<ExplicitHost[]> {
  const { results } = await db
    .prepare(
      `SELECT j.key AS idx, j.value AS host_id, h.host_id AS found, h.revoked_at
       FROM json_each(?) j LEFT JOIN hosts h ON h.host_id = j.value ORDER BY j.key`,
    )
    .bind(JSON.stringify(hostIds))
    .all<{ idx: number; host_id: string; found: string | null; revoked_at: string | null }>();
  return results.map((r) => ({
    index: r.idx,
    host_id: r.host_id,
    problem: r.found === null ? "unknown" : r.revoked_at !== null ? "revoked" : null,
  }));
}

/** Non-revoked hosts carrying any (or all) of `tags`, by host_id. */
export async function hostsWithTags(db: D1Database, tags: string[], match: "any" | "all"): Promise<string[]> {
  const unique = [...new Set(tags)];
  const base = `SELECT t.host_id FROM host_tags t JOIN hosts h ON h.host_id = t.host_id
                WHERE t.tag IN (SELECT value FROM json_each(?)) AND h.revoked_at IS NULL`;
  const stmt =
    match === "any"
      ? db.prepare(`${base} GROUP BY t.host_id ORDER BY t.host_id`).bind(JSON.stringify(unique))
      : db.prepare(`${base} GROUP BY t.host_id HAVING COUNT(*) = ? ORDER BY t.host_id`).bind(JSON.stringify(unique), unique.length);
  const { results } = await stmt.all<{ host_id: string }>();
  return results.map((r) => r.host_id);
}

/** Every non-revoked host, by host_id. */
export async function activeHosts(db: D1Database): Promise<string[]> {
  const { results } = await db.prepare("SELECT host_id FROM hosts WHERE revoked_at IS NULL ORDER BY host_id").all<{ host_id: string }>();
  return results.map((r) => r.host_id);
}

// ---- tags ----

/** Replaces a host's tag set in one transaction; false if the host is not registered. */
export async function replaceHostTags(db: D1Database, hostId: string, tags: string[]): Promise<boolean> {
  const [found] = await db.batch([
    db.prepare("SELECT host_id FROM hosts WHERE host_id = ?").bind(hostId),
    db.prepare("DELETE FROM host_tags WHERE host_id = ?").bind(hostId),
    db
      .prepare("INSERT INTO host_tags (host_id, tag) SELECT h.host_id, j.value FROM hosts h, json_each(?) j WHERE h.host_id = ?")
      .bind(JSON.stringify([...new Set(tags)]), hostId),
  ]);
  return (found?.results.length ?? 0) > 0;
}

/** Tags with the number of non-revoked hosts carrying them, by tag, after `after`. */
export async function listTags(
  db: D1Database,
  opts: { limit: number; after?: string | undefined },
): Promise<{ items: TagCount[]; last: string | null }> {
  const { results } = await db
    .prepare(
      `SELECT t.tag, COUNT(*) AS hosts FROM host_tags t JOIN hosts h ON h.host_id = t.host_id
       WHERE h.revoked_at IS NULL AND (?1 IS NULL OR t.tag > ?1) GROUP BY t.tag ORDER BY t.tag LIMIT ?2`,
    )
    .bind(opts.after ?? null, opts.limit + 1)
    .all<TagCount>();
  const page = results.slice(0, opts.limit);
  return { items: page, last: results.length > opts.limit ? page[page.length - 1]!.tag : null };
}

// ---- jobs ----

/**
 * Lists a job. Written by the job's JobCoordinator, after it has stored the job and before it
 * dispatches anything, and repeated until it succeeds: a second write of the same job changes
 * nothing. A job row is never deleted, so a job that may exist is never unlisted.
 */
export async function insertJob(db: D1Database, job: JobSummary): Promise<void> {
  await db
    .prepare(
      "INSERT INTO jobs (job_id, created_at, created_by, command_type, host_count) VALUES (?, ?, ?, ?, ?) ON CONFLICT (job_id) DO NOTHING",
    )
    .bind(job.job_id, job.created_at, job.created_by, job.command_type, job.host_count)
    .run();
}

export async function jobExists(db: D1Database, jobId: string): Promise<boolean> {
  return (await db.prepare("SELECT 1 AS found FROM jobs WHERE job_id = ?").bind(jobId).first()) !== null;
}

/** Jobs newest first; `after` is the (created_at, job_id) of the last row of the previous page. */
export async function listJobs(
  db: D1Database,
  opts: { limit: number; after?: { created_at: string; job_id: string } | undefined },
): Promise<{ items: JobSummary[]; last: JobSummary | null }> {
  const { results } = await db
    .prepare(
      `SELECT job_id, created_at, created_by, command_type, host_count FROM jobs
       WHERE ?1 IS NULL OR created_at < ?1 OR (created_at = ?1 AND job_id < ?2)
       ORDER BY created_at DESC, job_id DESC LIMIT ?3`,
    )
    .bind(opts.after?.created_at ?? null, opts.after?.job_id ?? null, opts.limit + 1)
    .all<JobSummary>();
  const page = results.slice(0, opts.limit);
  return { items: page, last: results.length > opts.limit ? page[page.length - 1]! : null };
}
