/**
 * Signs REST tokens the way a real issuer would, for local use, tests and benchmarks:
 * HS256 over the relay's JWT_SECRET (its UTF-8 bytes), with `sub`, `role`, `iat`, `exp`, `iss`, `aud`.
 */
import { readFileSync } from "node:fs";
import path from "node:path";
import { SignJWT } from "jose";

export const ROLES = ["metrics", "viewer", "operator", "admin"] as const;
export type Role = (typeof ROLES)[number];

export const DEFAULT_ISSUER = "fleet-relay";
export const DEFAULT_AUDIENCE = "fleet-relay-api";

export interface DevTokenOptions {
  /** The relay's JWT_SECRET, as a string (UTF-8 encoded into the key) or raw key bytes. */
  secret: string | Uint8Array;
  role: Role;
  /** Lifetime in seconds. Default 3600. */
  ttlSeconds?: number;
  /** Subject. Default "local-dev". */
  sub?: string;
  issuer?: string;
  audience?: string;
  /** Issued-at override, seconds since the epoch (tests). Default now. */
  now?: number;
}

export function isRole(value: string): value is Role {
  return (ROLES as readonly string[]).includes(value);
}

export async function signDevToken(opts: DevTokenOptions): Promise<string> {
  if (!isRole(opts.role)) throw new TypeError(`unknown role "${String(opts.role)}" (expected ${ROLES.join(", ")})`);
  const ttl = opts.ttlSeconds ?? 3600;
  if (!Number.isInteger(ttl) || ttl <= 0) throw new RangeError(`ttlSeconds must be a positive integer, got ${ttl}`);
  const key = typeof opts.secret === "string" ? new TextEncoder().encode(opts.secret) : opts.secret;
  if (key.byteLength === 0) throw new TypeError("empty secret");
  const iat = opts.now ?? Math.floor(Date.now() / 1000);
  return new SignJWT({ role: opts.role })
    .setProtectedHeader({ alg: "HS256", typ: "JWT" })
    .setSubject(opts.sub ?? "local-dev")
    .setIssuer(opts.issuer ?? DEFAULT_ISSUER)
    .setAudience(opts.audience ?? DEFAULT_AUDIENCE)
    .setIssuedAt(iat)
    .setExpirationTime(iat + ttl)
    .sign(key);
}

/** Parses `30s`, `15m`, `1h`, `7d` or a bare number of seconds; undefined if invalid. */
export function parseTtl(text: string): number | undefined {
  const m = /^(\d+)\s*([smhd]?)$/.exec(text.trim());
  if (!m) return undefined;
  const n = Number(m[1]) * { "": 1, s: 1, m: 60, h: 3600, d: 86400 }[m[2] as "" | "s" | "m" | "h" | "d"];
  return Number.isSafeInteger(n) && n > 0 ? n : undefined;
}

/**
 * `JWT_ISSUER` / `JWT_AUDIENCE` from the `[vars]` table of wrangler.toml (top-level environment),
 * falling back to the Worker's defaults. A deliberately small reader: `KEY = "value"` lines only.
 */
export function readJwtClaimsConfig(wranglerToml = path.resolve(import.meta.dirname, "..", "wrangler.toml")): {
  issuer: string;
  audience: string;
} {
  let vars: Record<string, string> = {};
  try {
    vars = parseVarsTable(readFileSync(wranglerToml, "utf8"));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
  }
  return { issuer: vars.JWT_ISSUER || DEFAULT_ISSUER, audience: vars.JWT_AUDIENCE || DEFAULT_AUDIENCE };
}

function parseVarsTable(toml: string): Record<string, string> {
  const out: Record<string, string> = {};
  let inVars = false;
  for (const raw of toml.split(/\r?\n/)) {
    const line = raw.trim();
    if (line.startsWith("[")) {
      inVars = line === "[vars]";
      continue;
    }
    if (!inVars) continue;
    const m = /^([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|'([^']*)')\s*(?:#.*)?$/.exec(line);
    if (m?.[1]) out[m[1]] = m[2] !== undefined ? JSON.parse(`"${m[2]}"`) : (m[3] ?? "");
  }
  return out;
}
