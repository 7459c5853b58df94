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
import { CertFingerprint, Hostname, orNull, PackageName, Rfc3339, Tag, Uuid } from "./primitives.ts";

/** Delivery controls every command request may carry. */
const delivery = {
  timeout: z
    .int()
    .min(Limits.MIN_TIMEOUT_S)
    .max(Limits.MAX_TIMEOUT_S)
    .optional()
    .describe(`Execution timeout on the agent, seconds. Default ${Defaults.TIMEOUT_S}.`),
  expires_at: Rfc3339.optional().describe(
    "Delivery deadline; mutually exclusive with `expires_in`. Default: 24 h after acceptance; at most 30 days after it.",
  ),
  expires_in: z
    .int()
    .min(1)
    .max(Limits.MAX_EXPIRES_IN_S)
    .optional()
    .describe("Delivery deadline in seconds from acceptance; mutually exclusive with `expires_at`."),
  max_attempts: z
    .int()
    .min(1)
    .max(Limits.MAX_ATTEMPTS)
    .optional()
    .describe(`Sends without an ack (on a live connection) before the command is dead-lettered. Default ${Defaults.MAX_ATTEMPTS}.`),
};

function exclusiveDeadline(v: { expires_at?: string | undefined; expires_in?: number | undefined }, ctx: z.RefinementCtx) {
  if (v.expires_at !== undefined && v.expires_in !== undefined) {
    ctx.addIssue({ code: "custom", path: ["expires_in"], message: "give expires_at or expires_in, not both" });
  }
}

/** Body of `POST /api/hosts/{host_id}/packages/{operation}` — the product page's request. */
export const PackageRequest = z
  .strictObject({
    packages: z
      .array(PackageName)
      .max(Limits.MAX_PACKAGES)
      .default([])
      .describe("Packages to act on; install and remove need at least one, update and upgrade may name none (all)"),
    options: PackageOptions.default({}),
    ...delivery,
  })
  .superRefine(exclusiveDeadline)
  .meta({ id: "PackageRequest", description: "A package operation on one host: the packages, options and delivery controls" });
export type PackageRequest = z.infer<typeof PackageRequest>;
export { PackageOperation };

/** Body of `POST /api/hosts/{host_id}/commands`. */
export const CommandRequest = z
  .discriminatedUnion("command_type", [
    z
      .strictObject({ command_type: z.literal("package_operation"), parameters: PackageOperationParameters, ...delivery })
      .meta({ id: "PackageOperationCommandRequest" }),
    z
      .strictObject({ command_type: z.literal("system_info"), parameters: SystemInfoParameters.default({}), ...delivery })
      .meta({ id: "SystemInfoCommandRequest" }),
    z.strictObject({ command_type: z.literal("shell"), parameters: ShellParameters, ...delivery }).meta({ id: "ShellCommandRequest" }),
  ])
  .superRefine(exclusiveDeadline)
  .meta({ id: "CommandRequest", description: "Any command for one host: its type, typed parameters and delivery controls" });
export type CommandRequest = z.infer<typeof CommandRequest>;

/** Body of `POST /api/hosts/{host_id}/dead-letters/{message_id}/requeue` (all optional). */
export const RequeueRequest = z
  .strictObject({
    expires_at: delivery.expires_at,
    expires_in: delivery.expires_in,
    max_attempts: delivery.max_attempts,
  })
  .superRefine(exclusiveDeadline)
  .meta({ id: "RequeueRequest", description: "Optional new delivery deadline and attempt budget for a requeued command" });
export type RequeueRequest = z.infer<typeof RequeueRequest>;

export const CommandState = z
  .enum([
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
  ])
  .meta({
    id: "CommandState",
    description:
      "Where a command is: queued → delivered → running → succeeded | failed | timed_out | cancelled; expired (delivery deadline passed), dead_lettered (out of attempts), cancelling (a cancel went to the agent, whose response decides)",
  });
export type CommandState = z.infer<typeof CommandState>;
export const TERMINAL_STATES: readonly CommandState[] = ["succeeded", "failed", "timed_out", "expired", "cancelled", "dead_lettered"];

export const CommandAccepted = z
  .object({
    message_id: Uuid.describe("The command's id"),
    status: CommandState,
  })
  .meta({ id: "CommandAccepted", description: "A command taken for delivery (or the first one, for a repeated Idempotency-Key)" });
export type CommandAccepted = z.infer<typeof CommandAccepted>;

export const StateChange = z
  .object({
    state: CommandState,
    at: Rfc3339.describe("When the command entered the state"),
    attempt: z.int().nullable().describe("The delivery attempt the change belongs to, if any"),
    detail: z.string().nullable().describe("Why, when there is more to say (e.g. the dead-letter reason)"),
  })
  .meta({ id: "StateChange", description: "One entry of a command's state history" });
export type StateChange = z.infer<typeof StateChange>;

const commandSummaryFields = {
  message_id: Uuid.describe("The command's id"),
  host_id: Uuid.describe("The host it is for"),
  command_type: CommandType,
  state: CommandState,
  attempts: z.int().describe("Sends so far"),
  max_attempts: z.int().describe("Sends without an ack before it is dead-lettered"),
  timeout: z.int().describe("Execution timeout on the agent, seconds"),
  expires_at: Rfc3339.describe("Delivery deadline"),
  created_at: Rfc3339,
  updated_at: Rfc3339,
  response_status: orNull(ResponseStatus).describe("The agent's verdict, once it answered"),
};

export const CommandSummary = z
  .object(commandSummaryFields)
  .meta({ id: "CommandSummary", description: "A command as listed: its state and delivery counters" });
export type CommandSummary = z.infer<typeof CommandSummary>;

export const CommandView = z
  .object({
    ...commandSummaryFields,
    parameters: z.record(z.string(), z.unknown()).describe("The command's parameters, as queued"),
    last_attempt_at: Rfc3339.nullable().describe("When it was last sent"),
    history: z.array(StateChange).describe("Every state change, oldest first"),
    result: orNull(CommandResult).describe("The agent's result, once it answered"),
    output: z.string().describe("Output streamed in `status` chunks, in order (bounded)"),
    output_seq: z
      .int()
      .nullable()
      .describe(
        "Highest streamed chunk seq included in `output` (null: none yet); a command.output event with a higher seq is not in it yet, one at or below it may be (reload the command)",
      ),
  })
  .meta({ id: "CommandView", description: "A command: state, attempts, full state history, output and result" });
export type CommandView = z.infer<typeof CommandView>;

/** One page of `item`s, named `name` in the OpenAPI document; define each once, next to its item. */
export function Page<T extends z.ZodType>(item: T, name: string) {
  return z
    .object({
      items: z.array(item),
      next_cursor: z.string().nullable().describe("Pass as `cursor` for the next page; null on the last one"),
    })
    .meta({ id: name, description: "One page of results" });
}

export const PageQuery = {
  limit: z.coerce
    .number()
    .int()
    .min(1)
    .max(Limits.MAX_PAGE_SIZE)
    .default(Defaults.PAGE_SIZE)
    .describe(`Most items on the page (1-${Limits.MAX_PAGE_SIZE})`),
  cursor: z.string().max(200).optional().describe("`next_cursor` of the previous page; absent for the first"),
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
  state: commaList(CommandState).optional().describe("Only commands in these states: comma-separated, e.g. `queued,delivered`"),
});

export const CommandPage = Page(CommandSummary, "CommandPage");

export const DeadLetter = z
  .object({
    message_id: Uuid.describe("The command's id (kept when it is requeued)"),
    command_type: CommandType,
    attempts: z.int().describe("Sends made before it was dead-lettered"),
    reason: z.string().describe("Why it was dead-lettered"),
    dead_lettered_at: Rfc3339,
    created_at: Rfc3339,
    expires_at: Rfc3339.describe("Its delivery deadline"),
  })
  .meta({ id: "DeadLetter", description: "A command that ran out of delivery attempts" });

export const DeadLetterPage = Page(DeadLetter, "DeadLetterPage");
export type DeadLetter = z.infer<typeof DeadLetter>;

export const HostCreate = z
  .strictObject({
    hostname: Hostname,
    cert_fingerprint_sha256: CertFingerprint,
    tags: z.array(Tag).max(64).default([]).describe("The host's tags (at most 64)"),
  })
  .meta({ id: "HostCreate", description: "A host to register, bound to the SHA-256 fingerprint of its agent's client certificate" });
export type HostCreate = z.infer<typeof HostCreate>;

export const HostStatus = z.enum(["online", "offline", "revoked"]).meta({
  id: "HostStatus",
  description: "online: its agent is connected; offline: it is not; revoked: refused for good",
});
export type HostStatus = z.infer<typeof HostStatus>;

export const AgentInfo = z
  .object({
    agent_version: z.string(),
    protocol_version: z.int().describe("Wire protocol version the agent speaks"),
    hostname: z.string().describe("Host name the agent reported"),
    os: z.object({
      name: z.string(),
      version: z.string().optional(),
      kernel: z.string().optional(),
      arch: z.string().optional(),
    }),
    supported_commands: z.array(z.string()).describe("Command types the agent accepts"),
  })
  .meta({ id: "AgentInfo", description: "What the host's agent said about itself in its last `hello`" });
export type AgentInfo = z.infer<typeof AgentInfo>;

export const HostView = z
  .object({
    host_id: Uuid.describe("The host's id"),
    hostname: z.string(),
    cert_fingerprint_sha256: z.string().describe("SHA-256 fingerprint of its agent's current client certificate (lower-case hex)"),
    tags: z.array(z.string()),
    status: HostStatus,
    created_at: Rfc3339,
    connected_at: Rfc3339.nullable().describe("When its agent last connected"),
    last_seen_at: Rfc3339.nullable().describe("When its agent was last heard from"),
    revoked_at: Rfc3339.nullable(),
    agent: orNull(AgentInfo),
    queue_depth: z
      .int()
      .optional()
      .describe(
        "Commands not yet in a terminal state. Exact on `GET /api/hosts/{host_id}`; on the list, as the host's relay last reported it to the metrics pipeline (seconds behind at most; absent if that could not be read)",
      ),
  })
  .meta({ id: "HostView", description: "A registered host" });
export type HostView = z.infer<typeof HostView>;

/** Most tags one host-list filter takes (as many as the event stream's tag filter). */
export const MAX_HOST_FILTER_TAGS = 10;

export const HostListQuery = z.strictObject({
  ...PageQuery,
  status: HostStatus.optional(),
  tags: z
    .string()
    .transform((s) => [...new Set(s.split(",").map((t) => t.trim()))])
    .pipe(z.array(Tag).min(1).max(MAX_HOST_FILTER_TAGS))
    .optional()
    .describe(`Comma-separated tags (at most ${MAX_HOST_FILTER_TAGS}); with \`match\`, hosts carrying any (default) or all of them`),
  match: z.enum(["any", "all"]).default("any").describe("How `tags` combine: `any` (default) or `all`"),
  q: z
    .string()
    .min(1)
    .max(64)
    .optional()
    .describe("Text: hosts whose hostname contains it (case-insensitive) or whose host_id starts with it"),
});
export type HostListQuery = z.infer<typeof HostListQuery>;

export const Caller = z
  .object({
    sub: z.string().describe("The token's subject"),
    role: z.enum(["metrics", "viewer", "operator", "admin"]).describe("The highest role the token carries"),
  })
  .meta({ id: "Caller", description: "The authenticated caller (`GET /api/whoami`)" });
export type Caller = z.infer<typeof Caller>;

export const HostPage = Page(HostView, "HostPage");

/** RFC 9457 problem details, with our stable `code` and, for validation, the failing fields. */
export const Problem = z
  .object({
    type: z.string().describe("URI naming the problem type"),
    title: z.string().describe("Short, human-readable summary of the problem type"),
    status: z.int().describe("The HTTP status"),
    code: z.string().describe("Stable error code, e.g. `ERR_VALIDATION`; each code has exactly one status"),
    detail: z.string().optional().describe("What went wrong this time"),
    instance: z.string().optional().describe("The request path"),
    errors: z
      .array(
        z.object({
          path: z.string().describe("Dotted path of the field, e.g. `packages.0`"),
          message: z.string(),
        }),
      )
      .optional()
      .describe("For validation errors: each failing field"),
    request_id: z.string().optional().describe("The request's id, as in its `X-Request-Id` header, to find its log lines and audit record"),
  })
  .meta({ id: "Problem", description: "RFC 9457 problem details, with a stable `code` and, for validation, the failing fields" });
export type Problem = z.infer<typeof Problem>;

// ---- enrolment ----

/** Body of `POST /api/enrollment-tokens`. */
export const EnrollmentTokenCreate = z
  .strictObject({
    ttl_seconds: z
      .int()
      .min(60)
      .max(7 * 24 * 3600)
      .default(3600)
      .describe("Lifetime in seconds. Default 3600 (1 h), at most 7 days."),
    tags: z.array(Tag).max(64).default([]).describe("Tags the enrolled host receives"),
  })
  .meta({ id: "EnrollmentTokenCreate", description: "Lifetime and tags of a new enrolment token" });
export type EnrollmentTokenCreate = z.infer<typeof EnrollmentTokenCreate>;

export const EnrollmentTokenCreated = z
  .object({
    token: z.string().describe("The token for `POST /agent/enroll`; shown once, only its hash is stored"),
    token_id: Uuid,
    expires_at: Rfc3339,
    tags: z.array(z.string()).describe("Tags the enrolled host will receive"),
  })
  .meta({ id: "EnrollmentTokenCreated", description: "A new single-use enrolment token" });
export type EnrollmentTokenCreated = z.infer<typeof EnrollmentTokenCreated>;

const CsrPem = z
  .string()
  .max(16 * 1024)
  .regex(/^-----BEGIN CERTIFICATE REQUEST-----[\s\S]+-----END CERTIFICATE REQUEST-----\s*$/, {
    message: "expected a PEM certificate request",
  })
  .describe("PKCS#10 certificate request (PEM) for an ECDSA P-256 or P-384 key the agent generated");

/** Body of `POST /agent/enroll`. */
export const EnrollRequest = z
  .strictObject({
    token: z.string().min(1).max(200).describe("A single-use token from `POST /api/enrollment-tokens`"),
    csr: CsrPem,
    hostname: Hostname,
  })
  .meta({ id: "EnrollRequest", description: "Enrolment: token, the agent's CSR and its host name" });
export type EnrollRequest = z.infer<typeof EnrollRequest>;

export const EnrollResponse = z
  .object({
    host_id: Uuid.describe("The host's id, also in the certificate"),
    certificate: z.string().describe("The agent's client certificate (PEM)"),
    ca_certificate: z.string().describe("The fleet CA certificate (PEM)"),
    not_after: Rfc3339.describe("When the certificate expires"),
  })
  .meta({ id: "IssuedCertificate", description: "A client certificate the fleet CA issued to an agent, on enrolment or renewal" });
export type EnrollResponse = z.infer<typeof EnrollResponse>;

/** Body of `POST /agent/renew` (over mutual TLS with the current certificate). */
export const RenewRequest = z.strictObject({ csr: CsrPem }).meta({ id: "RenewRequest", description: "A CSR for the agent's new key" });
export type RenewRequest = z.infer<typeof RenewRequest>;

export const RenewResponse = EnrollResponse;
export type RenewResponse = EnrollResponse;
