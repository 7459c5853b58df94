import { Limits } from "./constants.ts";
import { FrameErrorCode } from "./messages.ts";
import { exceedsUtf8Bytes } from "./utf8.ts";

export type DecodedFrame =
  | { ok: true; json: unknown }
  | { ok: false; code: (typeof FrameErrorCode)["TOO_LARGE" | "MALFORMED_JSON"]; detail: string };

/**
 * The rule both ends apply to a text frame before any schema sees it: at most
 * `Limits.MAX_FRAME_BYTES` bytes of UTF-8 (checked before parsing), then JSON. Never throws.
 */
export function decodeFrame(raw: string): DecodedFrame {
  if (exceedsUtf8Bytes(raw, Limits.MAX_FRAME_BYTES)) {
    return { ok: false, code: FrameErrorCode.TOO_LARGE, detail: `frame exceeds ${Limits.MAX_FRAME_BYTES} bytes of UTF-8` };
  }
  try {
    return { ok: true, json: JSON.parse(raw) };
  } catch (err) {
    return { ok: false, code: FrameErrorCode.MALFORMED_JSON, detail: `not JSON: ${(err as Error).message}` };
  }
}
