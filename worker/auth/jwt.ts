import { createRemoteJWKSet, errors, type JWTVerifyGetKey, jwtVerify } from "jose";
import type { Env } from "../env.ts";
import { ErrorCode, RelayError } from "../errors.ts";

/**
 * Ranked lowest first; a role includes every role below it. `metrics` may only scrape `/metrics`
 * (for a Prometheus scrape config), so it ranks below `viewer`.
 */
export const ROLES = ["metrics", "viewer", "operator", "admin"] as const;
export type Role = (typeof ROLES)[number];

export interface Principal {
  sub: string;
  role: Role;
  /** The token's `jti` claim, when it has one (bounded), for the audit record. */
  jti?: string;
}

const REALM = 'Bearer realm="fleet-relay"';
/** Default issuer and audience when the deployment sets none. */
export const DEFAULT_ISSUER = "fleet-relay";
export const DEFAULT_AUDIENCE = "fleet-relay-api";

let jwksCache: { url: string; keys: JWTVerifyGetKey } | undefined;
// The imported HMAC key, so each request skips importing it again (jose imports raw bytes per call).
let secretCache: { secret: string; key: Promise<CryptoKey> } | undefined;

function verificationKey(env: Env): { key: Promise<CryptoKey> | JWTVerifyGetKey; algorithms: string[] } {
  if (env.JWT_JWKS_URL) {
    if (jwksCache?.url !== env.JWT_JWKS_URL) {
      jwksCache = { url: env.JWT_JWKS_URL, keys: createRemoteJWKSet(new URL(env.JWT_JWKS_URL)) };
    }
    const algorithms = (env.JWT_ALGORITHMS ?? "RS256,ES256")
      .split(",")
      .map((a) => a.trim())
      .filter(Boolean);
    return { key: jwksCache.keys, algorithms };
  }
  if (env.JWT_SECRET) {
    if (secretCache?.secret !== env.JWT_SECRET) {
      const key = crypto.subtle.importKey("raw", new TextEncoder().encode(env.JWT_SECRET), { name: "HMAC", hash: "SHA-256" }, false, [
        "verify",
      ]);
      secretCache = { secret: env.JWT_SECRET, key };
    }
    return { key: secretCache.key, algorithms: ["HS256"] };
  }
  throw new RelayError(ErrorCode.MISCONFIGURED, "neither JWT_SECRET nor JWT_JWKS_URL is set");
}

function unauthorized(code: ErrorCode, detail: string, error?: "invalid_token"): RelayError {
  const challenge = error ? `${REALM}, error="${error}", error_description="${detail.replaceAll('"', "'")}"` : REALM;
  return new RelayError(code, detail, { headers: { "www-authenticate": challenge } });
}

/** The header Cloudflare Access adds to every request it lets through to the origin: its signed JWT. */
export const ACCESS_JWT_HEADER = "cf-access-jwt-assertion";

/**
 * The token a request carries: its Authorization header, else — only when tokens are checked
 * against a JWKS (`JWT_JWKS_URL`, e.g. Access's certs) — Cloudflare Access's assertion header, so a
 * browser behind Access (the dashboard, its WebSocket) is signed in with no token pasting. With the
 * shared secret the assertion is ignored: Access signs with its own keys, which the secret cannot check.
 */
export function requestCredentials(headers: { get(name: string): string | null | undefined }, env: Env): string | undefined {
  const authorization = headers.get("authorization") ?? undefined;
  if (authorization !== undefined || !env.JWT_JWKS_URL) return authorization;
  const assertion = headers.get(ACCESS_JWT_HEADER);
  return assertion ? `Bearer ${assertion}` : undefined;
}

/** Reads the Bearer token and proves who is calling; throws a 401 RelayError otherwise. */
export async function authenticate(authorization: string | undefined, env: Env): Promise<Principal> {
  if (!authorization) throw unauthorized(ErrorCode.AUTH_MISSING, "send Authorization: Bearer <JWT>");
  const match = /^Bearer\s+([A-Za-z0-9_\-.]+)\s*$/i.exec(authorization);
  if (!match) throw unauthorized(ErrorCode.AUTH_INVALID, "the Authorization header is not a Bearer token", "invalid_token");
  return verifyToken(match[1]!, env);
}

export async function verifyToken(token: string, env: Env): Promise<Principal> {
  const { key, algorithms } = verificationKey(env);
  try {
    const resolved = typeof key === "function" ? key : await key;
    const { payload } = await jwtVerify(token, resolved as CryptoKey, {
      algorithms,
      issuer: env.JWT_ISSUER || DEFAULT_ISSUER,
      audience: env.JWT_AUDIENCE || DEFAULT_AUDIENCE,
      requiredClaims: ["exp"],
    });
    return {
      sub: typeof payload.sub === "string" ? payload.sub.slice(0, 256) : "unknown",
      role: roleOf(payload),
      ...(typeof payload.jti === "string" ? { jti: payload.jti.slice(0, 128) } : {}),
    };
  } catch (err) {
    if (err instanceof RelayError) throw err;
    if (err instanceof errors.JWTExpired) throw unauthorized(ErrorCode.AUTH_EXPIRED, "the token has expired", "invalid_token");
    if (err instanceof errors.JOSEError) {
      throw unauthorized(ErrorCode.AUTH_INVALID, `token rejected (${err.code})`, "invalid_token");
    }
    throw unauthorized(ErrorCode.AUTH_INVALID, "token rejected", "invalid_token");
  }
}

/** `role` (a string) or `roles` (an array, highest wins); anything else has no role. */
function roleOf(payload: Record<string, unknown>): Role {
  const claimed = Array.isArray(payload.roles) ? payload.roles : [payload.role];
  let best = -1;
  for (const r of claimed) best = Math.max(best, ROLES.indexOf(r as Role));
  if (best < 0) {
    throw new RelayError(ErrorCode.FORBIDDEN, `the token carries no role (${ROLES.join(", ")})`);
  }
  return ROLES[best]!;
}

export function hasRole(principal: Principal, needed: Role): boolean {
  return ROLES.indexOf(principal.role) >= ROLES.indexOf(needed);
}
