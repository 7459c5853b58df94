import type { z } from "zod";

/** Stable error codes; clients branch on these, never on messages. */
export const ErrorCode = {
  AUTH_MISSING: "ERR_AUTH_MISSING",
  AUTH_INVALID: "ERR_AUTH_INVALID",
  AUTH_EXPIRED: "ERR_AUTH_EXPIRED",
  FORBIDDEN: "ERR_FORBIDDEN",
  VALIDATION: "ERR_VALIDATION",
  MALFORMED_JSON: "ERR_MALFORMED_JSON",
  DUPLICATE_KEY: "ERR_DUPLICATE_KEY",
  UNSUPPORTED_MEDIA_TYPE: "ERR_UNSUPPORTED_MEDIA_TYPE",
  BODY_TOO_LARGE: "ERR_BODY_TOO_LARGE",
  NOT_FOUND: "ERR_NOT_FOUND",
  HOST_NOT_FOUND: "ERR_HOST_NOT_FOUND",
  HOST_REVOKED: "ERR_HOST_REVOKED",
  HOST_EXISTS: "ERR_HOST_EXISTS",
  COMMAND_NOT_FOUND: "ERR_COMMAND_NOT_FOUND",
  COMMAND_NOT_CANCELLABLE: "ERR_COMMAND_NOT_CANCELLABLE",
  COMMAND_NOT_DEAD_LETTERED: "ERR_COMMAND_NOT_DEAD_LETTERED",
  IDEMPOTENCY_CONFLICT: "ERR_IDEMPOTENCY_CONFLICT",
  DEADLINE_IN_PAST: "ERR_DEADLINE_IN_PAST",
  DEADLINE_TOO_FAR: "ERR_DEADLINE_TOO_FAR",
  COMMAND_DEADLINE_PASSED: "ERR_COMMAND_DEADLINE_PASSED",
  AGENT_CERT_MISSING: "ERR_AGENT_CERT_MISSING",
  AGENT_CERT_UNVERIFIED: "ERR_AGENT_CERT_UNVERIFIED",
  AGENT_UNKNOWN: "ERR_AGENT_UNKNOWN",
  AGENT_REVOKED: "ERR_AGENT_REVOKED",
  UPGRADE_REQUIRED: "ERR_UPGRADE_REQUIRED",
  ENROLLMENT_TOKEN_INVALID: "ERR_ENROLLMENT_TOKEN_INVALID",
  ENROLLMENT_TOKEN_EXPIRED: "ERR_ENROLLMENT_TOKEN_EXPIRED",
  ENROLLMENT_TOKEN_USED: "ERR_ENROLLMENT_TOKEN_USED",
  CSR_INVALID: "ERR_CSR_INVALID",
  MISCONFIGURED: "ERR_MISCONFIGURED",
  JOB_NOT_FOUND: "ERR_JOB_NOT_FOUND",
  JOB_FINISHED: "ERR_JOB_FINISHED",
  UNKNOWN_HOSTS: "ERR_UNKNOWN_HOSTS",
  EMPTY_TARGET: "ERR_EMPTY_TARGET",
  RELAY_UNAVAILABLE: "ERR_RELAY_UNAVAILABLE",
  RATE_LIMITED: "ERR_RATE_LIMITED",
  ALERT_RULE_NOT_FOUND: "ERR_ALERT_RULE_NOT_FOUND",
  RECEIVER_NOT_FOUND: "ERR_RECEIVER_NOT_FOUND",
  ALERT_LIMIT_REACHED: "ERR_ALERT_LIMIT_REACHED",
  AUDIT_UNAVAILABLE: "ERR_AUDIT_UNAVAILABLE",
  INTERNAL: "ERR_INTERNAL",
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

const TITLES: Record<ErrorCode, string> = {
  ERR_AUTH_MISSING: "Authentication required",
  ERR_AUTH_INVALID: "Invalid token",
  ERR_AUTH_EXPIRED: "Token expired",
  ERR_FORBIDDEN: "Insufficient role",
  ERR_VALIDATION: "Request validation failed",
  ERR_MALFORMED_JSON: "Malformed JSON body",
  ERR_DUPLICATE_KEY: "Duplicate key in JSON body",
  ERR_UNSUPPORTED_MEDIA_TYPE: "Unsupported media type",
  ERR_BODY_TOO_LARGE: "Request body too large",
  ERR_NOT_FOUND: "Not found",
  ERR_HOST_NOT_FOUND: "Host not found",
  ERR_HOST_REVOKED: "Host revoked",
  ERR_HOST_EXISTS: "Host already registered",
  ERR_COMMAND_NOT_FOUND: "Command not found",
  ERR_COMMAND_NOT_CANCELLABLE: "Command can no longer be cancelled",
  ERR_COMMAND_NOT_DEAD_LETTERED: "Command is not dead-lettered",
  ERR_IDEMPOTENCY_CONFLICT: "Idempotency key reused with a different request",
  ERR_DEADLINE_IN_PAST: "Delivery deadline already passed",
  ERR_DEADLINE_TOO_FAR: "Delivery deadline too far in the future",
  ERR_COMMAND_DEADLINE_PASSED: "The command's stored delivery deadline has passed",
  ERR_AGENT_CERT_MISSING: "Client certificate required",
  ERR_AGENT_CERT_UNVERIFIED: "Client certificate not verified",
  ERR_AGENT_UNKNOWN: "Certificate not bound to an enrolled host",
  ERR_AGENT_REVOKED: "Host revoked",
  ERR_UPGRADE_REQUIRED: "WebSocket upgrade required",
  ERR_ENROLLMENT_TOKEN_INVALID: "Unknown enrolment token",
  ERR_ENROLLMENT_TOKEN_EXPIRED: "Enrolment token expired",
  ERR_ENROLLMENT_TOKEN_USED: "Enrolment token already used",
  ERR_CSR_INVALID: "Invalid certificate request",
  ERR_MISCONFIGURED: "Relay misconfigured",
  ERR_JOB_NOT_FOUND: "Job not found",
  ERR_JOB_FINISHED: "Job already finished",
  ERR_UNKNOWN_HOSTS: "Target names hosts that cannot take commands",
  ERR_EMPTY_TARGET: "Target matches no host",
  ERR_RELAY_UNAVAILABLE: "The host's relay could not be reached",
  ERR_RATE_LIMITED: "Too many requests",
  ERR_ALERT_RULE_NOT_FOUND: "Alert rule not found",
  ERR_RECEIVER_NOT_FOUND: "Alert receiver not found",
  ERR_ALERT_LIMIT_REACHED: "Too many alert rules or receivers",
  ERR_AUDIT_UNAVAILABLE: "The audit log could not record the request, so it was not carried out",
  ERR_INTERNAL: "Internal error",
};

/** The one HTTP status of each code: a code never means two statuses. */
export const ERROR_STATUS: Record<ErrorCode, number> = {
  ERR_AUTH_MISSING: 401,
  ERR_AUTH_INVALID: 401,
  ERR_AUTH_EXPIRED: 401,
  ERR_FORBIDDEN: 403,
  ERR_VALIDATION: 400,
  ERR_MALFORMED_JSON: 400,
  ERR_DUPLICATE_KEY: 400,
  ERR_UNSUPPORTED_MEDIA_TYPE: 415,
  ERR_BODY_TOO_LARGE: 413,
  ERR_NOT_FOUND: 404,
  ERR_HOST_NOT_FOUND: 404,
  ERR_HOST_REVOKED: 409,
  ERR_HOST_EXISTS: 409,
  ERR_COMMAND_NOT_FOUND: 404,
  ERR_COMMAND_NOT_CANCELLABLE: 409,
  ERR_COMMAND_NOT_DEAD_LETTERED: 409,
  ERR_IDEMPOTENCY_CONFLICT: 409,
  ERR_DEADLINE_IN_PAST: 400,
  ERR_DEADLINE_TOO_FAR: 400,
  ERR_COMMAND_DEADLINE_PASSED: 409,
  ERR_AGENT_CERT_MISSING: 401,
  ERR_AGENT_CERT_UNVERIFIED: 403,
  ERR_AGENT_UNKNOWN: 403,
  ERR_AGENT_REVOKED: 403,
  ERR_UPGRADE_REQUIRED: 426,
  ERR_ENROLLMENT_TOKEN_INVALID: 401,
  ERR_ENROLLMENT_TOKEN_EXPIRED: 401,
  ERR_ENROLLMENT_TOKEN_USED: 401,
  ERR_CSR_INVALID: 400,
  ERR_MISCONFIGURED: 503,
  ERR_JOB_NOT_FOUND: 404,
  ERR_JOB_FINISHED: 409,
  ERR_UNKNOWN_HOSTS: 400,
  ERR_EMPTY_TARGET: 422,
  ERR_RELAY_UNAVAILABLE: 503,
  ERR_RATE_LIMITED: 429,
  ERR_ALERT_RULE_NOT_FOUND: 404,
  ERR_RECEIVER_NOT_FOUND: 404,
  ERR_ALERT_LIMIT_REACHED: 409,
  ERR_AUDIT_UNAVAILABLE: 503,
  ERR_INTERNAL: 500,
};

export interface FieldError {
  path: string;
  message: string;
}

/** An error with a stable code and HTTP status, rendered as RFC 9457 problem+json. */
export class RelayError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly errors: FieldError[] | undefined;
  readonly headers: Record<string, string> | undefined;

  constructor(code: ErrorCode, detail?: string, extra?: { errors?: FieldError[]; headers?: Record<string, string> }) {
    super(detail ?? TITLES[code]);
    this.name = "RelayError";
    this.code = code;
    this.status = ERROR_STATUS[code];
    this.errors = extra?.errors;
    this.headers = extra?.headers;
  }
}

export function fieldErrors(error: z.ZodError, prefix?: string): FieldError[] {
  return error.issues.map((issue) => ({
    path: [prefix, ...issue.path.map(String)].filter((p) => p !== undefined && p !== "").join(".") || "(root)",
    message: issue.message,
  }));
}

export function validationError(error: z.ZodError, prefix?: string): RelayError {
  const errors = fieldErrors(error, prefix);
  const detail = errors.map((e) => `${e.path}: ${e.message}`).join("; ");
  return new RelayError(ErrorCode.VALIDATION, detail, { errors });
}

export const PROBLEM_CONTENT_TYPE = "application/problem+json";

export function problemResponse(err: RelayError, instance?: string, requestId?: string): Response {
  const body = {
    type: `urn:fleet-relay:problem:${err.code}`,
    title: TITLES[err.code],
    status: err.status,
    code: err.code,
    detail: err.message,
    ...(instance ? { instance } : {}),
    ...(err.errors ? { errors: err.errors } : {}),
    ...(requestId ? { request_id: requestId } : {}),
  };
  return new Response(JSON.stringify(body), {
    status: err.status,
    headers: { "content-type": PROBLEM_CONTENT_TYPE, ...err.headers },
  });
}

/** Result type for Durable Object RPC: errors cross the RPC boundary as data, keeping their code. */
export type RpcFailure = { ok: false; code: ErrorCode; detail: string };
export type RpcResult<T> = { ok: true; value: T } | RpcFailure;

export function rpcError(code: ErrorCode, detail: string): RpcFailure {
  return { ok: false, code, detail };
}

export function unwrap<T>(result: RpcResult<T>): T {
  if (result.ok) return result.value;
  throw new RelayError(result.code, result.detail);
}
