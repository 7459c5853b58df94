import { evictDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { listHostCommands, relayStub } from "../helpers.ts";
import { coordinatorSql, getJob, jobHosts, runCoordinatorAlarm, startJob } from "./job-helpers.ts";

const HOSTS = 10_000;
/**
 * Harness constraint, not a relay one: workerd keeps a Durable Object alive while a stub to it is
 * uncollected, and each SQLite-backed object holds 3 file descriptors; this container allows
 * 20,000, so at most ~6,600 HostRelays can be open at once. The test evicts relays once their
 * host is queued (as the platform would once they go idle), every this many hosts.
 */
const EVICT_EVERY = 2000;

/** Registers `n` hosts straight in D1, 1,000 per statement (one JSON parameter each). */
async function registerInBulk(n: number): Promise<string[]> {
  const ids = Array.from({ length: n }, () => crypto.randomUUID());
  const now = new Date().toISOString();
  const statements = [];
  for (let i = 0; i < n; i += 1000) {
    const chunk = ids.slice(i, i + 1000).map((id) => ({ id, fp: `${id.replaceAll("-", "")}${"0".repeat(32)}` }));
    statements.push(
      env.DB.prepare(
        `INSERT INTO hosts (host_id, hostname, cert_fingerprint_sha256, created_at)
         SELECT value ->> 'id', 'scale-' || (value ->> 'id'), value ->> 'fp', ? FROM json_each(?)`,
      ).bind(now, JSON.stringify(chunk)),
    );
  }
  await env.DB.batch(statements);
  return ids;
}

describe("dispatch at scale", () => {
  it(`accepts a job to ${HOSTS} hosts in one request and dispatches it in alarm-driven batches`, { timeout: 300_000 }, async () => {
    const ids = await registerInBulk(HOSTS);
    const { n } = (await env.DB.prepare("SELECT COUNT(*) AS n FROM hosts WHERE revoked_at IS NULL").first<{ n: number }>())!;
    expect(n).toBe(HOSTS);

    const t0 = performance.now();
    const job = await startJob({ target: { all: true }, expires_in: 3600 });
    const accepted = performance.now() - t0;
    expect(job.hosts).toBe(HOSTS);
    // Acceptance only records: nothing is dispatched by the request itself.
    expect(job.state).toBe("dispatching");
    const [recorded] = await coordinatorSql<{ pending: number }>(
      job.job_id,
      "SELECT COUNT(*) AS pending FROM hosts WHERE state = 'pending'",
    );
    expect(recorded!.pending).toBe(HOSTS);

    let alarms = 0;
    let evictMs = 0;
    let evictedThrough = 0;
    let view = await getJob(job.job_id);
    const deadline = Date.now() + 280_000;
    while (view.counts.queued < HOSTS) {
      expect(Date.now(), `dispatch incomplete: ${JSON.stringify(view.counts)}`).toBeLessThan(deadline);
      // Drive the alarm rather than wait for it; the runtime's own alarm may also run in between.
      if (await runCoordinatorAlarm(job.job_id)) alarms++;
      view = await getJob(job.job_id);
      expect(view.counts.skipped).toBe(0);
      if (view.counts.queued - evictedThrough >= EVICT_EVERY) {
        const started = performance.now();
        const rows = await coordinatorSql<{ seq: number; host_id: string }>(
          job.job_id,
          "SELECT seq, host_id FROM hosts WHERE state = 'queued' AND seq > ? ORDER BY seq",
          evictedThrough,
        );
        // Best effort: an object still referenced is left to the runtime.
        await Promise.allSettled(rows.map((r) => evictDurableObject(relayStub(r.host_id))));
        evictedThrough = rows.at(-1)?.seq ?? evictedThrough;
        evictMs += performance.now() - started;
      }
    }
    const dispatched = performance.now() - t0;
    console.log(
      `${HOSTS} hosts: job accepted in ${accepted.toFixed(0)} ms; every host queued after ${(dispatched / 1000).toFixed(1)} s ` +
        `(${alarms} alarm runs driven by the test; ${(evictMs / 1000).toFixed(1)} s of it spent evicting idle relays for the harness)`,
    );

    expect(view.state).toBe("running");
    expect(view.counts).toMatchObject({ pending: 0, dispatching: 0, queued: HOSTS, skipped: 0 });
    const hosts = await jobHosts(job.job_id);
    expect(hosts).toHaveLength(HOSTS);
    expect(new Set(hosts.map((h) => h.host_id))).toEqual(new Set(ids));
    expect(hosts.every((h) => h.state === "queued" && h.message_id !== null && h.dispatched_at !== null)).toBe(true);
    expect(new Set(hosts.map((h) => h.message_id)).size).toBe(HOSTS);

    // Each sampled host's relay holds exactly the one command the job recorded for it.
    for (const h of hosts.filter((_, i) => i % 1000 === 0)) {
      const page = await listHostCommands(h.host_id);
      expect(page.items.map((c: any) => [c.message_id, c.state])).toEqual([[h.message_id, "queued"]]);
    }
  });
});
