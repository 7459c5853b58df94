import type { CommandResult, HelloMessage, ResponseMessage, ResponseStatus, StatusMessage } from "../schemas/index.ts";
import {
  AckMessage,
  CancelMessage,
  CommandMessage,
  decodeFrame,
  ErrorMessage,
  FrameErrorCode,
  Limits,
  nowRfc3339,
  WelcomeMessage,
} from "../schemas/index.ts";
import { utf8Suffix } from "./executors/output-tail.ts";

export type RelayMessage = CommandMessage | AckMessage | ErrorMessage | WelcomeMessage | CancelMessage;

export type ParsedRelayFrame =
  | { ok: true; frame: RelayMessage }
  | { ok: false; code: string; detail: string; originalId: string | undefined };

// One schema per message type, so each frame is parsed exactly once and errors name the right fields.
const SCHEMAS = { command: CommandMessage, ack: AckMessage, error: ErrorMessage, welcome: WelcomeMessage, cancel: CancelMessage } as const;

/** Parses a relay frame at the boundary; never throws. */
export function parseRelayFrame(raw: string): ParsedRelayFrame {
  const decoded = decodeFrame(raw);
  if (!decoded.ok) return { ...decoded, originalId: undefined };
  const json = decoded.json;
  const obj = (typeof json === "object" && json !== null ? json : {}) as { message_id?: unknown; message_type?: unknown };
  const originalId = typeof obj.message_id === "string" && /^[0-9a-f-]{36}$/i.test(obj.message_id) ? obj.message_id : undefined;
  const type = obj.message_type;
  const schema = typeof type === "string" && Object.hasOwn(SCHEMAS, type) ? SCHEMAS[type as keyof typeof SCHEMAS] : undefined;
  if (!schema) {
    return {
      ok: false,
      code: FrameErrorCode.INVALID,
      detail: `message_type ${JSON.stringify(type)} is not one an agent accepts`,
      originalId,
    };
  }
  const parsed = schema.safeParse(json);
  if (!parsed.success) {
    const detail = parsed.error.issues.map((i) => `${i.path.join(".") || "(frame)"}: ${i.message}`).join("; ");
    return { ok: false, code: FrameErrorCode.INVALID, detail: detail.slice(0, 4096), originalId };
  }
  return { ok: true, frame: parsed.data };
}

function envelope(now: number) {
  return { message_id: crypto.randomUUID(), timestamp: nowRfc3339(now) };
}

export function ackFrame(originalId: string, now = Date.now()): AckMessage {
  return { ...envelope(now), message_type: "ack", original_message_id: originalId };
}

export function errorFrame(code: string, detail: string, originalId?: string, now = Date.now()): ErrorMessage {
  return {
    ...envelope(now),
    message_type: "error",
    ...(originalId ? { original_message_id: originalId } : {}),
    code,
    detail: detail.slice(0, 4096),
  };
}

export function statusFrame(
  commandId: string,
  state: StatusMessage["state"],
  extra: { output?: string; seq?: number } = {},
  now = Date.now(),
): StatusMessage {
  return { ...envelope(now), message_type: "status", original_message_id: commandId, state, ...extra };
}

/**
 * A response frame that fits the wire: output is already bounded in bytes, but JSON escaping
 * (control characters) can still grow it, so the output's front is cut until the frame fits.
 */
export function responseFrame(commandId: string, status: ResponseStatus, result: CommandResult, now = Date.now()): ResponseMessage {
  const frame: ResponseMessage = { ...envelope(now), message_type: "response", original_message_id: commandId, status, result };
  const budget = Limits.MAX_FRAME_BYTES - 1024;
  let size = Buffer.byteLength(JSON.stringify(frame));
  while (size > budget && typeof frame.result.output === "string" && frame.result.output.length > 0) {
    const out: string = frame.result.output;
    frame.result = {
      ...frame.result,
      output: utf8Suffix(out, Math.max(0, Buffer.byteLength(out) - (size - budget) - 64)),
      output_cut_to_fit_frame: true,
    };
    size = Buffer.byteLength(JSON.stringify(frame));
  }
  return frame;
}

export function helloFrame(fields: Omit<HelloMessage, "message_id" | "timestamp" | "message_type">, now = Date.now()): HelloMessage {
  return { ...envelope(now), message_type: "hello", ...fields };
}
