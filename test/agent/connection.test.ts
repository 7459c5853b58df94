import { readFile, rm } from "node:fs/promises";
import path from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, test } from "vitest";
import { certificateMatchesKey } from "../../agent/csr.ts";
import { type Agent, type AgentOptions, startAgent } from "../../agent/index.ts";
import { openJournal } from "../../agent/journal.ts";
import { silentLogger } from "../../agent/log.ts";
import { HelloMessage } from "../../schemas/index.ts";
import { EventRecorder } from "./helpers/events.ts";
import { FakeRelay, type FakeRelayOptions } from "./helpers/fake-relay.ts";
import { createTestPki, enrolledStateDir, type TestPki } from "./helpers/test-pki.ts";

let pki: TestPki;
const cleanups: (() => Promise<void>)[] = [];

beforeAll(async () => {
  pki = await createTestPki();
});
afterAll(async () => {
  await rm(pki.dir, { recursive: true, force: true });
});
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

interface Setup {
  relay: FakeRelay;
  agent: Agent;
  events: EventRecorder;
  stateDir: string;
  hostId: string;
  fingerprint: string;
}

async function setup(
  opts: { agent?: Partial<AgentOptions>; relay?: Partial<FakeRelayOptions>; certDays?: number; beforeStart?: (r: FakeRelay) => void } = {},
): Promise<Setup> {
  const hostId = crypto.randomUUID();
  const relay = await FakeRelay.start({ pki, hostId, ...opts.relay });
  cleanups.push(() => relay.close());
  const { stateDir, fingerprint } = await enrolledStateDir(pki, { hostId, relay: relay.url, days: opts.certDays });
  cleanups.push(() => rm(stateDir, { recursive: true, force: true }));
  opts.beforeStart?.(relay);
  const agent = await startAgent({
    stateDir,
    logger: silentLogger,
    reconnectBaseMs: 50,
    reconnectCapMs: 200,
    random: () => 0.5,
    shutdownGraceMs: 1000,
    flushTimeoutMs: 500,
    ...opts.agent,
  });
  cleanups.push(async () => {
    await agent.stop("test over");
  });
  return { relay, agent, events: new EventRecorder(agent), stateDir, hostId, fingerprint };
}

function executionCounts(stateDir: string): Map<string, number> {
  const j = openJournal(stateDir);
  try {
    return j.executionCounts();
  } finally {
    j.close();
  }
}

describe("agent connection", () => {
  test("speaks TLS 1.3 with its client certificate and sends hello first", async () => {
    const { relay, events, fingerprint } = await setup();
    const conn = await relay.connection(1);
    await events.waitFor("welcome");
    expect(conn.tlsProtocol).toBe("TLSv1.3");
    expect(conn.clientFingerprint).toBe(fingerprint);
    const first = conn.frames[0]!;
    expect(first.message_type).toBe("hello");
    const hello = HelloMessage.parse(first);
    expect(hello.protocol_version).toBe(1);
    expect(hello.agent_version).toBe(JSON.parse(await readFile(path.join(import.meta.dirname, "../../package.json"), "utf8")).version);
    expect(hello.supported_commands).toEqual(["package_operation", "system_info"]);
    expect(hello.os.name.length).toBeGreaterThan(0);
  });

  test("acks a command before executing it, then streams status and answers", async () => {
    const { relay, events } = await setup({ agent: { allowShell: true } });
    const conn = await relay.connection(1);
    await events.waitFor("welcome");
    const cmd = relay.command({ command_type: "shell", parameters: { script: "echo hi" } });
    conn.sendFrame(cmd);
    const response = await conn.waitForFrame((f) => f.message_type === "response" && f.original_message_id === cmd.message_id);
    const mine = conn.frames
      .filter((f) => f.original_message_id === cmd.message_id)
      .map((f) => (f.state as string | undefined) ?? f.message_type);
    expect(mine).toEqual(["ack", "running", "progress", "response"]);
    expect(response).toMatchObject({ status: "success", result: { output: "hi\n", exit_code: 0 } });
  });

  test("a cancel frame over the wire: acked, the running command's group killed, answered cancelled through the outbox", async () => {
    const { relay, events, stateDir } = await setup({ agent: { allowShell: true, killGraceMs: 500 } });
    const conn = await relay.connection(1);
    await events.waitFor("welcome");
    const cmd = relay.command({ command_type: "shell", parameters: { script: "echo before; sleep 60" } });
    conn.sendFrame(cmd);
    await conn.waitForFrame((f) => f.state === "progress" && f.original_message_id === cmd.message_id);
    const cancel = {
      message_id: crypto.randomUUID(),
      timestamp: new Date().toISOString(),
      message_type: "cancel",
      original_message_id: cmd.message_id,
    };
    conn.sendFrame(cancel);
    const response = await conn.waitForFrame((f) => f.message_type === "response" && f.original_message_id === cmd.message_id);
    expect(response).toMatchObject({ status: "cancelled", result: { output: "before\n", exit_code: null, signal: "SIGTERM" } });
    const ackAt = conn.frames.findIndex((f) => f.message_type === "ack" && f.original_message_id === cancel.message_id);
    expect(ackAt).toBeGreaterThanOrEqual(0);
    expect(ackAt).toBeLessThan(conn.frames.indexOf(response));
    expect(conn.frames.some((f) => f.message_type === "error")).toBe(false);
    // The relay acked the response: nothing left to resend.
    await events.waitFor("outbox_acked", (e) => e.frame_id === response.message_id);
    const j = openJournal(stateDir);
    try {
      expect(j.outbox().filter((e) => e.kind === "response")).toEqual([]);
      expect(j.get(cmd.message_id)).toMatchObject({ state: "finished", cancel_id: cancel.message_id });
    } finally {
      j.close();
    }
  });

  test("an invalid frame gets an error frame, runs nothing and keeps the connection", async () => {
    const { relay, events, stateDir } = await setup({ agent: { allowShell: true } });
    const conn = await relay.connection(1);
    await events.waitFor("welcome");
    const bad = {
      ...relay.command({ command_type: "shell", parameters: { script: "touch /tmp/should-not-exist" } }),
      target_host: "not-a-uuid",
    };
    conn.sendFrame(bad);
    const err = await conn.waitForFrame((f) => f.message_type === "error" && f.original_message_id === bad.message_id);
    expect(err).toMatchObject({ code: "ERR_FRAME_INVALID", detail: expect.stringContaining("target_host") });
    conn.sendRaw("{not json");
    await conn.waitForFrame((f) => f.message_type === "error" && f.code === "ERR_FRAME_MALFORMED_JSON");

    const good = relay.command({ command_type: "system_info", parameters: {} });
    conn.sendFrame(good);
    await conn.waitForFrame((f) => f.message_type === "response" && f.original_message_id === good.message_id);
    expect(conn.frames.some((f) => f.message_type === "ack" && f.original_message_id === bad.message_id)).toBe(false);
    expect(executionCounts(stateDir)).toEqual(new Map([[good.message_id, 1]]));
    expect(relay.connections).toHaveLength(1);
  });

  test("a redelivered command is answered with the stored response, not run again", async () => {
    const { relay, events, stateDir } = await setup({ agent: { allowShell: true } });
    const conn = await relay.connection(1);
    await events.waitFor("welcome");
    const cmd = relay.command({ command_type: "shell", parameters: { script: "echo $$" } });
    conn.sendFrame(cmd);
    const first = await conn.waitForFrame((f) => f.message_type === "response");
    conn.sendFrame({ ...cmd, attempt: 2 });
    await conn.until(() => conn.frames.filter((f) => f.message_type === "response").length === 2, 5000, "second response");
    const responses = conn.frames.filter((f) => f.message_type === "response");
    expect(responses[1]).toEqual(first);
    expect(conn.frames.filter((f) => f.message_type === "ack" && f.original_message_id === cmd.message_id)).toHaveLength(2);
    expect(executionCounts(stateDir).get(cmd.message_id)).toBe(1);
  });

  test("expired and misaddressed commands are rejected on arrival", async () => {
    const { relay, events } = await setup();
    const conn = await relay.connection(1);
    await events.waitFor("welcome");
    const expired = relay.command({ command_type: "system_info", parameters: {}, expires_at: new Date(Date.now() - 1).toISOString() });
    const other = relay.command({ command_type: "system_info", parameters: {}, target_host: crypto.randomUUID() });
    conn.sendFrame(expired);
    conn.sendFrame(other);
    const r1 = await conn.waitForFrame((f) => f.message_type === "response" && f.original_message_id === expired.message_id);
    const r2 = await conn.waitForFrame((f) => f.message_type === "response" && f.original_message_id === other.message_id);
    expect(r1).toMatchObject({ status: "rejected", result: { reason: "expired before delivery" } });
    expect(r2).toMatchObject({ status: "rejected" });
  });

  test("resends the outbox in order after reconnecting, until the relay acks it", async () => {
    const { relay, events } = await setup({ agent: { allowShell: true }, beforeStart: (r) => (r.defaults.autoAck = false) });
    const conn1 = await relay.connection(1);
    await events.waitFor("welcome");
    const cmd = relay.command({ command_type: "shell", parameters: { script: "echo first" } });
    conn1.sendFrame(cmd);
    await conn1.waitForFrame((f) => f.message_type === "response");
    const sent1 = conn1.frames.filter((f) => f.message_type === "status" || f.message_type === "response");
    expect(sent1.map((f) => f.state ?? f.message_type)).toEqual(["running", "progress", "response"]);
    conn1.ws.terminate();

    const conn2 = await relay.connection(2);
    await conn2.until(() => conn2.frames.length >= 4, 5000, "hello + 3 resent frames");
    expect(conn2.frames[0]!.message_type).toBe("hello");
    expect(conn2.frames.slice(1)).toEqual(sent1);
    expect((await events.waitFor("welcome", () => true, 5000, 2)).resent).toBe(3);

    for (const f of sent1) conn2.ack(f.message_id);
    await events.waitFor("outbox_acked", (e) => e.remaining === 0);
    conn2.ws.terminate();
    await relay.connection(3);
    expect((await events.waitFor("welcome", () => true, 5000, 3)).resent).toBe(0);
  });

  test("reconnects with capped exponential backoff and full jitter; a stable connection resets it", async () => {
    const { relay, events } = await setup({
      agent: { reconnectBaseMs: 100, reconnectCapMs: 400, stableAfterMs: 300, heartbeatIntervalMs: 100 },
      beforeStart: (r) => {
        r.onConnection = (c) => {
          if (r.connections.length <= 4) c.ws.terminate();
        };
      },
    });
    const fifth = await relay.connection(5);
    await events.waitFor("welcome");
    // Held up past the stable threshold (≥ 4 heartbeats of 100 ms), then dropped.
    await fifth.until(() => fifth.pings >= 4, 5000, "4 pings");
    fifth.ws.terminate();
    await relay.connection(6);
    // random() = 0.5: half of min(cap, base·2ⁿ); reset to the base after the stable connection.
    expect(events.all("reconnect_scheduled").map((e) => e.delay_ms)).toEqual([50, 100, 200, 200, 50]);
  });

  test("a missing pong drops the connection and reconnects", async () => {
    const { relay, events } = await setup({
      agent: { heartbeatIntervalMs: 100 },
      beforeStart: (r) => {
        r.onConnection = (c) => {
          if (r.connections.length === 1) c.answerPings = false;
        };
      },
    });
    const conn1 = await relay.connection(1);
    const dropped = await events.waitFor("disconnected");
    expect(dropped.error).toMatch(/no pong within 100 ms/);
    expect(conn1.pings).toBe(1);
    await relay.connection(2);
    await events.waitFor("welcome", () => true, 5000, 2);
  });

  test("4001 (replaced) backs off and reconnects", async () => {
    const { relay, events, agent } = await setup();
    const conn1 = await relay.connection(1);
    await events.waitFor("welcome");
    conn1.close(4001, "replaced by a newer connection");
    await relay.connection(2);
    expect((await events.waitFor("disconnected")).code).toBe(4001);
    expect(events.all("reconnect_scheduled")).toHaveLength(1);
    expect(events.all("stopped")).toHaveLength(0);
    void agent;
  });

  test("4003 (revoked) stops the agent for good with exit code 3", async () => {
    const { relay, events, agent } = await setup();
    const conn1 = await relay.connection(1);
    await events.waitFor("welcome");
    conn1.close(4003, "certificate revoked");
    expect(await agent.done).toEqual({ exitCode: 3, reason: "revoked: certificate revoked" });
    expect(events.all("revoked")).toHaveLength(1);
    expect(events.all("reconnect_scheduled")).toHaveLength(0);
    expect(relay.connections).toHaveLength(1);
  });

  test("an upgrade refused as revoked (403 ERR_AGENT_REVOKED) also stops with exit code 3", async () => {
    const { agent, relay } = await setup({
      beforeStart: (r) => (r.refuseUpgrade = { status: 403, code: "ERR_AGENT_REVOKED", detail: "host revoked at 2026-01-01T00:00:00Z" }),
    });
    const exit = await agent.done;
    expect(exit.exitCode).toBe(3);
    expect(exit.reason).toMatch(/ERR_AGENT_REVOKED/);
    expect(relay.connections).toHaveLength(0);
  });

  test("a relay certificate from another CA is refused; the agent keeps retrying", async () => {
    const other = await createTestPki();
    cleanups.push(() => rm(other.dir, { recursive: true, force: true }));
    const { relay, events } = await setup({ agent: { caFile: other.caFile } });
    const first = await events.waitFor("disconnected");
    expect(first.error).toMatch(/certificate/i);
    await events.waitFor("disconnected", () => true, 5000, 2);
    expect(relay.connections).toHaveLength(0);
  });

  test("stop: the running command gets the grace, is killed, answered 'agent stopped', then the socket closes with 1000", async () => {
    const { relay, events, agent } = await setup({ agent: { allowShell: true, shutdownGraceMs: 200, killGraceMs: 500 } });
    const conn = await relay.connection(1);
    await events.waitFor("welcome");
    const cmd = relay.command({ command_type: "shell", parameters: { script: "sleep 30" } });
    conn.sendFrame(cmd);
    await conn.waitForFrame((f) => f.state === "running");
    const exit = await agent.stop("test");
    expect(exit).toEqual({ exitCode: 0, reason: "test" });
    expect((await conn.closed).code).toBe(1000);
    expect(conn.frames.at(-1)).toMatchObject({ message_type: "response", status: "failure", result: { reason: "agent stopped" } });
  });

  test("renews a certificate with less than a third of its lifetime left and reconnects with the new one", async () => {
    // 0.001 days ≈ 86 s left of ≈ 386 s (the CA backdates 5 min): renewal is due.
    const { relay, events, stateDir, fingerprint } = await setup({ certDays: 0.001 });
    const renewed = await events.waitFor("renewed");
    expect(Date.parse(renewed.not_after)).toBeGreaterThan(Date.now() + 80 * 86_400_000);
    expect(relay.renewals).toHaveLength(1);
    const newFingerprint = relay.renewals[0];
    expect(newFingerprint).not.toBe(fingerprint);
    const [cert, key] = await Promise.all([
      readFile(path.join(stateDir, "agent.crt"), "utf8"),
      readFile(path.join(stateDir, "agent.key"), "utf8"),
    ]);
    expect(certificateMatchesKey(cert, key)).toBe(true);
    // The next connection presents the new certificate.
    let n = 1;
    for (;;) {
      const conn = await relay.connection(n++, 5000);
      if (conn.clientFingerprint === newFingerprint) break;
      expect(conn.clientFingerprint).toBe(fingerprint);
    }
  });

  test("a renewal answered 503/502 is retried with backoff until it succeeds", async () => {
    const { relay, events } = await setup({
      certDays: 0.001,
      agent: { renewRetryBaseMs: 40, renewRetryCapMs: 100 },
      beforeStart: (r) =>
        r.renewRefusals.push(
          { status: 503, code: "ERR_RELAY_UNAVAILABLE" },
          { status: 503, code: "ERR_RELAY_UNAVAILABLE" },
          { status: 502, code: "ERR_UPSTREAM" },
        ),
    });
    await events.waitFor("renewed");
    // random() = 0.5: half of min(cap, base·2ⁿ).
    expect(events.all("renewal_failed")).toEqual([
      { error: expect.stringMatching(/HTTP 503 ERR_RELAY_UNAVAILABLE/), transient: true, retry_in_ms: 20 },
      { error: expect.stringMatching(/HTTP 503/), transient: true, retry_in_ms: 40 },
      { error: expect.stringMatching(/HTTP 502 ERR_UPSTREAM/), transient: true, retry_in_ms: 50 },
    ]);
    expect(relay.renewAttempts).toBe(4);
    expect(relay.renewals).toHaveLength(1);
  });

  test("a renewal refused with 403 is not retried before the next check", async () => {
    const { relay, events, agent } = await setup({
      certDays: 0.001,
      agent: { renewRetryBaseMs: 10, renewRetryCapMs: 20 },
      beforeStart: (r) => r.renewRefusals.push({ status: 403, code: "ERR_AGENT_REVOKED" }),
    });
    const failed = await events.waitFor("renewal_failed");
    expect(failed).toMatchObject({ transient: false, retry_in_ms: null });
    // A check on demand is what retries it (the periodic one is 12 h away).
    await relay.connection(1);
    expect(await agent.checkRenewal()).toBe(true);
    expect(relay.renewAttempts).toBe(2);
  });
});
