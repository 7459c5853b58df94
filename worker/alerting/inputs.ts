import type { Env } from "../env.ts";
import type { MetricsSummary } from "../metrics/contract.ts";
import { fleetEvents } from "../stubs.ts";
import type { AlertInputs } from "./context.ts";
import type { FleetSnapshot, OfflineHost } from "./evaluate.ts";

/** Offline hosts read per round at most (oldest offline first); counts stay exact beyond it. */
export const MAX_OFFLINE_SAMPLE = 5000;

interface OfflineRow {
  host_id: string;
  hostname: string;
  since: string | null;
  tags: string | null;
}

/** The production inputs: two D1 reads (counts, and the offline hosts) and one FleetEvents RPC. */
export function productionInputs(env: Env): AlertInputs {
  return {
    fleet: () => readFleet(env.DB),
    metrics: () => readMetrics(env),
  };
}

export async function readFleet(db: D1Database): Promise<FleetSnapshot | null> {
  try {
    const [counts, offline] = await db.batch([
      db.prepare(
        "SELECT COUNT(*) AS active, COALESCE(SUM(CASE WHEN online = 0 THEN 1 ELSE 0 END), 0) AS offline FROM hosts WHERE revoked_at IS NULL",
      ),
      db
        .prepare(
          `SELECT h.host_id, h.hostname, COALESCE(h.last_seen_at, h.created_at) AS since,
             (SELECT json_group_array(tag) FROM host_tags t WHERE t.host_id = h.host_id) AS tags
           FROM hosts h WHERE h.revoked_at IS NULL AND h.online = 0 ORDER BY since LIMIT ?`,
        )
        .bind(MAX_OFFLINE_SAMPLE),
    ]);
    const c = (counts!.results[0] ?? { active: 0, offline: 0 }) as { active: number; offline: number };
    const hosts: OfflineHost[] = (offline!.results as unknown as OfflineRow[]).map((r) => ({
      host_id: r.host_id,
      hostname: r.hostname,
      tags: r.tags ? (JSON.parse(r.tags) as string[]) : [],
      offline_since: r.since ? Date.parse(r.since) : 0,
    }));
    return { active_hosts: c.active, offline_hosts: c.offline, offline: hosts };
  } catch (err) {
    console.error(
      JSON.stringify({ level: "error", msg: "alerting: registry read failed; host rules skipped this round", error: String(err) }),
    );
    return null;
  }
}

/** FleetEvents' `metricsSummary()`; when FleetEvents cannot answer, the metric rules skip the round (and say so). */
export async function readMetrics(env: Env): Promise<MetricsSummary | null> {
  try {
    return await fleetEvents(env).metricsSummary();
  } catch (err) {
    console.warn(
      JSON.stringify({ level: "warn", msg: "alerting: metrics unavailable; metric rules skipped this round", error: String(err) }),
    );
    return null;
  }
}
