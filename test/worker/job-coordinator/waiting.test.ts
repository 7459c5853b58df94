import { evictDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { api, listHostCommands, listOnline, registerHost, waitFor } from "../helpers.ts";
import {
  coordinatorClockTo,
  coordinatorSql,
  coordinatorStub,
  getJob,
  HoldingAgent,
  hostStates,
  jobWaits,
  runCoordinatorAlarm,
  startJob,
  waitJob,
} from "./job-helpers.ts";

/**
 * Hosts offline at their turn wait in the job (worker/job-coordinator/dispatch.ts): the command is
 * held in the coordinator and listed in the registry's job_waits, and nothing is queued on the
 * host's relay until the agent connects.
 */
describe("hosts offline at their turn", () => {
  it("wait in the job, and the agent's hello gets the command dispatched, delivered and run once", async () => {
    const host = await registerHost();
    const job = await startJob({ target: { host_ids: [host.host_id] } });
    const waiting = await waitJob(job.job_id, (j) => j.counts.waiting === 1);
    expect(waiting).toMatchObject({ state: "running", completion: 0 });
    const [row] = [...(await hostStates(job.job_id)).values()];
    expect(row).toMatchObject({ state: "waiting", message_id: null, dispatched_at: null });
    expect(row.detail).toMatch(/offline/);
    expect(await jobWaits(job.job_id)).toEqual([host.host_id]);
    expect((await listHostCommands(host.host_id)).items).toEqual([]);

    const agent = await HoldingAgent.connect(host);
    await waitFor(
      () => hostStates(job.job_id),
      (m) => m.get(host.host_id).state === "delivered",
    );
    expect(agent.received).toHaveLength(1);
    await agent.answer();
    const done = await waitJob(job.job_id, (j) => j.state === "completed");
    expect(done.counts).toMatchObject({ succeeded: 1, waiting: 0 });
    expect((await listHostCommands(host.host_id)).items).toHaveLength(1);
    // A finished job deletes its waits.
    await waitFor(
      () => jobWaits(job.job_id),
      (w) => w.length === 0,
    );
  });

  it("a wake that never came: the minute's sweep finds the host online in the registry and dispatches it", async () => {
    const host = await registerHost();
    const job = await startJob({ target: { host_ids: [host.host_id] } });
    await waitJob(job.job_id, (j) => j.counts.waiting === 1);
    // Online in the registry, but no relay told the job (its wake was lost).
    await listOnline(host.host_id);
    const [stored] = await coordinatorSql<{ wait_sweep_at: number }>(job.job_id, "SELECT wait_sweep_at FROM job");
    expect(stored!.wait_sweep_at).toBeGreaterThan(Date.now());
    // Before the sweep is due, a round leaves the host waiting.
    await runCoordinatorAlarm(job.job_id);
    expect((await getJob(job.job_id)).counts.waiting).toBe(1);

    await coordinatorClockTo(job.job_id, stored!.wait_sweep_at);
    await runInCoordinatorAlarmUntil(job.job_id, async () => (await getJob(job.job_id)).counts.queued === 1);
    expect(await jobWaits(job.job_id)).toEqual([]);
    expect((await listHostCommands(host.host_id)).items).toHaveLength(1);
  });

  it("a wake while the host is still pending is remembered: a round that read it offline dispatches it", async () => {
    const host = await registerHost();
    const job = await startJob({ target: { host_ids: [host.host_id] }, expires_in: 3600 });
    await waitJob(job.job_id, (j) => j.counts.waiting === 1);
    // Back to pending, as if the round were between its registry read and its park, and the wake lands then.
    await coordinatorSql(job.job_id, "UPDATE hosts SET state = 'pending', detail = NULL");
    // Evicted too, so the woken set is empty and only this wake fills it.
    await evictDurableObject(coordinatorStub(job.job_id));
    await coordinatorStub(job.job_id).wake([host.host_id]);
    await runInCoordinatorAlarmUntil(job.job_id, async () => (await getJob(job.job_id)).counts.queued === 1);
    expect((await hostStates(job.job_id)).get(host.host_id).message_id).not.toBeNull();
  });

  it("a wake for hosts the job does not hold, repeated or unknown, changes nothing", async () => {
    const [waiting, other] = [await registerHost(), await registerHost()];
    const job = await startJob({ target: { host_ids: [waiting.host_id] } });
    const before = await waitJob(job.job_id, (j) => j.counts.waiting === 1);
    await coordinatorStub(job.job_id).wake([other.host_id, crypto.randomUUID(), "not-a-uuid", other.host_id]);
    await runCoordinatorAlarm(job.job_id);
    const after = await getJob(job.job_id);
    expect(after.counts).toEqual(before.counts);
    expect((await hostStates(job.job_id)).get(waiting.host_id)).toMatchObject({ state: "waiting", message_id: null });
    expect((await listHostCommands(other.host_id)).items).toEqual([]);
  });

  it("are cancelled at once when the job is, with nothing sent to their relays", async () => {
    const hosts = [await registerHost(), await registerHost()];
    const job = await startJob({ target: { host_ids: hosts.map((h) => h.host_id) } });
    await waitJob(job.job_id, (j) => j.counts.waiting === 2);
    const res = await api(`/api/jobs/${job.job_id}/cancel`, { method: "POST", role: "operator" });
    expect(res.status).toBe(200);
    const done = await waitJob(job.job_id, (j) => j.state === "cancelled");
    expect(done.counts).toMatchObject({ cancelled: 2, waiting: 0 });
    for (const h of hosts) {
      expect((await hostStates(job.job_id)).get(h.host_id).detail).toMatch(/^not delivered \(the host was offline\): cancelled by/);
      expect((await listHostCommands(h.host_id)).items).toEqual([]);
    }
    await waitFor(
      () => jobWaits(job.job_id),
      (w) => w.length === 0,
    );
  });

  it("expire at the job's deadline if the agent never connects; an expiry is not an error", async () => {
    const host = await registerHost();
    const job = await startJob({ target: { host_ids: [host.host_id] }, expires_in: 60, max_errors: 0 });
    const view = await waitJob(job.job_id, (j) => j.counts.waiting === 1);
    await coordinatorClockTo(job.job_id, Date.parse(view.expires_at));
    await runInCoordinatorAlarmUntil(job.job_id, async () => (await getJob(job.job_id)).state === "completed");
    const [row] = [...(await hostStates(job.job_id)).values()];
    expect(row).toMatchObject({ state: "expired", message_id: null });
    expect(row.detail).toMatch(/while the host was offline/);
    expect((await getJob(job.job_id)).errors).toBe(0);
    expect((await listHostCommands(host.host_id)).items).toEqual([]);
  });
});

/** Runs the coordinator's alarm (when set) until `done`, at most 20 rounds. */
async function runInCoordinatorAlarmUntil(jobId: string, done: () => Promise<boolean>): Promise<void> {
  for (let i = 0; i < 20; i++) {
    if (await done()) return;
    await runCoordinatorAlarm(jobId);
  }
  expect(await done(), "the coordinator's rounds did not get there").toBe(true);
}
