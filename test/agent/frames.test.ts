import { randomUUID } from "node:crypto";
import { describe, expect, it } from "vitest";
import { parseRelayFrame } from "../../agent/frames.ts";
import { FrameErrorCode, Limits, nowRfc3339 } from "../../schemas/index.ts";

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

describe("the agent refuses relay frames with duplicate keys", () => {
  it("a command whose command_type repeats is malformed, not the last one", () => {
    const raw = `{"message_id":"${randomUUID()}","timestamp":"${nowRfc3339()}","message_type":"command","target_host":"${randomUUID()}","expires_at":"${nowRfc3339(Date.now() + 60_000)}","command_type":"system_info","parameters":{},"command_type":"shell","parameters":{"script":"id"}}`;
    expect(JSON.parse(raw).command_type).toBe("shell");
    const parsed = parseRelayFrame(raw);
    expect(parsed).toMatchObject({ ok: false, code: FrameErrorCode.MALFORMED_JSON });
  });
});
