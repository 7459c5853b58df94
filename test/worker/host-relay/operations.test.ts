import { describe, expect, it } from "vitest";
import { TestAgent, api, getCommand, registerHost, waitFor } from "../helpers.ts";
import { commandFrames, connectedHost, enqueue, problem, responseFrame, sendAndAwaitAck, states } from "./relay-helpers.ts";

const cancel = (hostId: string, id: string) => api(`/api/hosts/${hostId}/commands/${id}`, { role: "operator", method: "DELETE" });

describe("cancel", () => {
  it("before delivery (agent offline): 200 cancelled, and never sent when the agent connects", async () => {
    const host = await registerHost();
    const id = await enqueue(host.host_id);
    const res = await cancel(host.host_id, id);
    expect(res.status).toBe(200);
    const body = (await res.json()) as any;
    expect(body.state).toBe("cancelled");
    expect(states(body)).toEqual(["queued", "cancelled"]);
    expect((await getCommand(host.host_id, id)).state).toBe("cancelled");

    const agent = await TestAgent.connect(host.fingerprint);
    const marker = await enqueue(host.host_id);
    await agent.command(marker, 1);
    expect(commandFrames(agent).map((f) => f.message_id)).toEqual([marker]);
  });

  it("after delivery (acked): 409 ERR_COMMAND_NOT_CANCELLABLE, state unchanged", async () => {
    const { host_id, agent } = await connectedHost();
    const id = await enqueue(host_id);
    await agent.command(id, 1);
    agent.ack(id);
    await waitFor(() => getCommand(host_id, id), (v) => v.state === "delivered");
    const body = await problem(await cancel(host_id, id), 409);
    expect(body.code).toBe("ERR_COMMAND_NOT_CANCELLABLE");
    expect((await getCommand(host_id, id)).state).toBe("delivered");
  });

  it("while in flight (sent, not acked): 409, and the agent's ack still delivers it", async () => {
    const { host_id, agent } = await connectedHost();
    const id = await enqueue(host_id);
    await agent.command(id, 1);
    const body = await problem(await cancel(host_id, id), 409);
    expect(body.code).toBe("ERR_COMMAND_NOT_CANCELLABLE");
    expect((await getCommand(host_id, id)).state).toBe("queued");
    agent.ack(id);
    await waitFor(() => getCommand(host_id, id), (v) => v.state === "delivered");
  });

  it("a late response for a cancelled command leaves it cancelled, and is acked", async () => {
    const host = await registerHost();
    const id = await enqueue(host.host_id);
    expect((await cancel(host.host_id, id)).status).toBe(200);
    const agent = await TestAgent.connect(host.fingerprint);
    agent.ack(id);
    await sendAndAwaitAck(agent, responseFrame(id, "success"));
    const view = await getCommand(host.host_id, id);
    expect(view.state).toBe("cancelled");
    expect(view.result).toBeNull();
    expect(view.response_status).toBeNull();
    expect(states(view)).not.toContain("succeeded");
  });

  it("cancelling twice is 409 the second time", async () => {
    const host = await registerHost();
    const id = await enqueue(host.host_id);
    expect((await cancel(host.host_id, id)).status).toBe(200);
    const body = await problem(await cancel(host.host_id, id), 409);
    expect(body.code).toBe("ERR_COMMAND_NOT_CANCELLABLE");
  });
});
