import { describe, expect, it } from "vitest";
import { decodeFrame, exceedsUtf8Bytes, FrameErrorCode, Limits, utf8ByteLength } from "../../schemas/index.ts";

const encoder = new TextEncoder();

describe("utf8ByteLength / exceedsUtf8Bytes", () => {
  it.each(["", "ascii", "é", "€", "😀", "a😀b€é", "\ud800 lone high", "lone low \udc00", "\ud83d"])(
    "%j counts as TextEncoder writes it",
    (s) => {
      const bytes = encoder.encode(s).length;
      expect(utf8ByteLength(s)).toBe(bytes);
      expect(exceedsUtf8Bytes(s, bytes)).toBe(false);
      if (bytes > 0) expect(exceedsUtf8Bytes(s, bytes - 1)).toBe(true);
    },
  );

  it("counts multi-byte text in bytes, not code units", () => {
    const s = "€".repeat(1000); // 1000 code units, 3000 bytes
    expect(exceedsUtf8Bytes(s, 2999)).toBe(true);
    expect(exceedsUtf8Bytes(s, 3000)).toBe(false);
    expect(exceedsUtf8Bytes("😀".repeat(10), 39)).toBe(true); // 20 code units, 40 bytes
  });
});

describe("decodeFrame", () => {
  it("refuses a frame over MAX_FRAME_BYTES of UTF-8 before parsing it, even if its length is under", () => {
    const raw = JSON.stringify({ pad: "€".repeat(Math.ceil(Limits.MAX_FRAME_BYTES / 3)) });
    expect(raw.length).toBeLessThan(Limits.MAX_FRAME_BYTES);
    expect(decodeFrame(raw)).toMatchObject({ ok: false, code: FrameErrorCode.TOO_LARGE });
  });

  it("parses a frame within the limit, and names malformed JSON", () => {
    expect(decodeFrame('{"a":"€"}')).toEqual({ ok: true, json: { a: "€" } });
    expect(decodeFrame("{nope")).toMatchObject({ ok: false, code: FrameErrorCode.MALFORMED_JSON });
  });
});
