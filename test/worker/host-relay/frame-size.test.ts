import { describe, expect, it } from "vitest";
import { FrameErrorCode, Limits, nowRfc3339 } from "../../../schemas/index.ts";
import { parseFrame } from "../../../worker/host-relay/agent-frames.ts";
import { getCommand, relayStub } from "../helpers.ts";
import { connectedHost, enqueue } from "./relay-helpers.ts";

/** An ack whose padding is `chars` three-byte characters: well under the limit in `length`, over it in bytes. */
function paddedAck(originalId: string, chars: number): string {
  return JSON.stringify({
    message_id: crypto.randomUUID(),
    timestamp: nowRfc3339(),
    message_type: "ack",
    original_message_id: originalId,
    pad: "€".repeat(chars),
  });
}

describe("frame size is counted in UTF-8 bytes", () => {
  it("a 2.1 MB frame of 700k three-byte characters is refused as too large over the wire, and not acted on", async () => {
    const { host_id, agent } = await connectedHost();
    const id = await enqueue(host_id);
    await agent.command(id, 1);

    const raw = paddedAck(id, 700_000);
    expect(raw.length).toBeLessThan(Limits.MAX_FRAME_BYTES);
    expect(new TextEncoder().encode(raw).length).toBeGreaterThan(2 * Limits.MAX_FRAME_BYTES);
    const error = agent.nextNew((f) => f.message_type === "error");
    agent.send(raw);
    expect((await error).code).toBe(FrameErrorCode.TOO_LARGE);

    // The ack inside it did not count; the socket is still usable.
    expect((await getCommand(host_id, id)).state).toBe("queued");
    expect((await relayStub(host_id).frameErrors()).map((e) => e.code)).toEqual([FrameErrorCode.TOO_LARGE]);
    expect(agent.closed).toBeNull();
  });

  it("parseFrame: exactly the limit in bytes passes the size check; one byte more does not", () => {
    const id = crypto.randomUUID();
    const base = paddedAck(id, 0);
    const baseBytes = new TextEncoder().encode(base).length;
    // Fill up to the limit with "€" (3 bytes) and ASCII for the remainder.
    const room = Limits.MAX_FRAME_BYTES - baseBytes;
    const pad = "€".repeat(Math.floor(room / 3)) + "a".repeat(room % 3);
    const atLimit = base.replace(`"pad":""`, `"pad":"${pad}"`);
    expect(new TextEncoder().encode(atLimit).length).toBe(Limits.MAX_FRAME_BYTES);

    const ok = parseFrame(atLimit);
    expect(ok.ok).toBe(true);
    const over = parseFrame(atLimit.replace(`"pad":"`, `"pad":"a`));
    expect(over).toMatchObject({ ok: false, code: FrameErrorCode.TOO_LARGE });
  });
});

describe("frames are strict JSON", () => {
  it("an ack with a repeated original_message_id is refused as malformed, not read last-wins", async () => {
    const { host_id, agent } = await connectedHost();
    const id = await enqueue(host_id);
    await agent.command(id, 1);

    const raw = `{"message_id":"${crypto.randomUUID()}","timestamp":"${nowRfc3339()}","message_type":"ack","original_message_id":"${crypto.randomUUID()}","original_message_id":"${id}"}`;
    const error = agent.nextNew((f) => f.message_type === "error");
    agent.send(raw);
    const frame = await error;
    expect(frame.code).toBe(FrameErrorCode.MALFORMED_JSON);
    expect(frame.detail).toContain("original_message_id");
    expect((await getCommand(host_id, id)).state).toBe("queued");
    expect(agent.closed).toBeNull();
  });
});
