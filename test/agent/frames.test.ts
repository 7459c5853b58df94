import { randomUUID } from "node:crypto";
import { describe, expect, it } from "vitest";
import { FrameErrorCode, Limits, nowRfc3339 } from "../../schemas/index.ts";
import { parseRelayFrame } from "../../agent/frames.ts";

describe("the agent's relay-frame parsing", () => {
  it("refuses a frame over the byte limit made of multi-byte characters (length under the limit)", () => {
    const raw = JSON.stringify({
      message_id: randomUUID(),
      timestamp: nowRfc3339(),
      message_type: "ack",
      original_message_id: randomUUID(),
      pad: "€".repeat(700_000),
    });
    expect(raw.length).toBeLessThan(Limits.MAX_FRAME_BYTES);
    expect(parseRelayFrame(raw)).toMatchObject({ ok: false, code: FrameErrorCode.TOO_LARGE });
  });
});
