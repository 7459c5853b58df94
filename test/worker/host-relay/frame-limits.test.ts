import { describe, expect, it } from "vitest";
import { CloseCode, FrameErrorCode } from "../../../schemas/index.ts";
import { helloFrame, registerHost, relayStub, TestAgent } from "../helpers.ts";
import { barrier, sql } from "./relay-helpers.ts";

describe("one agent cannot flood its relay", () => {
  it("a second hello on a connection is refused with an error frame, and writes nothing", async () => {
    const host = await registerHost();
    const agent = await TestAgent.connect(host.fingerprint);
    const outboxBefore = (await sql(host.host_id, "SELECT COUNT(*) AS n FROM outbox"))[0]!.n as number;
    for (let i = 0; i < 20; i++) agent.send(helloFrame());
    await barrier(agent);
    const errors = agent.frames.filter((f) => f.message_type === "error" && f.code === FrameErrorCode.HELLO_REPEATED);
    expect(errors).toHaveLength(20);
    expect(agent.frames.filter((f) => f.message_type === "welcome")).toHaveLength(1);
    // No extra host.online events were queued for the repeated hellos.
    const online = await sql(host.host_id, "SELECT COUNT(*) AS n FROM outbox WHERE body LIKE '%host.online%'");
    expect(online[0]!.n).toBeLessThanOrEqual(outboxBefore);
    expect(agent.closed).toBeNull();
  });

  it("past its frame budget a connection gets one ERR_FRAME_RATE_LIMITED, then is closed with RATE_LIMITED", async () => {
    const host = await registerHost();
    const agent = await TestAgent.connect(host.fingerprint);
    // Far more than the test burst (300, vitest.config.ts) plus the grace past it, sent at once.
    for (let i = 0; i < 1_500; i++) agent.send("{not json");
    const closed = await agent.waitClose(10_000);
    expect(closed.code).toBe(CloseCode.RATE_LIMITED);
    const limited = agent.frames.filter((f) => f?.message_type === "error" && f.code === FrameErrorCode.RATE_LIMITED);
    expect(limited).toHaveLength(1);
    // The refused frames were not each recorded as frame errors (bounded at 100 anyway) or answered.
    const answered = agent.frames.filter((f) => f?.message_type === "error" && f.code === FrameErrorCode.MALFORMED_JSON);
    expect(answered.length).toBeLessThan(1_500 / 2);
    expect((await relayStub(host.host_id).stats()).connected).toBe(false);
  }, 20_000);
});
