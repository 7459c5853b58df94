import { evictDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { CloseCode } from "../../../schemas/index.ts";
import { getCommand, relayStub, TestAgent, waitFor } from "../helpers.ts";
import {
  clockTo,
  commandRow,
  connectedHost,
  countRelayQueries,
  enqueue,
  getAlarm,
  hostStatus,
  responseFrame,
  runAlarm,
  sendAndAwaitAck,
  states,
  statusFrame,
} from "./relay-helpers.ts";

describe("hibernation", () => {
  it("an evicted relay takes the ack, status and response on the hibernated socket and ends in the same state", async () => {
    const { host_id, agent } = await connectedHost();
    const stub = relayStub(host_id);
    const id = await enqueue(host_id);
    await agent.command(id, 1);

    await evictDurableObject(stub);
    agent.ack(id);
    await waitFor(
      () => getCommand(host_id, id),
      (v) => v.state === "delivered",
    );

    await evictDurableObject(stub);
    await sendAndAwaitAck(agent, statusFrame(id, "progress", "chunk\n", 0));
    await evictDurableObject(stub);
    await sendAndAwaitAck(agent, responseFrame(id, "success", { output: "done", exit_code: 0 }));

    const view = await getCommand(host_id, id);
    expect(view.state).toBe("succeeded");
    expect(view.result).toEqual({ output: "done", exit_code: 0 });
    expect(view.output).toBe("chunk\n");
    expect(states(view)).toEqual(["queued", "delivered", "running", "succeeded"]);
    expect(agent.closed).toBeNull();
  });

  it("the alarm still fires after eviction and resends on the hibernated socket", async () => {
    const { host_id, agent } = await connectedHost();
    const stub = relayStub(host_id);
    const id = await enqueue(host_id);
    await agent.command(id, 1);
    const sent = await commandRow(host_id, id);
    // (floor: alarm times are whole milliseconds; the exact match is checked in delivery.test.ts)
    expect(await getAlarm(host_id)).toBe(Math.floor(sent.retry_at!));

    await evictDurableObject(stub);
    // The alarm set before the eviction is still there.
    expect(await getAlarm(host_id)).toBe(Math.floor(sent.retry_at!));

    await evictDurableObject(stub);
    // A fresh instance (its clock moved to the retry) finds the hibernated socket and resends on it.
    await clockTo(host_id, sent.retry_at!);
    await runAlarm(host_id);
    expect((await agent.command(id, 2)).attempt).toBe(2);
    expect((await commandRow(host_id, id)).attempts).toBe(2);

    await evictDurableObject(stub);
    agent.ack(id);
    await sendAndAwaitAck(agent, responseFrame(id));
    const view = await getCommand(host_id, id);
    expect(view.state).toBe("succeeded");
    expect(view.attempts).toBe(2);
  });

  it("a hibernated socket is replaced by a new connection, which gets the unacked command as the same attempt", async () => {
    const host = await connectedHost();
    const id = await enqueue(host.host_id);
    await host.agent.command(id, 1);
    await evictDurableObject(relayStub(host.host_id));

    const second = await TestAgent.connect(host.fingerprint);
    expect((await host.agent.waitClose()).code).toBe(CloseCode.REPLACED);
    // The send interrupted by the replacement was refunded, so the resend is attempt 1 again.
    expect((await second.command(id)).attempt).toBe(1);
    await sendAndAwaitAck(second, responseFrame(id));
    const view = await getCommand(host.host_id, id);
    expect(view.state).toBe("succeeded");
    expect(view.attempts).toBe(1);
  });

  it("an agent that disconnects while the relay hibernates is marked offline and its unacked command waits with the attempt refunded", async () => {
    const host = await connectedHost();
    await waitFor(
      () => hostStatus(host.host_id),
      (s) => s === "online",
    );
    const id = await enqueue(host.host_id);
    await host.agent.command(id, 1);
    await evictDurableObject(relayStub(host.host_id));

    host.agent.close();
    await waitFor(
      () => hostStatus(host.host_id),
      (s) => s === "offline",
    );
    const row = await commandRow(host.host_id, id);
    expect(row.in_flight).toBe(0);
    expect(row.attempts).toBe(0);
    expect(row.state).toBe("queued");
  });
});

describe("alarm wakes", () => {
  // The queries of the command sweeps (expiry, retry, execution deadline, pruning).
  const SWEEPS = [/expires_at <= \?/, /retry_at <= \?/, /deadline_at <= \?/, /terminal_at <= \?/];

  it("a connected host's stale-check wake runs none of the command sweeps while no command is due", async () => {
    const { host_id, agent } = await connectedHost();
    const queries = await countRelayQueries(host_id);
    await runAlarm(host_id);
    expect(queries.length, "the wake ran through the counted storage").toBeGreaterThan(0);
    expect(queries.filter((q) => SWEEPS.some((s) => s.test(q)))).toEqual([]);
    expect(agent.closed).toBeNull();
    agent.close();
  });

  it("once a retry is due, the wake runs the sweeps and resends", async () => {
    const { host_id, agent } = await connectedHost();
    const id = await enqueue(host_id);
    await agent.command(id, 1);
    const row = await commandRow(host_id, id);
    await clockTo(host_id, row.retry_at!);
    const queries = await countRelayQueries(host_id);
    await runAlarm(host_id);
    expect(SWEEPS.every((s) => queries.some((q) => s.test(q)))).toBe(true);
    await agent.command(id, 2);
    agent.close();
  });
});
