import { runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { CloseCode } from "../../../schemas/index.ts";
import { type AgentAttachment, attachment, type RelayContext } from "../../../worker/host-relay/context.ts";
import { getCommand, helloFrame, registerHost, relayStub, TestAgent, waitFor } from "../helpers.ts";
import {
  advanceClock,
  attachments,
  commandFrames,
  commandRow,
  connectedHost,
  enqueue,
  hostStatus,
  patchAttachments,
  responseFrame,
  runAlarm,
  STALE_AFTER_MS,
  sendAndAwaitAck,
} from "./relay-helpers.ts";

describe("heartbeat", () => {
  it("the text frame ping is answered with pong", async () => {
    const { agent } = await connectedHost();
    const pong = agent.nextNew((f) => f === "pong");
    agent.send("ping");
    expect(await pong).toBe("pong");
    expect(agent.closed).toBeNull();
  });
});

describe("stale connections", () => {
  it("a connection silent for longer than the stale window is closed with STALE by the alarm and the host goes offline", async () => {
    const { host_id, agent } = await connectedHost();
    await waitFor(
      () => hostStatus(host_id),
      (s) => s === "online",
    );

    await advanceClock(host_id, STALE_AFTER_MS + 1000);
    await runAlarm(host_id);

    expect((await agent.waitClose()).code).toBe(CloseCode.STALE);
    await waitFor(
      () => hostStatus(host_id),
      (s) => s === "offline",
    );
    expect((await relayStub(host_id).stats()).connected).toBe(false);
  });

  it("heartbeat pings count as activity even though they never reach the relay's code", async () => {
    const { host_id, agent } = await connectedHost();
    // The runtime stamps auto-responses with real time, which the relay's injected clock cannot move,
    // so here the socket's own last-frame time is aged instead.
    const old = Date.now() - STALE_AFTER_MS - 1000;
    await patchAttachments(host_id, () => ({ lastFrameAt: old, connectedAt: old }));
    const pong = agent.nextNew((f) => f === "pong");
    agent.send("ping");
    await pong;
    await runAlarm(host_id);
    const id = await enqueue(host_id);
    await agent.command(id, 1);
    expect(agent.closed).toBeNull();
    expect((await attachments(host_id))[0]!.lastFrameAt).toBe(old);
  });

  it("a connection with recent activity survives the alarm", async () => {
    const { host_id, agent } = await connectedHost();
    await advanceClock(host_id, STALE_AFTER_MS - 60_000);
    await runAlarm(host_id);
    // Still usable: a queued command goes out on it.
    const id = await enqueue(host_id);
    await agent.command(id, 1);
    expect(agent.closed).toBeNull();
    expect(await hostStatus(host_id)).toBe("online");
  });

  it("when the stale check and a retry fall due together, the stale socket is closed without a resend on it, and its unacked send is refunded", async () => {
    const host = await registerHost();
    const first = await TestAgent.connect(host.fingerprint);
    const id = await enqueue(host.host_id, { max_attempts: 2 });
    await first.command(id, 1);

    // The agent goes silent (a dead peer that never closes) past the stale window, so the ack is overdue too.
    await advanceClock(host.host_id, STALE_AFTER_MS + 1000);
    await runAlarm(host.host_id);

    expect((await first.waitClose()).code).toBe(CloseCode.STALE);
    expect(
      commandFrames(first)
        .filter((f) => f.message_id === id)
        .map((f) => f.attempt),
    ).toEqual([1]);
    // Closed before the retry ran: no second attempt went out on the dead socket, and the first is refunded.
    const row = await commandRow(host.host_id, id);
    expect(row.attempts).toBe(0);
    expect(row.in_flight).toBe(0);
    expect(row.state).toBe("queued");

    // The agent comes back: the command goes out again as attempt 1, not a dead letter.
    const second = await TestAgent.connect(host.fingerprint);
    expect((await second.command(id)).attempt).toBe(1);
    const view = await getCommand(host.host_id, id);
    expect(view.state).toBe("queued");
    expect(view.attempts).toBe(1);
  });

  it("a connection that never says hello is closed with HELLO_REQUIRED", async () => {
    const host = await registerHost();
    const agent = await TestAgent.connect(host.fingerprint, false);
    await advanceClock(host.host_id, 60_000);
    await runAlarm(host.host_id);
    expect((await agent.waitClose()).code).toBe(CloseCode.HELLO_REQUIRED);
    expect(await hostStatus(host.host_id)).toBe("offline");
  });
});

describe("connect and disconnect", () => {
  it("hello marks the host online with the agent's info; the agent's close marks it offline", async () => {
    const { host_id, agent } = await connectedHost();
    await waitFor(
      () => hostStatus(host_id),
      (s) => s === "online",
    );
    expect((await relayStub(host_id).stats()).connected).toBe(true);
    agent.close();
    await waitFor(
      () => hostStatus(host_id),
      (s) => s === "offline",
    );
    expect((await relayStub(host_id).stats()).connected).toBe(false);
  });

  it("a hello with an unsupported protocol version is closed with UNSUPPORTED_PROTOCOL", async () => {
    const host = await registerHost();
    const agent = await TestAgent.connect(host.fingerprint, false);
    agent.send(helloFrame({ protocol_version: 2 }));
    expect((await agent.waitClose()).code).toBe(CloseCode.UNSUPPORTED_PROTOCOL);
    expect(agent.frames.some((f) => f.message_type === "welcome")).toBe(false);
    expect(await hostStatus(host.host_id)).toBe("offline");
  });
});

describe("replacement", () => {
  it("a second connection closes the first with REPLACED, gets the unacked commands after its hello, and the host stays online", async () => {
    const host = await registerHost();
    const first = await TestAgent.connect(host.fingerprint);
    const id = await enqueue(host.host_id);
    await first.command(id, 1);

    const second = await TestAgent.connect(host.fingerprint, false);
    expect((await first.waitClose()).code).toBe(CloseCode.REPLACED);
    // Nothing is resent before the new connection's hello; the interrupted send is refunded.
    const waiting = await commandRow(host.host_id, id);
    expect(waiting.in_flight).toBe(0);
    expect(waiting.attempts).toBe(0);
    expect(second.frames).toEqual([]);

    second.send(helloFrame());
    await second.next((f) => f.message_type === "welcome");
    const resent = await second.command(id);
    expect(resent.attempt).toBe(1);
    expect((await commandRow(host.host_id, id)).attempts).toBe(1);

    // The registry follows the newest connection, not the old socket's close.
    const [live] = (await attachments(host.host_id)).filter((a) => !a.closed);
    await waitFor(
      () => env.DB.prepare("SELECT connection_id FROM hosts WHERE host_id = ?").bind(host.host_id).first<{ connection_id: string }>(),
      (r) => r?.connection_id === live!.connectionId,
    );
    expect(await hostStatus(host.host_id)).toBe("online");

    second.ack(id);
    await sendAndAwaitAck(second, responseFrame(id));
    expect((await getCommand(host.host_id, id)).state).toBe("succeeded");
    expect(await hostStatus(host.host_id)).toBe("online");
  });
});

describe("attachment copy", () => {
  it("the instance's copy of a socket's attachment is what the socket stores, after frames touched it through the hook's socket", async () => {
    const { host_id, agent } = await connectedHost();
    await advanceClock(host_id, 5_000);
    // A frame makes the hook rewrite lastFrameAt through the socket object the runtime hands to webSocketMessage.
    const id = await enqueue(host_id);
    await agent.command(id, 1);
    await sendAndAwaitAck(agent, responseFrame(id, "success"));
    const [copy, stored] = await runInDurableObject(relayStub(host_id), (instance, state) => {
      const rc = (instance as unknown as { rc: RelayContext }).rc;
      const ws = state.getWebSockets()[0]!;
      return [attachment(rc, ws), ws.deserializeAttachment() as AgentAttachment];
    });
    expect(stored.lastFrameAt).toBeGreaterThan(stored.connectedAt);
    expect(copy).toEqual(stored);
  });
});
