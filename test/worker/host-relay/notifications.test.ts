import { runInDurableObject } from "cloudflare:test";
import { afterEach, describe, expect, it } from "vitest";
import type { HostRelay } from "../../../worker/host-relay/host-relay.ts";
import { OUTPUT_COALESCE_MS } from "../../../worker/host-relay/notify.ts";
import type { FaultName } from "../../../worker/test-faults.ts";
import { EventStream } from "../fleet-events/stream-client.ts";
import { registerHost, relayStub, TestAgent } from "../helpers.ts";
import { enqueue, responseFrame, sendAndAwaitAck, sql, statusFrame } from "./relay-helpers.ts";

const open: EventStream[] = [];
afterEach(() => {
  for (const s of open.splice(0)) if (!s.closed) s.close();
});

async function watch(hostId: string): Promise<EventStream> {
  const s = await EventStream.open(`hosts=${hostId}&types=command.state,command.output`);
  open.push(s);
  return s;
}

function arm(hostId: string, point: FaultName, times = 1): Promise<void> {
  return runInDurableObject(relayStub(hostId), (instance: HostRelay) => instance.faults.arm(point, times));
}

describe("the outbox: first in, first out per target, each event once", () => {
  it("a failed publish holds back later events: a subscriber sees every state once, in order", async () => {
    const host = await registerHost();
    const agent = await TestAgent.connect(host.fingerprint);
    const stream = await watch(host.host_id);
    await arm(host.host_id, "relay.publish", 1);

    const id = await enqueue(host.host_id);
    await agent.command(id, 1);
    agent.ack(id);
    await sendAndAwaitAck(agent, statusFrame(id, "running"));
    await sendAndAwaitAck(agent, responseFrame(id, "success"));

    await stream.next((f) => f.message_id === id && f.state === "succeeded", 10_000);
    const seen = stream.events((f) => f.message_id === id && f.type === "command.state").map((f) => f.state);
    expect(seen).toEqual(["queued", "delivered", "running", "succeeded"]);
    // The failed row was retried and everything after it went too. Other rows of the same steps (the
    // audit records, a coalesced metrics row inside its window) may still be on their way: wait, bounded.
    await waitForEmptyOutbox(host.host_id);
    expect(await runInDurableObject(relayStub(host.host_id), (instance: HostRelay) => instance.faults.armed("relay.publish"))).toBe(0);
  }, 20_000);
});

describe("publishing is idempotent", () => {
  it("a publish retried after FleetEvents stored it (the answer was lost) is not stored twice", async () => {
    const host = await registerHost();
    const stream = await watch(host.host_id);
    await arm(host.host_id, "relay.after_publish", 1);
    const id = await enqueue(host.host_id);
    await stream.next((f) => f.message_id === id && f.state === "queued");
    // The retry happened (the outbox drained), and the subscriber still saw the event once.
    await waitForEmptyOutbox(host.host_id);
    const marker = await enqueue(host.host_id);
    await stream.next((f) => f.message_id === marker && f.state === "queued");
    expect(stream.events((f) => f.message_id === id).map((f) => f.state)).toEqual(["queued"]);
  }, 20_000);
});

async function waitForEmptyOutbox(hostId: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (((await sql(hostId, "SELECT COUNT(*) AS n FROM outbox"))[0]!.n as number) > 0) {
    if (Date.now() > deadline) throw new Error("outbox not drained");
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe("streamed output", () => {
  it(`chunks of one command within ${OUTPUT_COALESCE_MS} ms become one event carrying them joined`, async () => {
    const host = await registerHost();
    const agent = await TestAgent.connect(host.fingerprint);
    const stream = await watch(host.host_id);
    const id = await enqueue(host.host_id);
    await agent.command(id, 1);
    agent.ack(id);
    await sendAndAwaitAck(agent, statusFrame(id, "running"));
    const chunks = Array.from({ length: 50 }, (_, i) => `line ${i}\n`);
    for (const [i, chunk] of chunks.entries()) agent.send(statusFrame(id, "progress", chunk, i));
    await sendAndAwaitAck(agent, responseFrame(id, "success"));
    await stream.next((f) => f.message_id === id && f.state === "succeeded", 10_000);

    const outputs = stream.events((f) => f.message_id === id && f.type === "command.output");
    expect(outputs.map((f) => f.output).join("")).toBe(chunks.join(""));
    // 50 frames sent back to back land in far fewer events (how many depends on the machine's speed).
    expect(outputs.length).toBeLessThan(chunks.length / 2);
    expect(outputs[0].seq).toBe(0);
  }, 20_000);
});
