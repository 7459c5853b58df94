import { OpenAPIHono, z } from "@hono/zod-openapi";
import type { MiddlewareHandler } from "hono";
import { Problem } from "../../schemas/index.ts";
import { type AuditGateOptions, type AuditSession, auditGate } from "../audit-log/session.ts";
import { authenticate, hasRole, type Principal, type Role, requestCredentials } from "../auth/jwt.ts";
import type { Env } from "../env.ts";
import { ErrorCode, PROBLEM_CONTENT_TYPE, RelayError, validationError } from "../errors.ts";
import type { Logger } from "../log.ts";
import { hostExists } from "../registry.ts";

export interface AppEnv {
  Bindings: Env;
  Variables: {
    principal: Principal;
    /** This request's id (worker/request-id.ts), echoed in `X-Request-Id` and carried by every log line. */
    requestId: string;
    /** A structured logger whose lines carry the request id. */
    log: Logger;
    /** The audit record of this request, when it is a mutation (worker/audit-log/middleware.ts). */
    audit: AuditSession | undefined;
  };
}

/** Every router shares one validation hook: failures become 400 problem+json naming the fields. */
export function createRouter(): OpenAPIHono<AppEnv> {
  return new OpenAPIHono<AppEnv>({
    defaultHook: (result) => {
      if (!result.success) {
        const target = (result as { target?: string }).target;
        throw validationError(result.error, target === "json" ? undefined : target);
      }
    },
  });
}

/**
 * Authenticates the caller (Authorization: Bearer, or Cloudflare Access's assertion when JWT_JWKS_URL
 * is set) and requires at least `role` (viewer < operator < admin).
 */
export function requireRole(role: Role, audit: AuditGateOptions = {}): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    const principal = await authenticate(requestCredentials(c.req.raw.headers, c.env), c.env);
    // Set before the role check, so a refusal's audit record names who was refused.
    c.set("principal", principal);
    if (!hasRole(principal, role)) {
      throw new RelayError(ErrorCode.FORBIDDEN, `this needs the ${role} role; the token has ${principal.role}`);
    }
    // A mutation's audit record is written (fail-closed) before the handler may run.
    await auditGate(c, undefined, audit);
    await next();
  };
}

/** `security` of the REST routes: a JWT bearer token (scheme registered in worker/app.ts). */
export const BEARER = [{ bearerAuth: [] }];
/** `security` of the agent routes that need the agent's client certificate (mutual TLS at the edge). */
export const AGENT_CERTIFICATE = [{ agentCertificate: [] }];
/** `security` of the routes anyone may call. */
export const PUBLIC: { [scheme: string]: string[] }[] = [];

const PROBLEM_TEXT: Record<number, string> = {
  400: "Invalid request: malformed JSON, failed validation (with the failing fields) or bad cursor",
  401: "Missing, invalid or expired token (see WWW-Authenticate)",
  403: "Authenticated but the role is insufficient",
  404: "No such resource",
  409: "Conflicts with the resource's current state",
  413: "Body larger than the limit",
  415: "Body is not application/json",
  422: "Valid, but it cannot be carried out as asked",
  426: "WebSocket upgrade required",
  429: "Too many attempts from this source; retry after `Retry-After` seconds",
  503: "Not done: something it needs could not be reached; retry",
};

const problemContent = { [PROBLEM_CONTENT_TYPE]: { schema: Problem } };

/**
 * OpenAPI responses for the given error statuses, each an RFC 9457 problem document, and `default`
 * for the rest: any route may answer 500 ERR_INTERNAL (or another 5xx) as problem+json too.
 */
export function problems(...statuses: (number | [status: number, description: string])[]) {
  // Typed as statuses only: a `default` key would join Problem to every success body in the handlers' types.
  return {
    ...Object.fromEntries(
      statuses.map((entry) => {
        const [status, description] = typeof entry === "number" ? [entry, PROBLEM_TEXT[entry] ?? "Error"] : entry;
        return [status, { description, content: problemContent }];
      }),
    ),
    default: { description: "Any other error (500 ERR_INTERNAL, 503 …), as a problem document", content: problemContent },
  } as Record<number, { description: string; content: typeof problemContent }>;
}

export function jsonBody<T extends z.ZodType>(schema: T, description: string, required = true) {
  return { required, description, content: { "application/json": { schema } } };
}

export function jsonContent<T extends z.ZodType>(schema: T, description: string) {
  return { description, content: { "application/json": { schema } } };
}

export const HostIdParam = z.object({
  host_id: z.uuid().openapi({ param: { name: "host_id", in: "path" }, description: "The host's id" }),
});

export const HostCommandParams = HostIdParam.extend({
  message_id: z.uuid().openapi({ param: { name: "message_id", in: "path" }, description: "The command's message_id" }),
});

/**
 * 404 for a host the registry does not know, asked before its HostRelay is addressed: a read for a
 * made-up id must not create a Durable Object (and its storage) for it.
 */
export async function requireHost(env: Env, hostId: string): Promise<void> {
  if (!(await hostExists(env.DB, hostId))) throw new RelayError(ErrorCode.HOST_NOT_FOUND, `host ${hostId} is not registered`);
}

/** SHA-256 of the canonical request, so a reused Idempotency-Key with another body is detected. */
export async function requestHash(parts: unknown): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(JSON.stringify(parts)));
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

/** Keys the relay itself uses on hosts' queues (`job:<job_id>` for a job's copy); callers may not send them. */
export const RESERVED_IDEMPOTENCY_PREFIX = "job:";

function idempotencyKey(description: string) {
  return z
    .string()
    .regex(/^[A-Za-z0-9_.:-]{1,128}$/)
    .refine((key) => !key.toLowerCase().startsWith(RESERVED_IDEMPOTENCY_PREFIX), {
      message: `keys starting with "${RESERVED_IDEMPOTENCY_PREFIX}" are reserved for the relay's own job dispatch`,
    })
    .optional()
    .openapi({ param: { name: "idempotency-key", in: "header" }, description });
}

export const IdempotencyHeader = z.object({
  "idempotency-key": idempotencyKey(
    `Retry-safe key: the same key and body return the first command instead of queueing another. Keys starting with \`${RESERVED_IDEMPOTENCY_PREFIX}\` are reserved (400).`,
  ),
});

export const JobIdempotencyHeader = z.object({
  "idempotency-key": idempotencyKey(
    `Retry-safe key, fleet-wide: the same key and body return the first job (same job_id) instead of starting another; the same key with another body is 409. Keys starting with \`${RESERVED_IDEMPOTENCY_PREFIX}\` are reserved (400).`,
  ),
});
