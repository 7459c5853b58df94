import { evictDurableObject, runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { api, expectProblem, listHostCommands, registerHost, waitFor } from "../helpers.ts";
import {
  ACTIVE_STATES,
  coordinatorSql,
  coordinatorStub,
  countIn,
  getJob,
  type HoldingAgent,
  holdingHosts,
  hostStates,
  jobHosts,
  runCoordinatorAlarm,
  startJob,
  uniqueTag,
  waitJob,
} from "./job-helpers.ts";

const FAILURE = { output: "boom", exit_code: 1, execution_time: 0.1 };

/** The agents currently holding an unanswered command. */
const holding = (agents: HoldingAgent[]) => agents.filter((a) => a.held.length > 0);

describe("max_concurrency", () => {
  it("keeps at most N hosts dispatched and unfinished, refilling the window as hosts finish", async () => {
    const tag = uniqueTag();
    const agents = await holdingHosts(7, [tag]);
    const job = await startJob({ target: { tags: [tag] }, max_concurrency: "40%" });
    const limit = 3; // 40% of 7 rounds up to 3
    expect((await getJob(job.job_id)).max_concurrency).toBe(limit);

    let maxActive = 0;
    let maxHeld = 0;
    const observe = async () => {
      const hosts = await jobHosts(job.job_id);
      const active = countIn(hosts, ACTIVE_STATES);
      maxActive = Math.max(maxActive, active);
      maxHeld = Math.max(maxHeld, holding(agents).length);
      expect(active, JSON.stringify(hosts.map((h) => h.state))).toBeLessThanOrEqual(limit);
      expect(holding(agents).length).toBeLessThanOrEqual(limit);
      return hosts;
    };

    for (let finished = 0; finished < agents.length; finished++) {
      const expected = Math.min(limit, agents.length - finished);
      // The window fills up to the limit: that many hosts hold a delivered command.
      await waitFor(observe, (hosts) => countIn(hosts, ["delivered"]) === expected && holding(agents).length === expected);
      const next = holding(agents)[0]!;
      await next.answer();
      await waitFor(observe, (hosts) => hosts.find((h) => h.host_id === next.host_id)?.state === "succeeded");
    }

    const done = await waitJob(job.job_id, (j) => j.state === "completed");
    expect(done.counts.succeeded).toBe(agents.length);
    expect(maxActive).toBe(limit);
    expect(maxHeld).toBe(limit);
    for (const a of agents) expect(a.received).toHaveLength(1);
  });
});

describe("max_errors", () => {
  it("stops the rollout once errors exceed the limit: hosts not yet started are cancelled", async () => {
    const tag = uniqueTag();
    const agents = await holdingHosts(5, [tag]);
    const job = await startJob({ target: { tags: [tag] }, max_concurrency: 1, max_errors: "20%" });
    expect((await getJob(job.job_id)).max_errors).toBe(1);

    // One failure is tolerated, the second one stops the job.
    for (let i = 0; i < 2; i++) {
      await waitFor(
        async () => holding(agents).length,
        (n) => n === 1,
      );
      await holding(agents)[0]!.answer("failure", FAILURE);
      if (i === 0) await waitJob(job.job_id, (j) => j.counts.failed === 1 && j.counts.delivered === 1);
    }

    const stopped = await waitJob(job.job_id, (j) => j.state === "stopped");
    expect(stopped.stop_reason).toMatch(/^max_errors exceeded: 2 hosts failed, 1 allowed/);
    expect(stopped.counts).toMatchObject({ failed: 2, cancelled: 3, pending: 0 });
    expect(stopped.errors).toBe(2);
    expect(stopped.completion).toBe(1);
    expect(stopped.finished_at).not.toBeNull();

    const untouched = agents.filter((a) => a.received.length === 0);
    expect(untouched).toHaveLength(3);
    const hosts = await hostStates(job.job_id);
    for (const a of untouched) {
      expect(hosts.get(a.host_id)).toMatchObject({ state: "cancelled", message_id: null, dispatched_at: null });
      expect(hosts.get(a.host_id).detail).toMatch(/^not dispatched: max_errors exceeded/);
      expect((await listHostCommands(a.host_id)).items).toEqual([]);
    }
    for (const a of agents.filter((x) => x.received.length > 0)) {
      expect(hosts.get(a.host_id)).toMatchObject({ state: "failed", response_status: "failure" });
    }
    await expectStoppedJobCannotBeCancelled(job.job_id);
  });

  it("timed out and dead-lettered commands count as errors; expired and skipped ones do not", async () => {
    const tag = uniqueTag();
    const hosts = await Promise.all([1, 2, 3, 4].map(() => registerHost([tag], { listedOnline: true })));
    const job = await startJob({ target: { tags: [tag] }, max_errors: 1 });
    const rows = await waitFor(
      () => jobHosts(job.job_id),
      (r) => countIn(r, ["queued"]) === 4,
    );
    const update = (i: number, state: string) => ({
      host_id: rows[i].host_id,
      message_id: rows[i].message_id,
      state,
      response_status: null,
      detail: null,
      at: Date.now(),
    });
    await coordinatorStub(job.job_id).hostUpdates([update(0, "expired"), update(1, "timed_out")]);
    expect(await getJob(job.job_id)).toMatchObject({ errors: 1, state: "running" });
    await coordinatorStub(job.job_id).hostUpdates([update(2, "dead_lettered")]);
    const stopped = await getJob(job.job_id);
    expect(stopped).toMatchObject({ errors: 2, state: "stopping" });
    expect(stopped.stop_reason).toMatch(/^max_errors exceeded/);
    void hosts;
  });
});

async function expectStoppedJobCannotBeCancelled(jobId: string) {
  await expectProblem(await api(`/api/jobs/${jobId}/cancel`, { method: "POST", role: "operator" }), 409, "ERR_JOB_FINISHED");
}

describe("host updates", () => {
  /** A job on one host with no agent, once its command is queued on its relay. */
  async function queuedJob(): Promise<{ jobId: string; hostId: string; messageId: string }> {
    const host = await registerHost([], { listedOnline: true });
    const job = await startJob({ target: { host_ids: [host.host_id] } });
    const row = await waitFor(
      async () => (await jobHosts(job.job_id))[0],
      (h) => h.state === "queued",
    );
    return { jobId: job.job_id, hostId: host.host_id, messageId: row.message_id };
  }

  function send(jobId: string, hostId: string, messageId: string, state: string, at: number, response_status: string | null = null) {
    return coordinatorStub(jobId).hostUpdates([{ host_id: hostId, message_id: messageId, state, response_status, detail: null, at }]);
  }

  const stateOf = async (jobId: string) => (await jobHosts(jobId))[0].state;

  it("only move forward: repeated and late reports change nothing", async () => {
    const { jobId, hostId, messageId } = await queuedJob();
    const t = Date.now();
    await send(jobId, hostId, messageId, "running", t + 2);
    expect(await stateOf(jobId)).toBe("running");
    await send(jobId, hostId, messageId, "delivered", t + 1);
    await send(jobId, hostId, messageId, "queued", t);
    expect(await stateOf(jobId)).toBe("running");

    // Reports for another command or an unknown host are ignored.
    await send(jobId, hostId, crypto.randomUUID(), "failed", t + 3);
    await send(jobId, crypto.randomUUID(), messageId, "failed", t + 3);
    await send(jobId, hostId, messageId, "no-such-state", t + 3);
    expect(await stateOf(jobId)).toBe("running");

    await send(jobId, hostId, messageId, "succeeded", t + 4, "success");
    await send(jobId, hostId, messageId, "running", t + 5);
    await send(jobId, hostId, messageId, "cancelled", t + 5);
    expect((await jobHosts(jobId))[0]).toMatchObject({ state: "succeeded", response_status: "success" });
    expect((await getJob(jobId)).state).toBe("completed");
  });

  it("follow the relay's exits from a final state: a late answer after expiry, and a requeued dead letter", async () => {
    const first = await queuedJob();
    const t = Date.now();
    await send(first.jobId, first.hostId, first.messageId, "expired", t);
    expect((await getJob(first.jobId)).state).toBe("completed");
    // The agent had it after all and answers: what really ran is recorded.
    await send(first.jobId, first.hostId, first.messageId, "failed", t + 1, "failure");
    expect(await getJob(first.jobId)).toMatchObject({ state: "completed", errors: 1 });
    expect((await jobHosts(first.jobId))[0]).toMatchObject({ state: "failed", response_status: "failure" });

    const second = await queuedJob();
    await send(second.jobId, second.hostId, second.messageId, "dead_lettered", t + 10);
    const ended = await getJob(second.jobId);
    expect(ended).toMatchObject({ state: "completed", errors: 1 });
    expect(ended.finished_at).not.toBeNull();
    // A stale queued report (older than the dead letter) does not reopen it ...
    await send(second.jobId, second.hostId, second.messageId, "queued", t + 5);
    expect(await stateOf(second.jobId)).toBe("dead_lettered");
    // ... a requeue (newer) does, and the job runs again until the command ends.
    await send(second.jobId, second.hostId, second.messageId, "queued", t + 20);
    expect(await getJob(second.jobId)).toMatchObject({ state: "running", errors: 0, finished_at: null });
    await send(second.jobId, second.hostId, second.messageId, "succeeded", t + 30, "success");
    expect(await getJob(second.jobId)).toMatchObject({ state: "completed", errors: 0 });
  });
});

describe("dispatch", () => {
  it("a dispatch whose answer was lost is retried under the same idempotency key and never queues twice", async () => {
    const host = await registerHost([], { listedOnline: true });
    const job = await startJob({ target: { host_ids: [host.host_id] } });
    const row = await waitFor(
      async () => (await jobHosts(job.job_id))[0],
      (h) => h.state === "queued",
    );
    // As if the object had been evicted while the enqueue RPC was out: state unknown, lease expired.
    await runInDurableObject(coordinatorStub(job.job_id), async (_i, state) => {
      state.storage.sql.exec("UPDATE hosts SET state = 'dispatching', message_id = NULL, dispatched_at = NULL, due_at = 0");
      await state.storage.setAlarm(Date.now());
    });
    await evictDurableObject(coordinatorStub(job.job_id));
    expect((await getJob(job.job_id)).counts.dispatching).toBe(1);
    await runCoordinatorAlarm(job.job_id);

    const again = await waitFor(
      async () => (await jobHosts(job.job_id))[0],
      (h) => h.state === "queued",
    );
    expect(again.message_id).toBe(row.message_id);
    const [stored] = await coordinatorSql<{ attempts: number }>(job.job_id, "SELECT attempts FROM hosts");
    expect(stored!.attempts).toBe(2);
    expect((await listHostCommands(host.host_id)).items.map((c: any) => c.message_id)).toEqual([row.message_id]);
  });

  it("a host revoked after the job was accepted is skipped, not counted as an error", async () => {
    const [first] = await holdingHosts(1, []);
    const second = await registerHost();
    const job = await startJob({ target: { host_ids: [first!.host_id, second.host_id] }, max_concurrency: 1, max_errors: 0 });
    await waitFor(
      () => hostStates(job.job_id),
      (m) => m.get(first!.host_id).state === "delivered",
    );
    expect((await hostStates(job.job_id)).get(second.host_id).state).toBe("pending");
    expect((await api(`/api/hosts/${second.host_id}/revoke`, { method: "POST" })).status).toBe(200);

    await first!.answer();
    const done = await waitJob(job.job_id, (j) => j.state === "completed");
    expect(done).toMatchObject({ errors: 0, counts: expect.objectContaining({ succeeded: 1, skipped: 1 }) });
    const skipped = (await hostStates(job.job_id)).get(second.host_id);
    expect(skipped).toMatchObject({ state: "skipped", message_id: null });
    expect(skipped.detail).toMatch(/^ERR_HOST_REVOKED/);
  });

  it("hosts still waiting for a slot when the delivery deadline passes expire without dispatch", async () => {
    const [first] = await holdingHosts(1, []);
    const rest = [await registerHost(), await registerHost()];
    const job = await startJob({
      target: { host_ids: [first!.host_id, ...rest.map((h) => h.host_id)] },
      max_concurrency: 1,
      max_errors: 0,
    });
    await waitFor(
      () => hostStates(job.job_id),
      (m) => m.get(first!.host_id).state === "delivered",
    );
    await runInDurableObject(coordinatorStub(job.job_id), async (_i, state) => {
      state.storage.sql.exec("UPDATE job SET expires_at = ?", Date.now() - 1);
      await state.storage.setAlarm(Date.now());
    });
    await evictDurableObject(coordinatorStub(job.job_id));
    expect(await runCoordinatorAlarm(job.job_id)).toBe(true);

    const states = await hostStates(job.job_id);
    for (const h of rest) {
      expect(states.get(h.host_id)).toMatchObject({ state: "expired", message_id: null });
      expect(states.get(h.host_id).detail).toMatch(/delivery deadline passed before/);
      expect((await listHostCommands(h.host_id)).items).toEqual([]);
    }
    // The delivered command still finishes; expiries are not errors.
    await first!.answer();
    const done = await waitJob(job.job_id, (j) => j.state === "completed");
    expect(done).toMatchObject({ errors: 0, counts: expect.objectContaining({ succeeded: 1, expired: 2 }) });
  });

  it("publishes coalesced job.progress events, the last one final", async () => {
    const tag = uniqueTag();
    const agents = await holdingHosts(3, [tag]);
    const job = await startJob({ target: { tags: [tag] } });
    await waitJob(job.job_id, (j) => j.counts.delivered === 3);
    for (const a of agents) await a.answer();
    await waitJob(job.job_id, (j) => j.state === "completed");

    const events = await waitFor(
      () => progressEvents(job.job_id),
      (e) => e.at(-1)?.state === "completed",
    );
    const last = events.at(-1)!;
    expect(last).toMatchObject({ type: "job.progress", job_id: job.job_id, errors: 0, completion: 1 });
    expect(last.counts).toMatchObject({ succeeded: 3, pending: 0 });
    // Coalesced: the job went through 3 hosts × 4 states (dispatching, queued, delivered, succeeded), far fewer events.
    expect(events.length).toBeLessThan(12);
    const [job_] = await coordinatorSql<{ progress_due_at: number | null }>(job.job_id, "SELECT progress_due_at FROM job");
    expect(job_!.progress_due_at).toBeNull();
  });
});

/** job.progress events FleetEvents stored for a job, oldest first. */
async function progressEvents(jobId: string): Promise<any[]> {
  const stub = env.FLEET_EVENTS.get(env.FLEET_EVENTS.idFromName("fleet"));
  return runInDurableObject(stub, (_i, state) =>
    state.storage.sql
      .exec<{ body: string }>(`SELECT body FROM events WHERE type = 'job.progress' AND job_id = ? ORDER BY "offset"`, jobId)
      .toArray()
      .map((r) => JSON.parse(r.body)),
  );
}
