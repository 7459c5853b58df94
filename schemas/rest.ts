import { z } from "zod";
import {
  CommandType,
  PackageOperation,
  PackageOperationParameters,
  PackageOptions,
  ShellParameters,
  SystemInfoParameters,
} from "./commands.ts";
import { Defaults, Limits } from "./constants.ts";
import { CommandResult, ResponseStatus } from "./messages.ts";
import { CertFingerprint, Hostname, PackageName, Rfc3339, Tag, Uuid } from "./primitives.ts";

/** Delivery controls every command request may carry. */
const delivery = {
  /** Execution timeout on the agent, seconds. Default 300. */
  timeout: z.int().min(Limits.MIN_TIMEOUT_S).max(Limits.MAX_TIMEOUT_S).optional(),
  /** Delivery deadline; mutually exclusive with `expires_in`. Default: 24 h after acceptance. */
  expires_at: Rfc3339.optional(),
  /** Delivery deadline in seconds from acceptance; mutually exclusive with `expires_at`. */
  expires_in: z.int().min(1).max(Limits.MAX_EXPIRES_IN_S).optional(),
  /** Sends without an ack before the command is dead-lettered. Default 10. */
  max_attempts: z.int().min(1).max(Limits.MAX_ATTEMPTS).optional(),
};

function exclusiveDeadline(v: { expires_at?: string | undefined; expires_in?: number | undefined }, ctx: z.RefinementCtx) {
  if (v.expires_at !== undefined && v.expires_in !== undefined) {
    ctx.addIssue({ code: "custom", path: ["expires_in"], message: "give expires_at or expires_in, not both" });
  }
}

/** Body of `POST /api/hosts/{host_id}/packages/{operation}` — the product page's request. */
export const PackageRequest = z
  .strictObject({
    packages: z.array(PackageName).max(Limits.MAX_PACKAGES).default([]),
    options: PackageOptions.default({}),
    ...delivery,
  })
  .superRefine(exclusiveDeadline);
export type PackageRequest = z.infer<typeof PackageRequest>;
export { PackageOperation };

/** Body of `POST /api/hosts/{host_id}/commands`. */
export const CommandRequest = z
  .discriminatedUnion("command_type", [
    z.strictObject({ command_type: z.literal("package_operation"), parameters: PackageOperationParameters, ...delivery }),
    z.strictObject({ command_type: z.literal("system_info"), parameters: SystemInfoParameters.default({}), ...delivery }),
    z.strictObject({ command_type: z.literal("shell"), parameters: ShellParameters, ...delivery }),
  ])
  .superRefine(exclusiveDeadline);
export type CommandRequest = z.infer<typeof CommandRequest>;

/** Body of `POST /api/hosts/{host_id}/dead-letters/{message_id}/requeue` (all optional). */
export const RequeueRequest = z
  .strictObject({
    expires_at: delivery.expires_at,
    expires_in: delivery.expires_in,
    max_attempts: delivery.max_attempts,
  })
  .superRefine(exclusiveDeadline);
export type RequeueRequest = z.infer<typeof RequeueRequest>;

export const CommandState = z.enum([
  "queued",
  "delivered",
  "running",
  // A cancel was sent to an agent that may hold the command; the agent's response decides the end state.
  "cancelling",
  "succeeded",
  "failed",
  "timed_out",
  "expired",
  "cancelled",
  "dead_lettered",
]);
export type CommandState = z.infer<typeof CommandState>;
export const TERMINAL_STATES: readonly CommandState[] = ["succeeded", "failed", "timed_out", "expired", "cancelled", "dead_lettered"];

export const CommandAccepted = z.object({
  message_id: Uuid,
  status: CommandState,
});
export type CommandAccepted = z.infer<typeof CommandAccepted>;

export const StateChange = z.object({
  state: CommandState,
  at: Rfc3339,
  attempt: z.int().nullable(),
  detail: z.string().nullable(),
});
export type StateChange = z.infer<typeof StateChange>;

export const CommandSummary = z.object({
  message_id: Uuid,
  host_id: Uuid,
  command_type: CommandType,
  state: CommandState,
  attempts: z.int(),
  max_attempts: z.int(),
  timeout: z.int(),
  expires_at: Rfc3339,
  created_at: Rfc3339,
  updated_at: Rfc3339,
  response_status: ResponseStatus.nullable(),
});
export type CommandSummary = z.infer<typeof CommandSummary>;

export const CommandView = CommandSummary.extend({
  parameters: z.record(z.string(), z.unknown()),
  last_attempt_at: Rfc3339.nullable(),
  history: z.array(StateChange),
  result: CommandResult.nullable(),
  /** Output streamed in `status` chunks, in order (bounded). */
  output: z.string(),
});
export type CommandView = z.infer<typeof CommandView>;

export const Page = <T extends z.ZodType>(item: T) => z.object({ items: z.array(item), next_cursor: z.string().nullable() });

export const PageQuery = {
  limit: z.coerce.number().int().min(1).max(Limits.MAX_PAGE_SIZE).default(Defaults.PAGE_SIZE),
  cursor: z.string().max(200).optional(),
};

/** A query parameter holding a comma-separated list of `item`s, e.g. `queued,delivered`. */
export function commaList<T extends z.ZodType<string, string>>(item: T) {
  return z
    .string()
    .transform((s) => s.split(",").filter(Boolean))
    .pipe(z.array(item).min(1));
}

export const CommandListQuery = z.strictObject({
  ...PageQuery,
  /** Comma-separated states, e.g. `queued,delivered`. */
  state: commaList(CommandState).optional(),
});

export const DeadLetter = z.object({
  message_id: Uuid,
  command_type: CommandType,
  attempts: z.int(),
  reason: z.string(),
  dead_lettered_at: Rfc3339,
  created_at: Rfc3339,
  expires_at: Rfc3339,
});
export type DeadLetter = z.infer<typeof DeadLetter>;

export const HostCreate = z.strictObject({
  hostname: Hostname,
  cert_fingerprint_sha256: CertFingerprint,
  tags: z.array(Tag).max(64).default([]),
});
export type HostCreate = z.infer<typeof HostCreate>;

export const HostStatus = z.enum(["online", "offline", "revoked"]);
export type HostStatus = z.infer<typeof HostStatus>;

export const AgentInfo = z.object({
  agent_version: z.string(),
  protocol_version: z.int(),
  hostname: z.string(),
  os: z.object({
    name: z.string(),
    version: z.string().optional(),
    kernel: z.string().optional(),
    arch: z.string().optional(),
  }),
  supported_commands: z.array(z.string()),
});
export type AgentInfo = z.infer<typeof AgentInfo>;

export const HostView = z.object({
  host_id: Uuid,
  hostname: z.string(),
  cert_fingerprint_sha256: z.string(),
  tags: z.array(z.string()),
  status: HostStatus,
  created_at: Rfc3339,
  connected_at: Rfc3339.nullable(),
  last_seen_at: Rfc3339.nullable(),
  revoked_at: Rfc3339.nullable(),
  agent: AgentInfo.nullable(),
  /** Commands not yet in a terminal state; only on `GET /api/hosts/{host_id}`. */
  queue_depth: z.int().optional(),
});
export type HostView = z.infer<typeof HostView>;

export const HostListQuery = z.strictObject({
  ...PageQuery,
  status: HostStatus.optional(),
});

/** RFC 9457 problem details, with our stable `code` and, for validation, the failing fields. */
export const Problem = z.object({
  type: z.string(),
  title: z.string(),
  status: z.int(),
  code: z.string(),
  detail: z.string().optional(),
  instance: z.string().optional(),
  errors: z.array(z.object({ path: z.string(), message: z.string() })).optional(),
  /** The request's id, as in its `X-Request-Id` header, to find its log lines and audit record. */
  request_id: z.string().optional(),
});
export type Problem = z.infer<typeof Problem>;

// ---- enrolment ----

/** Body of `POST /api/enrollment-tokens`. */
export const EnrollmentTokenCreate = z.strictObject({
  /** Lifetime in seconds. Default 3600 (1 h), at most 7 days. */
  ttl_seconds: z
    .int()
    .min(60)
    .max(7 * 24 * 3600)
    .default(3600),
  /** Tags the enrolled host receives. */
  tags: z.array(Tag).max(64).default([]),
});
export type EnrollmentTokenCreate = z.infer<typeof EnrollmentTokenCreate>;

export const EnrollmentTokenCreated = z.object({
  /** Shown once; only its hash is stored. */
  token: z.string(),
  token_id: Uuid,
  expires_at: Rfc3339,
  tags: z.array(z.string()),
});
export type EnrollmentTokenCreated = z.infer<typeof EnrollmentTokenCreated>;

const CsrPem = z
  .string()
  .max(16 * 1024)
  .regex(/^-----BEGIN CERTIFICATE REQUEST-----[\s\S]+-----END CERTIFICATE REQUEST-----\s*$/, {
    message: "expected a PEM certificate request",
  });

/** Body of `POST /agent/enroll`. */
export const EnrollRequest = z.strictObject({
  token: z.string().min(1).max(200),
  csr: CsrPem,
  hostname: Hostname,
});
export type EnrollRequest = z.infer<typeof EnrollRequest>;

export const EnrollResponse = z.object({
  host_id: Uuid,
  certificate: z.string(),
  ca_certificate: z.string(),
  not_after: Rfc3339,
});
export type EnrollResponse = z.infer<typeof EnrollResponse>;

/** Body of `POST /agent/renew` (over mutual TLS with the current certificate). */
export const RenewRequest = z.strictObject({ csr: CsrPem });
export type RenewRequest = z.infer<typeof RenewRequest>;

export const RenewResponse = EnrollResponse;
export type RenewResponse = EnrollResponse;
