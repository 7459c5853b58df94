import { describe, expect, it } from "vitest";

/** The relay's registry re-check (REGISTRY_CHECK_S default, worker/config.ts). */
const REGISTRY_CHECK_MS = 300_000;

import { CommandMessage } from "../../../schemas/index.ts";
import { api, getCommand, registerHost, relayStub, TestAgent, waitFor } from "../helpers.ts";
import {
  ACK_TIMEOUT_MS,
  attachments,
  barrier,
  clockTo,
  commandFrames,
  commandRow,
  connectedHost,
  enqueue,
  getAlarm,
  problem,
  RETRY_BASE_MS,
  RETRY_CAP_MS,
  responseFrame,
  retryNow,
  runAlarm,
  STALE_AFTER_MS,
  sendAndAwaitAck,
  sql,
  states,
} from "./relay-helpers.ts";

describe("offline hosts", () => {
  it("commands wait as queued without spending attempts, then flush in acceptance order on hello", async () => {
    const host = await registerHost();
    const bodies = [
      {
        command_type: "package_operation",
        parameters: { operation: "install", packages: ["nginx"], options: { yes: true } },
        timeout: 120,
      },
      { command_type: "system_info", timeout: 30, expires_in: 600 },
      { command_type: "package_operation", parameters: { operation: "upgrade", packages: [], options: {} } },
    ];
    const ids: string[] = [];
    for (const body of bodies) ids.push(await enqueue(host.host_id, body));

    // The alarm runs while nobody is connected: nothing is sent, no attempt is spent.
    await runAlarm(host.host_id);
    for (const id of ids) {
      const view = await getCommand(host.host_id, id);
      expect(view.state).toBe("queued");
      expect(view.attempts).toBe(0);
      expect(view.last_attempt_at).toBeNull();
    }

    const agent = await TestAgent.connect(host.fingerprint);
    await agent.command(ids[2]!);
    const frames = commandFrames(agent);
    expect(frames.map((f) => f.message_id)).toEqual(ids);
    expect(frames.map((f) => f.attempt)).toEqual([1, 1, 1]);

    for (const [i, frame] of frames.entries()) {
      expect(CommandMessage.safeParse(frame).success, JSON.stringify(frame)).toBe(true);
      const view = await getCommand(host.host_id, ids[i]!);
      expect(frame).toMatchObject({
        message_type: "command",
        target_host: host.host_id,
        command_type: bodies[i]!.command_type,
        expires_at: view.expires_at,
        timeout: view.timeout,
        parameters: view.parameters,
      });
      expect(new Date(frame.timestamp).toISOString()).toBe(frame.timestamp);
      expect(view.attempts).toBe(1);
    }
    expect(frames[0].parameters).toEqual({ operation: "install", packages: ["nginx"], options: { yes: true } });
    expect(frames[0].timeout).toBe(120);
    expect(frames[1].timeout).toBe(30);
    expect(frames[1].parameters).toEqual({});
    expect(Date.parse(frames[1].expires_at) - Date.parse((await getCommand(host.host_id, ids[1]!)).created_at)).toBe(600_000);
  });

  it("a sent but unacked command gets its interrupted attempt back when the connection goes, and goes out again as the same attempt", async () => {
    const host = await registerHost();
    const first = await TestAgent.connect(host.fingerprint);
    const id = await enqueue(host.host_id);
    await first.command(id, 1);
    expect((await commandRow(host.host_id, id)).attempts).toBe(1);
    first.close();
    // The send never had its full ack window: the attempt is refunded.
    const waiting = await waitFor(
      () => commandRow(host.host_id, id),
      (r) => r.in_flight === 0,
    );
    expect(waiting.attempts).toBe(0);
    expect(waiting.retry_at).toBeNull();

    // Offline, the alarm spends nothing on it.
    await runAlarm(host.host_id);
    const row = await commandRow(host.host_id, id);
    expect(row.attempts).toBe(0);
    expect(row.state).toBe("queued");

    const second = await TestAgent.connect(host.fingerprint);
    const resent = await second.command(id);
    expect(resent.attempt).toBe(1);
    expect((await commandRow(host.host_id, id)).attempts).toBe(1);
  });

  it("a connection that drops 15 times while the command is in flight never exhausts max_attempts; the next stable connection delivers it", async () => {
    const host = await registerHost();
    const id = await enqueue(host.host_id, { max_attempts: 3 });
    for (let drop = 1; drop <= 15; drop++) {
      const agent = await TestAgent.connect(host.fingerprint);
      expect((await agent.command(id)).attempt, `send on connection ${drop}`).toBe(1);
      agent.close();
      const row = await waitFor(
        () => commandRow(host.host_id, id),
        (r) => r.in_flight === 0,
      );
      expect(row.state, `after drop ${drop}`).toBe("queued");
      expect(row.attempts, `after drop ${drop}`).toBe(0);
      // The alarm, run while offline, neither dead-letters nor spends anything.
      if (drop % 5 === 0) {
        await runAlarm(host.host_id);
        expect((await commandRow(host.host_id, id)).state, `alarm after drop ${drop}`).toBe("queued");
      }
    }

    const stable = await TestAgent.connect(host.fingerprint);
    expect((await stable.command(id)).attempt).toBe(1);
    stable.ack(id);
    await sendAndAwaitAck(stable, responseFrame(id));
    const view = await getCommand(host.host_id, id);
    expect(view.state).toBe("succeeded");
    expect(view.attempts).toBe(1);
    expect(states(view)).toEqual(["queued", "delivered", "succeeded"]);
    const letters = (await (await api(`/api/hosts/${host.host_id}/dead-letters`, { role: "viewer" })).json()) as { items: unknown[] };
    expect(letters.items).toEqual([]);
  });
});

describe("ordering", () => {
  it("commands queued while connected arrive in acceptance order", async () => {
    const { host_id, agent } = await connectedHost();
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) ids.push(await enqueue(host_id));
    await agent.command(ids[4]!);
    expect(commandFrames(agent).map((f) => f.message_id)).toEqual(ids);
    expect(commandFrames(agent).every((f) => f.attempt === 1)).toBe(true);
  });
});

describe("retries", () => {
  it("an unacked command is resent with a higher attempt once its retry is due", async () => {
    const { host_id, agent } = await connectedHost();
    const id = await enqueue(host_id);
    await agent.command(id, 1);
    expect((await getCommand(host_id, id)).attempts).toBe(1);

    await retryNow(host_id, id);
    const second = await agent.command(id, 2);
    expect(second.message_id).toBe(id);
    const view = await getCommand(host_id, id);
    expect(view.attempts).toBe(2);
    expect(view.state).toBe("queued");

    // The resend is acked and the command completes normally.
    agent.ack(id);
    await sendAndAwaitAck(agent, responseFrame(id));
    expect((await getCommand(host_id, id)).state).toBe("succeeded");
  });

  it("a retry that is not due yet is not resent by the alarm", async () => {
    const { host_id, agent } = await connectedHost();
    const id = await enqueue(host_id);
    await agent.command(id, 1);
    const before = await commandRow(host_id, id);
    await runAlarm(host_id);
    await barrier(agent);
    expect(commandFrames(agent).filter((f) => f.message_id === id)).toHaveLength(1);
    const after = await commandRow(host_id, id);
    expect(after.attempts).toBe(1);
    expect(after.retry_at).toBe(before.retry_at);
  });

  it("each send sets retry_at within [sent + ack timeout, sent + ack timeout + min(cap, base·2^(attempt-1))]", async () => {
    const { host_id, agent } = await connectedHost();
    const id = await enqueue(host_id, { max_attempts: 12 });
    const lateJitter: number[] = [];
    for (let attempt = 1; attempt <= 10; attempt++) {
      if (attempt > 1) await retryNow(host_id, id);
      await agent.command(id, attempt);
      const row = await commandRow(host_id, id);
      expect(row.attempts).toBe(attempt);
      expect(row.in_flight).toBe(1);
      const sentAt = row.last_attempt_at!;
      const jitter = Math.min(RETRY_CAP_MS, RETRY_BASE_MS * 2 ** (attempt - 1));
      expect(row.retry_at!, `attempt ${attempt}`).toBeGreaterThanOrEqual(sentAt + ACK_TIMEOUT_MS);
      expect(row.retry_at!, `attempt ${attempt}`).toBeLessThanOrEqual(sentAt + ACK_TIMEOUT_MS + jitter);
      if (attempt >= 5) lateJitter.push(row.retry_at! - sentAt - ACK_TIMEOUT_MS);
    }
    // The window grows: from attempt 5 on it spans [0, cap], so six draws all within the first
    // step's [0, base] would mean it never grew (chance with a correct backoff: 0.1^6).
    expect(Math.max(...lateJitter)).toBeGreaterThan(RETRY_BASE_MS);
  });

  it("after max_attempts without an ack the command is dead-lettered and listed", async () => {
    const { host_id, agent } = await connectedHost();
    const id = await enqueue(host_id, { max_attempts: 2 });
    await agent.command(id, 1);
    await retryNow(host_id, id);
    await agent.command(id, 2);
    expect((await getCommand(host_id, id)).state).toBe("queued");

    await retryNow(host_id, id);
    const view = await getCommand(host_id, id);
    expect(view.state).toBe("dead_lettered");
    expect(view.attempts).toBe(2);
    expect(states(view)).toEqual(["queued", "dead_lettered"]);
    // No third attempt went out.
    await barrier(agent);
    expect(
      commandFrames(agent)
        .filter((f) => f.message_id === id)
        .map((f) => f.attempt),
    ).toEqual([1, 2]);

    const res = await api(`/api/hosts/${host_id}/dead-letters`, { role: "viewer" });
    expect(res.status).toBe(200);
    const page = (await res.json()) as { items: any[] };
    expect(page.items).toHaveLength(1);
    expect(page.items[0]).toMatchObject({ message_id: id, command_type: "system_info", attempts: 2 });
    expect(typeof page.items[0].reason).toBe("string");
  });
});

describe("dead-letter requeue", () => {
  async function deadLettered() {
    const host = await connectedHost();
    const id = await enqueue(host.host_id, { max_attempts: 2 });
    await host.agent.command(id, 1);
    await retryNow(host.host_id, id);
    await host.agent.command(id, 2);
    await retryNow(host.host_id, id);
    expect((await getCommand(host.host_id, id)).state).toBe("dead_lettered");
    return { ...host, id };
  }

  const requeue = (hostId: string, id: string, body?: object) =>
    api(`/api/hosts/${hostId}/dead-letters/${id}/requeue`, { role: "operator", method: "POST", ...(body ? { body } : {}) });

  it("requeue puts it back under the same message_id with attempts reset; it is resent as attempt 1 and can succeed", async () => {
    const { host_id, agent, id } = await deadLettered();
    const resent = agent.nextNew((f) => f.message_type === "command" && f.message_id === id);
    const res = await requeue(host_id, id);
    expect(res.status).toBe(202);
    expect(await res.json()).toEqual({ message_id: id, status: "queued" });

    expect((await resent).attempt).toBe(1);
    const queued = await getCommand(host_id, id);
    expect(queued.state).toBe("queued");
    expect(queued.attempts).toBe(1);
    const list = (await (await api(`/api/hosts/${host_id}/dead-letters`, { role: "viewer" })).json()) as { items: unknown[] };
    expect(list.items).toEqual([]);

    agent.ack(id);
    await sendAndAwaitAck(agent, responseFrame(id));
    const view = await getCommand(host_id, id);
    expect(view.state).toBe("succeeded");
    expect(states(view)).toEqual(["queued", "dead_lettered", "queued", "delivered", "succeeded"]);
  });

  it("requeue of a command that is not dead-lettered is 409", async () => {
    const { host_id, agent } = await connectedHost();
    const id = await enqueue(host_id);
    await agent.command(id, 1);
    const body = await problem(await requeue(host_id, id), 409);
    expect(body.code).toBe("ERR_COMMAND_NOT_DEAD_LETTERED");
    expect((await getCommand(host_id, id)).attempts).toBe(1);
  });

  it("requeue after the deadline passed needs a new one: 409 without, 202 with expires_in", async () => {
    const { host_id, agent, id } = await deadLettered();
    await clockTo(host_id, (await commandRow(host_id, id)).expires_at + 1000);

    const body = await problem(await requeue(host_id, id), 409);
    expect(body.code).toBe("ERR_COMMAND_DEADLINE_PASSED");
    expect((await getCommand(host_id, id)).state).toBe("dead_lettered");

    const resent = agent.nextNew((f) => f.message_type === "command" && f.message_id === id);
    const res = await requeue(host_id, id, { expires_in: 120 });
    expect(res.status).toBe(202);
    const frame = await resent;
    expect(frame.attempt).toBe(1);
    const view = await getCommand(host_id, id);
    expect(view.state).toBe("queued");
    expect(Date.parse(view.expires_at)).toBeGreaterThan(Date.now());
    expect(frame.expires_at).toBe(view.expires_at);
  });
});

describe("responses after the relay gave up", () => {
  it("a command dead-lettered by ack timeouts on a live connection becomes succeeded when the agent's response comes, and leaves the dead letters", async () => {
    const { host_id, agent } = await connectedHost();
    const id = await enqueue(host_id, { max_attempts: 2 });
    await agent.command(id, 1);
    await retryNow(host_id, id);
    await agent.command(id, 2);
    await retryNow(host_id, id);
    expect(agent.closed).toBeNull();
    expect((await getCommand(host_id, id)).state).toBe("dead_lettered");
    const listed = (await (await api(`/api/hosts/${host_id}/dead-letters`, { role: "viewer" })).json()) as { items: any[] };
    expect(listed.items.map((d) => d.message_id)).toEqual([id]);

    await sendAndAwaitAck(agent, responseFrame(id, "success", { output: "ran after all", exit_code: 0, execution_time: 0.2 }));
    const view = await getCommand(host_id, id);
    expect(view.state).toBe("succeeded");
    expect(view.response_status).toBe("success");
    expect(view.result).toEqual({ output: "ran after all", exit_code: 0, execution_time: 0.2 });
    expect(states(view)).toEqual(["queued", "dead_lettered", "succeeded"]);
    expect(view.history.at(-1).detail).toBe("response from the agent after the command was dead_lettered");

    const res = await api(`/api/hosts/${host_id}/dead-letters`, { role: "viewer" });
    expect(res.status).toBe(200);
    expect(((await res.json()) as { items: unknown[] }).items).toEqual([]);
    // No longer a dead letter, so there is nothing to requeue.
    const requeued = await problem(
      await api(`/api/hosts/${host_id}/dead-letters/${id}/requeue`, { role: "operator", method: "POST" }),
      409,
    );
    expect(requeued.code).toBe("ERR_COMMAND_NOT_DEAD_LETTERED");
  });
});

describe("expiry", () => {
  it("a command whose deadline passes while offline expires and is never sent", async () => {
    const host = await registerHost();
    const id = await enqueue(host.host_id, { expires_in: 60 });
    expect((await getCommand(host.host_id, id)).state).toBe("queued");
    await clockTo(host.host_id, (await commandRow(host.host_id, id)).expires_at + 1);
    await runAlarm(host.host_id);

    const view = await getCommand(host.host_id, id);
    expect(view.state).toBe("expired");
    expect(view.attempts).toBe(0);
    expect(states(view)).toEqual(["queued", "expired"]);

    const agent = await TestAgent.connect(host.fingerprint);
    const marker = await enqueue(host.host_id);
    await agent.command(marker, 1);
    expect(commandFrames(agent).map((f) => f.message_id)).toEqual([marker]);
  });

  it("a late response for an expired command records the agent's outcome (succeeded, with the result), and is acked", async () => {
    const { host_id, agent } = await connectedHost();
    const id = await enqueue(host_id, { expires_in: 60 });
    await agent.command(id, 1);
    await clockTo(host_id, (await commandRow(host_id, id)).expires_at + 1);
    await runAlarm(host_id);
    expect((await getCommand(host_id, id)).state).toBe("expired");

    // The ack alone does not revive it; the response does.
    agent.ack(id);
    await sendAndAwaitAck(agent, responseFrame(id, "success", { output: "too late", exit_code: 0 }));
    const view = await getCommand(host_id, id);
    expect(view.state).toBe("succeeded");
    expect(view.response_status).toBe("success");
    expect(view.result).toEqual({ output: "too late", exit_code: 0 });
    expect(states(view)).toEqual(["queued", "expired", "succeeded"]);
    expect(view.history.at(-1).detail).toBe("response from the agent after the command was expired");

    // A redelivered response keeps the first outcome.
    await sendAndAwaitAck(agent, responseFrame(id, "failure", { output: "other", exit_code: 1 }));
    const again = await getCommand(host_id, id);
    expect(again.state).toBe("succeeded");
    expect(again.result).toEqual({ output: "too late", exit_code: 0 });
    expect(states(again)).toEqual(["queued", "expired", "succeeded"]);
  });
});

describe("the single alarm", () => {
  it("points at the in-flight command's retry_at after an enqueue while connected, and moves on after the ack", async () => {
    const { host_id, agent } = await connectedHost();
    const id = await enqueue(host_id);
    await agent.command(id, 1);
    const row = await commandRow(host_id, id);
    expect(row.retry_at).not.toBeNull();
    // Alarm times are whole milliseconds, so a retry_at with a fraction makes the alarm fire before the retry is due.
    expect(await getAlarm(host_id), "alarm time must be the retry_at itself").toBe(row.retry_at);

    agent.ack(id);
    await waitFor(
      () => getCommand(host_id, id),
      (v) => v.state === "delivered",
    );
    // Now the earliest due item is the connection's stale check, or the registry re-check (revocation).
    const [a] = await attachments(host_id);
    const [checked] = await sql<{ value: string }>(host_id, "SELECT value FROM meta WHERE key = 'registry_checked_at'");
    expect(await getAlarm(host_id)).toBe(Math.min(a!.lastFrameAt + STALE_AFTER_MS, Number(checked!.value) + REGISTRY_CHECK_MS));
  });

  it("offline, points at the earliest delivery deadline", async () => {
    const host = await registerHost();
    const later = await enqueue(host.host_id, { expires_in: 600 });
    const sooner = await enqueue(host.host_id, { expires_in: 60 });
    const expected = (await commandRow(host.host_id, sooner)).expires_at;
    expect(expected).toBeLessThan((await commandRow(host.host_id, later)).expires_at);
    expect(await getAlarm(host.host_id)).toBe(expected);
  });

  it("RPC stats report the queue", async () => {
    const host = await registerHost();
    await enqueue(host.host_id);
    expect(await relayStub(host.host_id).stats()).toEqual({ queue_depth: 1, connected: false });
  });
});
