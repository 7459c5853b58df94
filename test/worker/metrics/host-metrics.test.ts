/**
 * A HostRelay's metrics, end to end inside workerd: real commands through a test agent move the
 * fleet's counters once, the metrics row leaves with the event publish (inside its window), a
 * publish retried after FleetEvents applied it is not counted twice, and a row with no event to ride
 * on goes alone once its window closes.
 */
import { runInDurableObject } from "cloudflare:test";
import { exports } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { INTERNAL_HOST_HEADER } from "../../../worker/host-relay/contract.ts";
import type { HostRelay } from "../../../worker/host-relay/host-relay.ts";
import { METRICS_WINDOW_MS } from "../../../worker/host-relay/metrics-outbox.ts";
import { M } from "../../../worker/metrics/catalogue.ts";
import { api, connectRequest, registerHost, relayStub, TestAgent, tlsClientAuth, uniqueFingerprint } from "../helpers.ts";
import {
  advanceClock,
  connectedHost,
  enqueue,
  retryNow,
  runAlarm,
  sendAndAwaitAck,
  sql,
  statusFrame,
} from "../host-relay/relay-helpers.ts";
import { counterOf, drained, faultConsumed, gaugeOf, histogramCount, scrape, snapshot, waitForSnapshot } from "./metrics-helpers.ts";

const SYSTEM_INFO = { command_type: "system_info" };

describe("a command's life in the fleet's metrics", () => {
  it("moves enqueued, finished, state entries and both latencies exactly once, with no per-host label", async () => {
    const host = await connectedHost();
    await drained(host.host_id);
    const before = await snapshot();

    const id = await enqueue(host.host_id);
    await host.agent.command(id, 1);
    host.agent.ack(id);
    await sendAndAwaitAck(host.agent, statusFrame(id, "running"));
    host.agent.respond(id);
    await drained(host.host_id);
    const after = await waitForSnapshot(
      (s) =>
        counterOf(s, M.COMMANDS_FINISHED, { ...SYSTEM_INFO, state: "succeeded" }) >
        counterOf(before, M.COMMANDS_FINISHED, { ...SYSTEM_INFO, state: "succeeded" }),
    );

    const moved = (name: string, labels?: Record<string, string>) => counterOf(after, name, labels) - counterOf(before, name, labels);
    expect(moved(M.COMMANDS_ENQUEUED, SYSTEM_INFO)).toBe(1);
    expect(moved(M.COMMANDS_FINISHED, { ...SYSTEM_INFO, state: "succeeded" })).toBe(1);
    for (const state of ["queued", "delivered", "running", "succeeded"]) expect(moved(M.COMMAND_STATE_ENTRIES, { state }), state).toBe(1);
    expect(histogramCount(after, M.SEND_TO_ACK) - histogramCount(before, M.SEND_TO_ACK)).toBe(1);
    expect(histogramCount(after, M.ACCEPTED_TO_FINAL) - histogramCount(before, M.ACCEPTED_TO_FINAL)).toBe(1);
    // The host's gauges: its agent is online, and nothing is left in its queue.
    expect(gaugeOf(after, M.AGENTS_CONNECTED)).toBeGreaterThanOrEqual(1);
    expect(gaugeOf(after, M.QUEUE_DEPTH, { state: "running" })).toBe(0);

    const text = await scrape();
    expect(text).not.toContain(host.host_id);
    expect(text).toMatch(/^fleet_relay_commands_finished_total\{command_type="system_info",state="succeeded"\} [1-9]/m);
  }, 20_000);

  it("the metrics row leaves with the event publish, well inside its window", async () => {
    const host = await registerHost();
    const before = counterOf(await snapshot(), M.COMMANDS_ENQUEUED, SYSTEM_INFO);
    await enqueue(host.host_id);
    // Alone, the row would wait METRICS_WINDOW_MS; it went with the queued event's publish instead.
    const took = await drained(host.host_id, METRICS_WINDOW_MS - 1000);
    expect(took).toBeLessThan(METRICS_WINDOW_MS);
    expect(counterOf(await snapshot(), M.COMMANDS_ENQUEUED, SYSTEM_INFO)).toBe(before + 1);
  });

  it("a publish retried after FleetEvents applied it (the answer was lost) is counted once", async () => {
    const host = await registerHost();
    await enqueue(host.host_id);
    await drained(host.host_id);
    const before = await snapshot();
    await runInDurableObject(relayStub(host.host_id), (instance: HostRelay) => instance.faults.arm("relay.after_publish", 1));

    await enqueue(host.host_id);
    await drained(host.host_id);
    expect(await faultConsumed(host.host_id, "relay.after_publish"), "the answer was lost once").toBe(true);
    // A marker that travels after the retry: once it is counted, the retry has been handled too.
    await enqueue(host.host_id);
    await drained(host.host_id);
    const after = await snapshot();
    expect(counterOf(after, M.COMMANDS_ENQUEUED, SYSTEM_INFO) - counterOf(before, M.COMMANDS_ENQUEUED, SYSTEM_INFO)).toBe(2);
    expect(
      counterOf(after, M.COMMAND_STATE_ENTRIES, { state: "queued" }) - counterOf(before, M.COMMAND_STATE_ENTRIES, { state: "queued" }),
    ).toBe(2);
  }, 20_000);

  it("a resend (no event to ride on) goes alone when its window closes", async () => {
    const host = await connectedHost();
    const id = await enqueue(host.host_id);
    await host.agent.command(id, 1);
    await drained(host.host_id);
    const before = counterOf(await snapshot(), M.RESENDS);

    await retryNow(host.host_id, id);
    await host.agent.command(id, 2);
    const rows = await sql(host.host_id, "SELECT id, kind FROM outbox");
    expect(rows.map((r) => r.kind)).toEqual(["metrics"]);
    expect(counterOf(await snapshot(), M.RESENDS)).toBe(before);

    await advanceClock(host.host_id, METRICS_WINDOW_MS + 1);
    await runAlarm(host.host_id);
    // That alarm may resend again (the agent never acks), opening a new row: wait for this one only.
    const deadline = Date.now() + 10_000;
    while ((await sql(host.host_id, "SELECT id FROM outbox WHERE id = ?", rows[0]!.id)).length > 0) {
      if (Date.now() > deadline) throw new Error("the metrics row was not sent");
      await new Promise((r) => setTimeout(r, 10));
    }
    expect(counterOf(await snapshot(), M.RESENDS)).toBe(before + 1);
  }, 20_000);
});

describe("connections", () => {
  it("counts accepted connections and disconnects by close code", async () => {
    const before = await snapshot();
    const host = await registerHost();
    const agent = await TestAgent.connect(host.fingerprint);
    agent.ws.close(4321, "test close");
    await waitForSnapshot((s) => counterOf(s, M.DISCONNECTS, { code: "4321" }) > counterOf(before, M.DISCONNECTS, { code: "4321" }));
    const after = await snapshot();
    expect(counterOf(after, M.CONNECTIONS_ACCEPTED) - counterOf(before, M.CONNECTIONS_ACCEPTED)).toBe(1);
    expect(counterOf(after, M.DISCONNECTS, { code: "4321" }) - counterOf(before, M.DISCONNECTS, { code: "4321" })).toBe(1);
  });

  it("counts refusals at the Worker route by error code", async () => {
    const unknownBefore = await scrape();
    const res = await exports.default.fetch(connectRequest(tlsClientAuth(uniqueFingerprint())));
    expect(res.status).toBe(403);
    const noCert = await exports.default.fetch(connectRequest(null));
    expect(noCert.status).toBe(401);
    const count = (text: string, reason: string) =>
      Number(new RegExp(`^fleet_relay_agent_connections_refused_total\\{reason="${reason}"\\} (\\d+)`, "m").exec(text)?.[1] ?? 0);
    const after = await scrape();
    expect(count(after, "ERR_AGENT_UNKNOWN") - count(unknownBefore, "ERR_AGENT_UNKNOWN")).toBe(1);
    expect(count(after, "ERR_AGENT_CERT_MISSING") - count(unknownBefore, "ERR_AGENT_CERT_MISSING")).toBe(1);
  });

  it("counts a refusal at the host relay (revoked) by error code", async () => {
    const host = await registerHost();
    expect((await api(`/api/hosts/${host.host_id}/revoke`, { role: "admin", method: "POST" })).status).toBe(200);
    await drained(host.host_id);
    const before = counterOf(await snapshot(), M.CONNECTIONS_REFUSED, { reason: "ERR_AGENT_REVOKED" });
    // Straight to the object, as a connection racing the revocation past the Worker's check would arrive.
    const res = await relayStub(host.host_id).fetch(
      new Request("https://host-relay.internal/connect", { headers: { upgrade: "websocket", [INTERNAL_HOST_HEADER]: host.host_id } }),
    );
    expect(res.status).toBe(403);
    await advanceClock(host.host_id, METRICS_WINDOW_MS + 1);
    await runAlarm(host.host_id);
    await drained(host.host_id);
    expect(counterOf(await snapshot(), M.CONNECTIONS_REFUSED, { reason: "ERR_AGENT_REVOKED" })).toBe(before + 1);
  });
});
