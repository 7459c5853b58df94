import { runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { ManualClock } from "../../../worker/clock.ts";
import type { HostRelay } from "../../../worker/host-relay/host-relay.ts";
import { getCommand, registerHost, relayStub, TestAgent, waitFor } from "../helpers.ts";
import { commandRow, enqueue, responseFrame, sendAndAwaitAck, states, statusFrame } from "./relay-helpers.ts";

/** The relay's default grace past a command's timeout (worker/config.ts). */
const GRACE_MS = 60_000;

/** Replaces the relay's clock with one the test moves; returns it. */
async function manualClock(hostId: string): Promise<ManualClock> {
  const clock = new ManualClock(Date.now());
  await runInDurableObject(relayStub(hostId), (instance: HostRelay) => {
    (instance as unknown as { rc: { clock: ManualClock } }).rc.clock = clock;
  });
  return clock;
}

async function alarmAt(hostId: string): Promise<void> {
  await runDurableObjectAlarm(relayStub(hostId));
}

/** A host whose relay runs on a manual clock, with a greeted agent holding one running command. */
async function runningCommand(timeout = 5) {
  const host = await registerHost();
  // A first request creates the relay object, so its clock can be replaced before anything happens.
  await getCommandsPage(host.host_id);
  const clock = await manualClock(host.host_id);
  const agent = await TestAgent.connect(host.fingerprint);
  const id = await enqueue(host.host_id, { timeout });
  await agent.command(id, 1);
  agent.ack(id);
  await sendAndAwaitAck(agent, statusFrame(id, "running"));
  return { ...host, clock, agent, id };
}

async function getCommandsPage(hostId: string): Promise<void> {
  await relayStub(hostId).stats();
}

describe("execution deadline: timeout + grace", () => {
  it("with the agent connected, the relay sends cancel and the agent's answer ends the command", async () => {
    const { host_id, clock, agent, id } = await runningCommand(5);
    const row = await commandRow(host_id, id);
    expect(row.deadline_at).toBe(row.updated_at + 5_000 + GRACE_MS);

    clock.advance(5_000 + GRACE_MS - 1);
    await alarmAt(host_id);
    expect((await getCommand(host_id, id)).state).toBe("running");

    clock.advance(2);
    await alarmAt(host_id);
    const frame = await agent.next((f) => f.message_type === "cancel" && f.original_message_id === id);
    const view = await getCommand(host_id, id);
    expect(view.state).toBe("cancelling");
    expect(view.history.at(-1).detail).toBe("execution deadline passed; cancel sent to the agent");

    agent.ack(frame.message_id);
    await sendAndAwaitAck(agent, responseFrame(id, "cancelled", { output: "killed", exit_code: null }));
    expect(states(await getCommand(host_id, id))).toEqual(["queued", "delivered", "running", "cancelling", "cancelled"]);
  });

  it("with the agent away, the command becomes timed_out; a later response records the truth", async () => {
    const { host_id, fingerprint, clock, agent, id } = await runningCommand(5);
    agent.close();
    await waitFor(
      () => relayStub(host_id).stats(),
      (s) => !s.connected,
    );
    clock.advance(5_000 + GRACE_MS + 1);
    await alarmAt(host_id);
    const timedOut = await getCommand(host_id, id);
    expect(timedOut.state).toBe("timed_out");
    expect(timedOut.response_status).toBeNull();
    expect(timedOut.history.at(-1).detail).toBe("no response from the agent");

    const back = await TestAgent.connect(fingerprint);
    await sendAndAwaitAck(back, responseFrame(id, "success", { output: "done late", exit_code: 0 }));
    const view = await getCommand(host_id, id);
    expect(view.state).toBe("succeeded");
    expect(view.history.at(-1).detail).toBe("response from the agent after the command was timed_out");
  });

  it("a cancel the agent never answers ends timed_out after another grace", async () => {
    const { host_id, clock, agent, id } = await runningCommand(5);
    clock.advance(5_000 + GRACE_MS + 1);
    await alarmAt(host_id);
    await agent.next((f) => f.message_type === "cancel" && f.original_message_id === id);
    clock.advance(GRACE_MS + 1);
    await alarmAt(host_id);
    const view = await getCommand(host_id, id);
    expect(view.state).toBe("timed_out");
    expect(view.history.at(-1).detail).toBe("no response from the agent to the cancel");
  });

  it("a delivered command waiting behind a running one on a connected agent is not cancelled", async () => {
    const { host_id, clock, agent, id } = await runningCommand(3600);
    const waiting = await enqueue(host_id, { timeout: 5 });
    await agent.command(waiting, 1);
    agent.ack(waiting);
    await waitFor(
      () => getCommand(host_id, waiting),
      (v) => v.state === "delivered",
    );
    clock.advance(5_000 + GRACE_MS + 1);
    await alarmAt(host_id);
    expect((await getCommand(host_id, waiting)).state).toBe("delivered");
    expect((await commandRow(host_id, waiting)).deadline_at).toBeGreaterThan(clock.now());
    expect((await getCommand(host_id, id)).state).toBe("running");
  });
});
