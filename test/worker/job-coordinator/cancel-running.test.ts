import { describe, expect, it } from "vitest";
import { api, getCommand } from "../helpers.ts";
import { type HoldingAgent, holdingHosts, startJob, uniqueTag, waitJob } from "./job-helpers.ts";

const cancelJob = (jobId: string, body?: object) =>
  api(`/api/jobs/${jobId}/cancel`, { method: "POST", role: "operator", ...(body ? { body } : {}) });

async function cancelFrame(h: HoldingAgent, messageId: string): Promise<any> {
  return h.agent.next((f) => f.message_type === "cancel" && f.original_message_id === messageId);
}

describe("job cancel", () => {
  it("by default delivered commands run to their end: no cancel reaches the agents", async () => {
    const tag = uniqueTag();
    const agents = await holdingHosts(2, [tag]);
    const job = await startJob({ target: { tags: [tag] } });
    await waitJob(job.job_id, (j) => (j.counts.delivered ?? 0) === 2);
    expect((await cancelJob(job.job_id)).status).toBe(200);
    await waitJob(job.job_id, (j) => j.state === "stopping");
    for (const h of agents) {
      const id = h.held[0]!;
      expect((await getCommand(h.host_id, id)).state).toBe("delivered");
      expect(h.agent.frames.filter((f) => f.message_type === "cancel")).toEqual([]);
      await h.answer("success");
    }
    const done = await waitJob(job.job_id, (j) => j.state === "cancelled");
    expect(done.counts.succeeded).toBe(2);
  });

  it("with abort_running, delivered commands are cancelled on the hosts and end as the agents report", async () => {
    const tag = uniqueTag();
    const agents = await holdingHosts(2, [tag]);
    const job = await startJob({ target: { tags: [tag] } });
    await waitJob(job.job_id, (j) => (j.counts.delivered ?? 0) === 2);
    expect((await cancelJob(job.job_id, { abort_running: true })).status).toBe(200);
    const [a, b] = agents as [HoldingAgent, HoldingAgent];
    const idA = a.held[0]!;
    const idB = b.held[0]!;
    await cancelFrame(a, idA);
    await cancelFrame(b, idB);
    expect((await getCommand(a.host_id, idA)).state).toBe("cancelling");
    // One agent stops it; the other had already finished: the truth, not "cancelled", is recorded.
    await a.answer("cancelled", { output: "stopped", exit_code: null });
    await b.answer("success");
    const done = await waitJob(job.job_id, (j) => j.state === "cancelled");
    expect(done.counts).toMatchObject({ cancelled: 1, succeeded: 1 });
    expect((await getCommand(b.host_id, idB)).state).toBe("succeeded");
  });
});
