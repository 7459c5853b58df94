import { ErrorCode, RelayError, type RpcFailure, rpcError } from "./errors.ts";

/** One page of a list; `next_cursor` is null on the last page. */
export interface Page<T> {
  items: T[];
  next_cursor: string | null;
}

const DETAIL = "cursor: not a cursor this API returned";

/**
 * Opaque list cursors: a one-letter kind and a position (`c123`: commands before seq 123, `s5`,
 * `h…`, `j…`). Every list decodes with this one codec and refuses a foreign cursor the same way.
 */
export const Cursor = {
  encode(kind: string, position: number | string | null): string | null {
    return position === null ? null : `${kind}${position}`;
  },

  /** The numeric position, null for no cursor, or "invalid". */
  decodeNumber(kind: string, cursor: string | undefined): number | null | "invalid" {
    if (cursor === undefined) return null;
    if (!cursor.startsWith(kind)) return "invalid";
    const digits = cursor.slice(kind.length);
    return /^\d{1,15}$/.test(digits) ? Number(digits) : "invalid";
  },

  /** The string position (ids), null for no cursor, or "invalid" unless it matches `shape`. */
  decodeString(kind: string, cursor: string | undefined, shape: RegExp): string | null | "invalid" {
    if (cursor === undefined) return null;
    if (!cursor.startsWith(kind)) return "invalid";
    const rest = cursor.slice(kind.length);
    return shape.test(rest) ? rest : "invalid";
  },

  /** The refusal, as RPC data. */
  rpcInvalid(): RpcFailure {
    return rpcError(ErrorCode.VALIDATION, DETAIL);
  },

  /** The refusal, as a REST error naming the field. */
  invalid(): RelayError {
    return new RelayError(ErrorCode.VALIDATION, DETAIL, { errors: [{ path: "cursor", message: "not a cursor this API returned" }] });
  },
};
