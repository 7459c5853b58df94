import type { AckMessage, AgentFrame, ErrorMessage, ResponseMessage, StatusMessage } from "../../schemas/index.ts";
import { AgentFrame as AgentFrameSchema, FrameErrorCode, decodeFrame, nowRfc3339 } from "../../schemas/index.ts";
import { fieldErrors } from "../errors.ts";
import { type RelayContext, attachment, sendFrame } from "./context.ts";
import { onHello, touch } from "./connection.ts";
import { pump, scheduleAlarm } from "./delivery.ts";
import type { CommandRow } from "./storage.ts";

/** Entry point for every frame an agent sends; never throws, never closes the socket for a bad frame. */
export function handleAgentFrame(rc: RelayContext, ws: WebSocket, raw: string | ArrayBuffer, now: number): void {
  touch(ws, now);
  const parsed = parseFrame(raw);
  if (!parsed.ok) {
    rejectFrame(rc, ws, parsed.code, parsed.detail, parsed.originalId, now);
    return;
  }
  const frame = parsed.frame;
  if (frame.message_type !== "hello" && attachment(ws).helloAt === null) {
    rejectFrame(rc, ws, FrameErrorCode.HELLO_REQUIRED, "the first frame must be hello", frame.message_id, now);
    return;
  }
  switch (frame.message_type) {
    case "hello":
      onHello(rc, ws, frame, now);
      break;
    case "ack":
      onAck(rc, frame, now);
      break;
    case "status":
      onStatus(rc, ws, frame, now);
      break;
    case "response":
      onResponse(rc, ws, frame, now);
      break;
    case "error":
      onAgentError(rc, frame, now);
      break;
  }
  scheduleAlarm(rc);
}

type Parsed =
  | { ok: true; frame: AgentFrame }
  | { ok: false; code: string; detail: string; originalId: string | undefined };

export function parseFrame(raw: string | ArrayBuffer): Parsed {
  if (typeof raw !== "string") {
    return { ok: false, code: FrameErrorCode.BINARY_UNSUPPORTED, detail: "frames are JSON text", originalId: undefined };
  }
  const decoded = decodeFrame(raw);
  if (!decoded.ok) return { ...decoded, originalId: undefined };
  const json = decoded.json;
  const result = AgentFrameSchema.safeParse(json);
  if (!result.success) {
    const detail = fieldErrors(result.error)
      .map((e) => `${e.path}: ${e.message}`)
      .join("; ");
    const id = (json as { message_id?: unknown } | null)?.message_id;
    return { ok: false, code: FrameErrorCode.INVALID, detail, originalId: typeof id === "string" && id.length <= 64 ? id : undefined };
  }
  return { ok: true, frame: result.data };
}

function rejectFrame(rc: RelayContext, ws: WebSocket, code: string, detail: string, originalId: string | undefined, now: number): void {
  rc.store.recordFrameError(code, detail, now);
  sendFrame(ws, {
    message_id: crypto.randomUUID(),
    timestamp: nowRfc3339(now),
    message_type: "error",
    ...(originalId && /^[0-9a-f-]{36}$/i.test(originalId) ? { original_message_id: originalId } : {}),
    code,
    detail,
  });
}

function ackFrame(ws: WebSocket, frameId: string, now: number): void {
  sendFrame(ws, { message_id: crypto.randomUUID(), timestamp: nowRfc3339(now), message_type: "ack", original_message_id: frameId });
}

/**
 * The agent refused a frame. When it names a command the agent could not even parse, resending it
 * would only burn attempts: the command fails now, with the agent's reason.
 */
function onAgentError(rc: RelayContext, frame: ErrorMessage, now: number): void {
  rc.store.recordFrameError(`agent:${frame.code}`, frame.detail, now);
  if (!frame.original_message_id || !AGENT_REFUSALS.has(frame.code)) return;
  const row = rc.store.getCommand(frame.original_message_id);
  if (!row || row.state !== "queued") return;
  rc.store.transition(row, "failed", now, `agent refused the command frame (${frame.code}): ${frame.detail}`, {
    response_status: "rejected",
    result: JSON.stringify({ reason: frame.detail }),
  });
  pump(rc, now);
}

/** Agent error codes that mean "this command frame will never be accepted as sent". */
const AGENT_REFUSALS: ReadonlySet<string> = new Set([FrameErrorCode.INVALID, FrameErrorCode.MALFORMED_JSON, FrameErrorCode.TOO_LARGE]);

/** The agent recorded the command durably: it is delivered, and its window slot frees up. */
function onAck(rc: RelayContext, frame: AckMessage, now: number): void {
  const row = rc.store.getCommand(frame.original_message_id);
  if (!row || row.state !== "queued") return;
  rc.store.transition(row, "delivered", now);
  pump(rc, now);
}

/** A status or response proves delivery even when the ack was lost. */
function ensureDelivered(rc: RelayContext, row: CommandRow, now: number): void {
  if (row.state === "queued") {
    rc.store.transition(row, "delivered", now, "implied by a later frame from the agent");
    pump(rc, now);
  }
}

function knownCommand(rc: RelayContext, ws: WebSocket, frameId: string, commandId: string, now: number): CommandRow | null {
  const row = rc.store.getCommand(commandId);
  if (row) return row;
  // Ack anyway so the agent stops resending something this relay will never accept.
  rejectFrame(rc, ws, FrameErrorCode.UNKNOWN_COMMAND, `no command ${commandId} on this host`, frameId, now);
  ackFrame(ws, frameId, now);
  return null;
}

function onStatus(rc: RelayContext, ws: WebSocket, frame: StatusMessage, now: number): void {
  const row = knownCommand(rc, ws, frame.message_id, frame.original_message_id, now);
  if (!row) return;
  if (!isTerminal(row)) {
    ensureDelivered(rc, row, now);
    if (row.state === "delivered") rc.store.transition(row, "running", now);
    if (frame.output) rc.store.appendOutput(row, frame.message_id, frame.seq ?? null, frame.output, now);
  }
  ackFrame(ws, frame.message_id, now);
}

const FINAL_STATE = {
  success: "succeeded",
  failure: "failed",
  timeout: "timed_out",
  rejected: "failed",
  cancelled: "cancelled",
} as const;

function onResponse(rc: RelayContext, ws: WebSocket, frame: ResponseMessage, now: number): void {
  const row = knownCommand(rc, ws, frame.message_id, frame.original_message_id, now);
  if (!row) return;
  const gaveUp = (row.state === "dead_lettered" || row.state === "expired") && row.response_status === null;
  if (gaveUp) {
    // The relay had stopped trying, yet the agent ran it: record the truth, not the give-up.
    const previous = row.state;
    rc.store.transition(row, FINAL_STATE[frame.status], now, `response from the agent after the command was ${previous}`, {
      response_status: frame.status,
      result: JSON.stringify(frame.result),
    });
    rc.store.removeDeadLetter(row.message_id);
  } else if (isTerminal(row)) {
    // A redelivered response, or one that lost a race with cancel: keep the first outcome, note the other.
    if (row.response_status === null) {
      rc.store.addTransition(row.message_id, row.state, now, null, `late response from agent: ${frame.status}`);
    }
  } else {
    ensureDelivered(rc, row, now);
    const detail = frame.status === "rejected" ? `rejected by agent${frame.result.reason ? `: ${frame.result.reason}` : ""}` : null;
    rc.store.transition(row, FINAL_STATE[frame.status], now, detail, {
      response_status: frame.status,
      result: JSON.stringify(frame.result),
    });
  }
  ackFrame(ws, frame.message_id, now);
}

function isTerminal(row: CommandRow): boolean {
  return !["queued", "delivered", "running"].includes(row.state);
}
