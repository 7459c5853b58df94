import { describe, expect, it } from "vitest";
import { api, getCommand, registerHost, TestAgent, waitFor } from "../helpers.ts";
import {
  barrier,
  commandFrames,
  commandRow,
  connectedHost,
  enqueue,
  problem,
  responseFrame,
  sendAndAwaitAck,
  states,
  statusFrame,
} from "./relay-helpers.ts";

const cancel = (hostId: string, id: string) => api(`/api/hosts/${hostId}/commands/${id}`, { role: "operator", method: "DELETE" });
const cancelFrame = (agent: TestAgent, id: string) => agent.next((f) => f.message_type === "cancel" && f.original_message_id === id);

describe("cancel: a command never sent", () => {
  it("is cancelled at once (200) and never sent when the agent connects", async () => {
    const host = await registerHost();
    const id = await enqueue(host.host_id);
    const res = await cancel(host.host_id, id);
    expect(res.status).toBe(200);
    const body = (await res.json()) as any;
    expect(body.state).toBe("cancelled");
    expect(states(body)).toEqual(["queued", "cancelled"]);

    const agent = await TestAgent.connect(host.fingerprint);
    const marker = await enqueue(host.host_id);
    await agent.command(marker, 1);
    expect(commandFrames(agent).map((f) => f.message_id)).toEqual([marker]);
    expect(agent.frames.filter((f) => f.message_type === "cancel")).toEqual([]);
  });

  it("a second cancel of a cancelled command is 409", async () => {
    const host = await registerHost();
    const id = await enqueue(host.host_id);
    expect((await cancel(host.host_id, id)).status).toBe(200);
    expect((await problem(await cancel(host.host_id, id), 409)).code).toBe("ERR_COMMAND_NOT_CANCELLABLE");
  });
});

describe("cancel: a command the agent may hold becomes cancelling, and ends as the agent reports", () => {
  it("delivered: 202 cancelling, a cancel frame goes out, the agent's `cancelled` response ends it", async () => {
    const { host_id, agent } = await connectedHost();
    const id = await enqueue(host_id);
    await agent.command(id, 1);
    agent.ack(id);
    await waitFor(
      () => getCommand(host_id, id),
      (v) => v.state === "delivered",
    );

    const res = await cancel(host_id, id);
    expect(res.status).toBe(202);
    expect(((await res.json()) as any).state).toBe("cancelling");
    const frame = await cancelFrame(agent, id);
    agent.ack(frame.message_id);
    await sendAndAwaitAck(agent, responseFrame(id, "cancelled", { output: "partial", exit_code: null }));
    const view = await getCommand(host_id, id);
    expect(view.state).toBe("cancelled");
    expect(view.response_status).toBe("cancelled");
    expect(view.result.output).toBe("partial");
    expect(states(view)).toEqual(["queued", "delivered", "cancelling", "cancelled"]);
  });

  it("already finished on the agent: the stored response wins (succeeded), never `cancelled`", async () => {
    const { host_id, agent } = await connectedHost();
    const id = await enqueue(host_id);
    await agent.command(id, 1);
    agent.ack(id);
    await sendAndAwaitAck(agent, statusFrame(id, "running"));
    expect((await cancel(host_id, id)).status).toBe(202);
    await cancelFrame(agent, id);
    await sendAndAwaitAck(agent, responseFrame(id, "success", { output: "installed", exit_code: 0 }));
    const view = await getCommand(host_id, id);
    expect(view.state).toBe("succeeded");
    expect(view.history.at(-1).detail).toBe("response from the agent to the cancel: success");
  });

  it("in flight (sent, not acked): 202 cancelling; the command is not resent, the cancel is", async () => {
    const { host_id, agent } = await connectedHost();
    const id = await enqueue(host_id);
    await agent.command(id, 1);
    expect((await cancel(host_id, id)).status).toBe(202);
    await cancelFrame(agent, id);
    const row = await commandRow(host_id, id);
    expect(row.in_flight).toBe(0);
    expect(row.state).toBe("cancelling");
    // A late ack of the command itself changes nothing.
    agent.ack(id);
    await barrier(agent);
    expect((await getCommand(host_id, id)).state).toBe("cancelling");
    expect(commandFrames(agent).filter((f) => f.message_id === id)).toHaveLength(1);
  });

  it("the issue's race: sent, connection lost, cancelled — the agent had journaled it and ran it; the API says so", async () => {
    const host = await registerHost();
    const first = await TestAgent.connect(host.fingerprint);
    const id = await enqueue(host.host_id);
    await first.command(id, 1);
    first.close();
    await waitFor(
      () => commandRow(host.host_id, id),
      (r) => r.in_flight === 0,
    );
    // Queued again after the refund, but it was sent: not cancellable outright.
    const res = await cancel(host.host_id, id);
    expect(res.status).toBe(202);
    expect(((await res.json()) as any).state).toBe("cancelling");

    // On the next connection the relay sends the cancel, not the command.
    const second = await TestAgent.connect(host.fingerprint);
    const frame = await cancelFrame(second, id);
    second.ack(frame.message_id);
    await sendAndAwaitAck(second, responseFrame(id, "success", { output: "ran before the cancel", exit_code: 0 }));
    const view = await getCommand(host.host_id, id);
    expect(view.state).toBe("succeeded");
    expect(view.response_status).toBe("success");
    expect(states(view)).toEqual(["queued", "cancelling", "succeeded"]);
    await barrier(second);
    expect(commandFrames(second).filter((f) => f.message_id === id)).toEqual([]);
  });

  it("cancelling again answers 202; a final command answers 409", async () => {
    const { host_id, agent } = await connectedHost();
    const id = await enqueue(host_id);
    await agent.command(id, 1);
    agent.ack(id);
    await waitFor(
      () => getCommand(host_id, id),
      (v) => v.state === "delivered",
    );
    expect((await cancel(host_id, id)).status).toBe(202);
    expect((await cancel(host_id, id)).status).toBe(202);
    await sendAndAwaitAck(agent, responseFrame(id, "cancelled", { exit_code: null }));
    expect((await problem(await cancel(host_id, id), 409)).code).toBe("ERR_COMMAND_NOT_CANCELLABLE");
  });

  it("an unacked cancel frame is sent again on the next connection", async () => {
    const host = await registerHost();
    const first = await TestAgent.connect(host.fingerprint);
    const id = await enqueue(host.host_id);
    await first.command(id, 1);
    first.ack(id);
    await waitFor(
      () => getCommand(host.host_id, id),
      (v) => v.state === "delivered",
    );
    expect((await cancel(host.host_id, id)).status).toBe(202);
    const lost = await cancelFrame(first, id);
    first.close();
    await waitFor(
      () => commandRow(host.host_id, id),
      (r) => r.cancel_sent_at === null,
    );

    const second = await TestAgent.connect(host.fingerprint);
    const again = await cancelFrame(second, id);
    expect(again.message_id).not.toBe(lost.message_id);
    second.ack(again.message_id);
    await waitFor(
      () => commandRow(host.host_id, id),
      (r) => r.cancel_frame_id === null,
    );
  });
});
