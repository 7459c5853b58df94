import { Limits } from "./constants.ts";
import { FrameErrorCode } from "./messages.ts";
import { parseStrictJson } from "./strict-json.ts";
import { exceedsUtf8Bytes } from "./utf8.ts";

export type DecodedFrame =
  | { ok: true; json: unknown }
  | { ok: false; code: (typeof FrameErrorCode)["TOO_LARGE" | "MALFORMED_JSON"]; detail: string };

/**
 * The rule both ends apply to a text frame before any schema sees it: at most
 * `Limits.MAX_FRAME_BYTES` bytes of UTF-8 (checked before parsing), then strict JSON (no duplicate
 * keys, bounded depth: `strict-json.ts`). Never throws.
 */
export function decodeFrame(raw: string): DecodedFrame {
  if (exceedsUtf8Bytes(raw, Limits.MAX_FRAME_BYTES)) {
    return { ok: false, code: FrameErrorCode.TOO_LARGE, detail: `frame exceeds ${Limits.MAX_FRAME_BYTES} bytes of UTF-8` };
  }
  const parsed = parseStrictJson(raw);
  if (parsed.ok) return { ok: true, json: parsed.value };
  return {
    ok: false,
    code: FrameErrorCode.MALFORMED_JSON,
    detail: parsed.reason === "syntax" ? `not JSON: ${parsed.detail}` : parsed.detail,
  };
}
