/**
 * What of a request an audit record keeps: the body with secrets replaced, bounded. Keys that name
 * credentials lose their value whatever it is; strings shaped like a JWT or a PEM private key are
 * replaced wherever they appear. The walk is linear in the body (already capped by the body limit)
 * and stops at a fixed depth.
 */

/** The redacted request, as canonical JSON, is at most this many bytes; a larger one keeps a prefix. */
export const MAX_AUDIT_REQUEST_BYTES = 4096;
export const REDACTED = "[REDACTED]";

const SECRET_KEY = /authorization|token|secret|password|passwd|passphrase|(^|[_-])key$|cookie|credential|signature|hmac/i;
const JWT = /eyJ[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]*/g;
const PRIVATE_PEM = /-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?(-----END [A-Z ]*PRIVATE KEY-----|$)/g;
const MAX_DEPTH = 16;

function redactString(s: string): string {
  return s.replace(JWT, "[REDACTED:jwt]").replace(PRIVATE_PEM, "[REDACTED:private-key]");
}

function walk(value: unknown, depth: number): unknown {
  if (typeof value === "string") return redactString(value);
  if (value === null || typeof value !== "object") return value;
  if (depth >= MAX_DEPTH) return "[TRUNCATED:depth]";
  if (Array.isArray(value)) return value.map((v) => walk(v, depth + 1));
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) {
    // defineProperty: a key "__proto__" stays a plain own key instead of replacing the prototype.
    Object.defineProperty(out, redactString(k), {
      value: SECRET_KEY.test(k) && v !== null ? REDACTED : walk(v, depth + 1),
      enumerable: true,
      writable: true,
      configurable: true,
    });
  }
  return out;
}

/** The body to store: redacted, and if still over the bound, a marker with its size and a redacted prefix. */
export function redactRequest(body: unknown): unknown {
  if (body === undefined) return null;
  const redacted = walk(body, 0);
  const json = JSON.stringify(redacted);
  const bytes = new TextEncoder().encode(json).length;
  if (bytes <= MAX_AUDIT_REQUEST_BYTES) return redacted;
  // The prefix is cut from already-redacted JSON, so it cannot hold a secret's tail.
  return { truncated: true, bytes, prefix: json.slice(0, 1024) };
}

/** Free text from callers (user agents, close reasons) cut to `max` characters, secrets redacted. */
export function boundedText(s: string | null | undefined, max = 256): string | null {
  if (s === null || s === undefined) return null;
  return redactString(s).slice(0, max);
}
