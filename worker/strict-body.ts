import type { MiddlewareHandler } from "hono";
import { parseStrictJson } from "../schemas/index.ts";
import { ErrorCode, RelayError } from "./errors.ts";
import { isJsonContentType } from "./media-type.ts";

/**
 * Reads a JSON request body once, strictly, before any route validates it: a duplicate key at any
 * depth is `400 ERR_DUPLICATE_KEY` naming its path (never last-wins), nesting past the depth limit
 * or bad syntax `400 ERR_MALFORMED_JSON`. The body stays cached on the request for the validator.
 * Runs after the body-size limit, so at most that much is read.
 */
export const strictJsonBodies: MiddlewareHandler = async (c, next) => {
  if (["POST", "PUT", "PATCH"].includes(c.req.method) && isJsonContentType(c.req.header("content-type") ?? "")) {
    const text = await c.req.text();
    if (text.length > 0) {
      const parsed = parseStrictJson(text);
      if (!parsed.ok && parsed.reason === "duplicate_key") {
        throw new RelayError(ErrorCode.DUPLICATE_KEY, parsed.detail, {
          errors: [{ path: parsed.path, message: "duplicate key; each key may appear once per object" }],
        });
      }
      if (!parsed.ok) throw new RelayError(ErrorCode.MALFORMED_JSON, `malformed JSON body: ${parsed.detail}`);
    }
  }
  await next();
};
