import { z } from "zod";
import { CommandSpec, CommandType } from "./commands.ts";
import { Defaults, Limits, PROTOCOL_VERSION } from "./constants.ts";
import { Hostname, Rfc3339, Uuid } from "./primitives.ts";

/**
 * Every frame carries the envelope. Unknown fields are dropped, not refused, so
 * a newer peer can add fields without breaking an older one.
 */
const envelope = {
  message_id: Uuid,
  timestamp: Rfc3339,
};

const Output = z.string().max(Limits.MAX_OUTPUT_CHARS);

/** relay → agent. `attempt` and `timeout` default for peers that send the seed's shape. */
export const CommandMessage = z
  .object({
    ...envelope,
    message_type: z.literal("command"),
    target_host: Uuid,
    expires_at: Rfc3339,
    attempt: z.int().min(1).default(1),
    timeout: z.int().min(Limits.MIN_TIMEOUT_S).max(Limits.MAX_TIMEOUT_S).default(Defaults.TIMEOUT_S),
  })
  .and(CommandSpec);
export type CommandMessage = z.infer<typeof CommandMessage>;

/** Both directions: "I have stored the frame with this id". */
export const AckMessage = z.object({
  ...envelope,
  message_type: z.literal("ack"),
  original_message_id: Uuid,
});
export type AckMessage = z.infer<typeof AckMessage>;

/** agent → relay: execution progress of a command. */
export const StatusMessage = z.object({
  ...envelope,
  message_type: z.literal("status"),
  original_message_id: Uuid,
  state: z.enum(["running", "progress"]),
  output: Output.optional(),
  seq: z.int().min(0).optional(),
});
export type StatusMessage = z.infer<typeof StatusMessage>;

/**
 * `cancelled`: the agent stopped the command because the relay sent `cancel` (before it ran, or by
 * killing its process group); the result carries any output produced so far.
 */
export const ResponseStatus = z.enum(["success", "failure", "timeout", "rejected", "cancelled"]).meta({
  id: "ResponseStatus",
  description:
    "The agent's verdict on a command; `cancelled`: stopped because the relay sent `cancel` (before it ran, or by killing its process group)",
});
export type ResponseStatus = z.infer<typeof ResponseStatus>;

/** Common result fields; command types add their own (e.g. `installed_packages`). */
export const CommandResult = z
  .looseObject({
    output: Output.optional().describe("Output of the command (bounded)"),
    exit_code: z
      .int()
      .nullable()
      .optional()
      .describe("Exit code of the process; null when there is none (killed by a signal, never started, outcome unknown)"),
    execution_time: z.number().min(0).optional().describe("Seconds the command ran"),
    installed_packages: z.array(z.string()).optional().describe("package_operation: packages installed or upgraded"),
    removed_packages: z.array(z.string()).optional().describe("package_operation: packages removed"),
    reason: z.string().max(4096).optional().describe("Why the command failed or was rejected"),
  })
  .meta({ id: "CommandResult", description: "The outcome an agent reported; command types may add fields of their own" });
export type CommandResult = z.infer<typeof CommandResult>;

/** agent → relay: the outcome of a command. */
export const ResponseMessage = z.object({
  ...envelope,
  message_type: z.literal("response"),
  original_message_id: Uuid,
  status: ResponseStatus,
  result: CommandResult.default({}),
});
export type ResponseMessage = z.infer<typeof ResponseMessage>;

export const ErrorMessage = z.object({
  ...envelope,
  message_type: z.literal("error"),
  original_message_id: Uuid.optional(),
  code: z.string().min(1).max(100),
  detail: z.string().max(Limits.MAX_ERROR_DETAIL_CHARS),
});
export type ErrorMessage = z.infer<typeof ErrorMessage>;

/** agent → relay, first frame on every connection. */
export const HelloMessage = z.object({
  ...envelope,
  message_type: z.literal("hello"),
  agent_version: z.string().min(1).max(64),
  protocol_version: z.int().min(1),
  hostname: Hostname,
  os: z.object({
    name: z.string().max(128),
    version: z.string().max(128).optional(),
    kernel: z.string().max(128).optional(),
    arch: z.string().max(32).optional(),
  }),
  supported_commands: z.array(z.union([CommandType, z.string().max(64)])).max(64),
});
export type HelloMessage = z.infer<typeof HelloMessage>;

/**
 * relay → agent: stop the command `original_message_id`. The agent acks the cancel frame, then answers
 * the command with its real `response`: `cancelled` if it had not started or was killed, the stored
 * response if it had already finished. An id it has never seen is tombstoned (a later delivery of it
 * is refused) and answered `cancelled`.
 */
export const CancelMessage = z.object({
  ...envelope,
  message_type: z.literal("cancel"),
  original_message_id: Uuid,
});
export type CancelMessage = z.infer<typeof CancelMessage>;

/** relay → agent, answer to `hello`. */
export const WelcomeMessage = z.object({
  ...envelope,
  message_type: z.literal("welcome"),
  host_id: Uuid,
  server_time: Rfc3339,
  heartbeat_interval: z.int().min(1),
  protocol_version: z.int().min(1).default(PROTOCOL_VERSION),
});
export type WelcomeMessage = z.infer<typeof WelcomeMessage>;

/** Frames an agent may send to the relay. */
export const AgentFrame = z.discriminatedUnion("message_type", [HelloMessage, AckMessage, StatusMessage, ResponseMessage, ErrorMessage]);
export type AgentFrame = z.infer<typeof AgentFrame>;

/** Frames the relay may send to an agent (`command` is an intersection, so it is parsed on its own). */
export const RelayFrame = z.union([CommandMessage, AckMessage, ErrorMessage, WelcomeMessage, CancelMessage]);
export type RelayFrame = z.infer<typeof RelayFrame>;

/** Stable codes carried by `error` frames. */
export const FrameErrorCode = {
  MALFORMED_JSON: "ERR_FRAME_MALFORMED_JSON",
  INVALID: "ERR_FRAME_INVALID",
  TOO_LARGE: "ERR_FRAME_TOO_LARGE",
  BINARY_UNSUPPORTED: "ERR_FRAME_BINARY_UNSUPPORTED",
  UNKNOWN_COMMAND: "ERR_UNKNOWN_COMMAND",
  HELLO_REQUIRED: "ERR_HELLO_REQUIRED",
  /** A second `hello` on one connection; it is ignored. */
  HELLO_REPEATED: "ERR_HELLO_REPEATED",
  /** The connection sent frames faster than its budget; they are dropped. */
  RATE_LIMITED: "ERR_FRAME_RATE_LIMITED",
  /**
   * Agent → relay: the agent could not write its journal (disk full, read-only state directory), so
   * it neither acked nor ran the command named by `original_message_id`; the relay redelivers it.
   */
  AGENT_STORAGE: "ERR_AGENT_STORAGE",
} as const;

export function nowRfc3339(ms: number = Date.now()): string {
  return new Date(ms).toISOString();
}
