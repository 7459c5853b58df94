import { runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { EventStreamCloseCode, MAX_EVENT_OUTPUT_CHARS } from "../../../schemas/index.ts";
import type { EventsContext } from "../../../worker/fleet-events/context.ts";
import { DEFAULT_SUBSCRIBER_MAX_UNACKED_BYTES, type SubscriberAttachment } from "../../../worker/fleet-events/context.ts";
import { waitFor } from "../helpers.ts";
import { EventStream, fleetStub, hostEvent, publish, requestStream } from "./stream-client.ts";

const BUDGET = DEFAULT_SUBSCRIBER_MAX_UNACKED_BYTES;
const uuid = () => crypto.randomUUID();
/** A command.output event of about 64 KiB. */
const bigEvent = (host: string) =>
  hostEvent(host, "command.output", { message_id: uuid(), output: "z".repeat(MAX_EVENT_OUTPUT_CHARS), seq: 0 });
/** Enough ~64 KiB events to go past the budget by a few. */
const OVER_BUDGET = Math.ceil(BUDGET / MAX_EVENT_OUTPUT_CHARS) + 8;

async function publishAll(events: ReturnType<typeof bigEvent>[]): Promise<void> {
  for (let i = 0; i < events.length; i += 16) await publish(...events.slice(i, i + 16));
}

/** Bytes the object counts as sent to each subscriber and not acknowledged. */
function unacked(): Promise<number[]> {
  return runInDurableObject(fleetStub(), (instance, state) => {
    const ec = (instance as unknown as { ec: EventsContext }).ec;
    return state.getWebSockets("subscriber").map((ws) => ec.budget.unacked((ws.deserializeAttachment() as SubscriberAttachment).id));
  });
}

describe("a subscriber that never reads is bounded", () => {
  it("is sent at most the budget, then closed with TOO_FAR_BEHIND; resuming from its offset misses nothing", async () => {
    const host = uuid();
    // Upgraded but not read: everything sent to it stays queued until it is accepted below.
    const stalled = await requestStream(`hosts=${host}`);
    expect(stalled.status).toBe(101);
    const events = Array.from({ length: OVER_BUDGET }, () => bigEvent(host));
    await publishAll(events);

    const ws = stalled.webSocket!;
    const stream = new EventStream(ws, stalled);
    ws.accept();
    const closed = await stream.waitClose();
    expect(closed.code).toBe(EventStreamCloseCode.TOO_FAR_BEHIND);
    const got = stream.events();
    const bytes = stream.frames.reduce((n, f) => n + new TextEncoder().encode(JSON.stringify(f)).length, 0);
    expect(bytes).toBeLessThanOrEqual(BUDGET);
    expect(got.length).toBeGreaterThan(0);
    expect(got.length).toBeLessThan(events.length);
    // What it got is a prefix, in order.
    expect(got.map((f) => f.message_id)).toEqual(events.slice(0, got.length).map((e) => e.message_id));

    const last = got.at(-1);
    const resumed = await EventStream.open(`hosts=${host}&after=${last.offset}&epoch=${last.epoch}`);
    expect(resumed.control().type).toBe("ready");
    expect(resumed.events().map((f) => f.message_id)).toEqual(events.slice(got.length).map((e) => e.message_id));
    resumed.close();
  });

  it("a subscriber that acknowledges what it reads is never closed, however much it is sent", async () => {
    const host = uuid();
    const reader = await EventStream.open(`hosts=${host}`);
    const events = Array.from({ length: OVER_BUDGET * 2 }, () => bigEvent(host));
    for (let i = 0; i < events.length; i += 16) {
      const batch = events.slice(i, i + 16);
      await publish(...batch);
      const lastEvent = await reader.next((f) => f.message_id === batch.at(-1)!.message_id);
      reader.ws.send(JSON.stringify({ type: "ack", offset: lastEvent.offset }));
      await waitFor(unacked, (v) => v.length === 1 && v[0] === 0);
    }
    expect(reader.closed).toBeNull();
    expect(reader.events().map((f) => f.message_id)).toEqual(events.map((e) => e.message_id));
    reader.close();
  });
});
