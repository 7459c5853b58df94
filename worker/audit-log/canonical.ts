/**
 * The canonical encoding the audit chain hashes and the checkpoints sign, shared by the AuditLog
 * object and the offline verifier (web-standard APIs only, so it runs in workerd, Node and Deno).
 *
 * Canonical JSON: `JSON.stringify` of the value with every object's keys sorted by UTF-16 code
 * unit order (JavaScript's default sort), at every depth, no whitespace; keys whose value is
 * `undefined` are left out, array order is kept. Records hold only strings, integers, booleans,
 * null, arrays and objects, so `JSON.stringify`'s number and string forms are unambiguous.
 */

/** `prev_hash` of a shard's first record (seq 1): 64 zeros. */
export const GENESIS_HASH = "0".repeat(64);

export function canonicalJson(value: unknown): string {
  return JSON.stringify(sortKeys(value));
}

function sortKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (value === null || typeof value !== "object") return value;
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(value).sort()) {
    const v = (value as Record<string, unknown>)[key];
    // defineProperty: a key "__proto__" (JSON allows it) stays a plain own key.
    if (v !== undefined) Object.defineProperty(out, key, { value: sortKeys(v), enumerable: true, writable: true, configurable: true });
  }
  return out;
}

export async function sha256Hex(text: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
  return hex(new Uint8Array(digest));
}

export function hex(bytes: Uint8Array): string {
  let s = "";
  for (const b of bytes) s += b.toString(16).padStart(2, "0");
  return s;
}

/** A record's `hash`: SHA-256 (hex) of the canonical JSON of every field except `hash` itself. */
export function recordHash(record: Record<string, unknown>): Promise<string> {
  const { hash: _hash, ...rest } = record;
  return sha256Hex(canonicalJson(rest));
}
