import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { coordinatorSql, coordinatorStub, getJob, jobHosts, jobWaits, relaySql, runCoordinatorAlarm, startJob } from "./job-helpers.ts";

/**
 * The fan-out path at a reduced size (bench/fanout.ts measures it at 10,000 hosts). Every host is
 * offline, so one round parks them all as waiting (PENDING_BATCH) with no RPC; then their relays'
 * wakes (what each agent's hello sends) get them dispatched, in more rounds than one RPC budget
 * covers, so the batches, the one registry read per batch and the hand-off of each host's
 * registration to its relay all run. No timing here.
 */
const HOSTS = 450;
/** Hosts given tags in the registry, which their relays must learn from the dispatch's registry read. */
const TAGGED = 5;

/** Registers `n` hosts straight in D1 in one statement (one JSON parameter). */
async function registerInBulk(n: number): Promise<string[]> {
  const ids = Array.from({ length: n }, () => crypto.randomUUID());
  const rows = ids.map((id) => ({ id, fp: `${id.replaceAll("-", "")}${"0".repeat(32)}` }));
  await env.DB.prepare(
    `INSERT INTO hosts (host_id, hostname, cert_fingerprint_sha256, created_at)
     SELECT value ->> 'id', 'scale-' || (value ->> 'id'), value ->> 'fp', ? FROM json_each(?)`,
  )
    .bind(new Date().toISOString(), JSON.stringify(rows))
    .run();
  return ids;
}

describe("dispatch at scale", () => {
  it(`accepts a job to ${HOSTS} offline hosts in one request, holds it for each, and queues it on every host exactly once as they come online`, {
    timeout: 120_000,
  }, async () => {
    const ids = await registerInBulk(HOSTS);
    const tagged = ids.slice(0, TAGGED);
    await env.DB.prepare(
      "INSERT INTO host_tags (host_id, tag) SELECT value, 'scale-b' FROM json_each(?1) UNION ALL SELECT value, 'scale-a' FROM json_each(?1)",
    )
      .bind(JSON.stringify(tagged))
      .run();

    const job = await startJob({ target: { all: true }, expires_in: 3600 });
    expect(job.hosts).toBe(HOSTS);
    // Acceptance only records: nothing is dispatched by the request itself.
    expect(job.state).toBe("dispatching");
    const [recorded] = await coordinatorSql<{ pending: number }>(
      job.job_id,
      "SELECT COUNT(*) AS pending FROM hosts WHERE state = 'pending'",
    );
    expect(recorded!.pending).toBe(HOSTS);

    let view = await getJob(job.job_id);
    for (let rounds = 0; view.counts.waiting < HOSTS; rounds++) {
      expect(rounds, `parking incomplete: ${JSON.stringify(view.counts)}`).toBeLessThan(5);
      await runCoordinatorAlarm(job.job_id);
      view = await getJob(job.job_id);
    }
    expect(view.counts).toMatchObject({ pending: 0, dispatching: 0, queued: 0, waiting: HOSTS });
    expect(new Set(await jobWaits(job.job_id))).toEqual(new Set(ids));

    // The agents connect: the registry says online, and each relay wakes the job (batched here).
    await env.DB.prepare("UPDATE hosts SET online = 1 WHERE host_id IN (SELECT value FROM json_each(?))").bind(JSON.stringify(ids)).run();
    for (let i = 0; i < HOSTS; i += 100) await coordinatorStub(job.job_id).wake(ids.slice(i, i + 100));
    for (let rounds = 0; view.counts.queued < HOSTS; rounds++) {
      expect(rounds, `dispatch incomplete: ${JSON.stringify(view.counts)}`).toBeLessThan(100);
      // Drive the alarm rather than wait for it; the runtime's own alarm may also run in between.
      await runCoordinatorAlarm(job.job_id);
      view = await getJob(job.job_id);
      expect(view.counts.skipped).toBe(0);
    }
    expect(view.state).toBe("running");
    expect(view.counts).toMatchObject({ pending: 0, dispatching: 0, queued: HOSTS, skipped: 0 });

    // Another round changes nothing: the job's idempotency key makes a repeated dispatch answer the same command.
    await runCoordinatorAlarm(job.job_id);
    const hosts = await jobHosts(job.job_id);
    expect(hosts).toHaveLength(HOSTS);
    expect(new Set(hosts.map((h) => h.host_id))).toEqual(new Set(ids));
    expect(hosts.every((h) => h.state === "queued" && h.message_id !== null && h.dispatched_at !== null)).toBe(true);
    expect(new Set(hosts.map((h) => h.message_id)).size).toBe(HOSTS);

    expect(await jobWaits(job.job_id)).toEqual([]);
    // Every relay holds exactly the one command the job recorded for it, queued.
    const byHost = new Map(hosts.map((h) => [h.host_id, h.message_id]));
    for (const id of ids) {
      const rows = await relaySql<{ message_id: string; state: string; job_id: string }>(
        id,
        "SELECT message_id, state, job_id FROM commands",
      );
      expect(rows).toEqual([{ message_id: byHost.get(id), state: "queued", job_id: job.job_id }]);
    }
    // The relays learnt their registration (tags included) from the batch's registry read.
    for (const id of tagged) {
      const [meta] = await relaySql<{ value: string }>(id, "SELECT value FROM meta WHERE key = 'tags'");
      expect(JSON.parse(meta!.value)).toEqual(["scale-a", "scale-b"]);
    }
  });
});
