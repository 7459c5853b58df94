import type { AckMessage, AgentFrame, ErrorMessage, ResponseMessage, StatusMessage } from "../../schemas/index.ts";
import { AgentFrame as AgentFrameSchema, CloseCode, decodeFrame, FrameErrorCode, Limits, nowRfc3339 } from "../../schemas/index.ts";
import { fieldErrors } from "../errors.ts";
import { closeAgent, onHello, touch } from "./connection.ts";
import { type FrameBudget, type RelayContext, sendFrame } from "./context.ts";
import { pump } from "./delivery.ts";
import { apply, executionDeadline } from "./lifecycle.ts";
import { recordOutput } from "./notify.ts";
import type { CommandRow } from "./storage.ts";

/**
 * Entry point for every frame an agent sends; never throws, never closes the socket for one bad frame.
 * Frames that move a command forward (the ack, status and response the relay's own sends call for)
 * are free: they are bounded by what the relay sent. Every other frame (invalid, repeated, unknown,
 * a no-op, streamed output) draws on the connection's budget.
 */
export function handleAgentFrame(rc: RelayContext, ws: WebSocket, raw: string | ArrayBuffer, now: number): void {
  const greeted = touch(rc, ws, now).helloAt !== null;
  const budget = frameBudget(rc, ws, now);
  if (budget.tokens < 1) {
    refuse(rc, ws, budget, now);
    return;
  }
  if (!dispatch(rc, ws, raw, greeted, now)) budget.tokens -= 1;
}

/** Handles one frame; true when it moved a command forward. */
function dispatch(rc: RelayContext, ws: WebSocket, raw: string | ArrayBuffer, greeted: boolean, now: number): boolean {
  const parsed = parseFrame(raw);
  if (!parsed.ok) {
    rejectFrame(rc, ws, parsed.code, parsed.detail, parsed.originalId, now);
    return false;
  }
  const frame = parsed.frame;
  if (frame.message_type !== "hello" && !greeted) {
    rejectFrame(rc, ws, FrameErrorCode.HELLO_REQUIRED, "the first frame must be hello", frame.message_id, now);
    return false;
  }
  switch (frame.message_type) {
    case "hello":
      if (greeted) {
        rejectFrame(rc, ws, FrameErrorCode.HELLO_REPEATED, "hello was already received on this connection", frame.message_id, now);
      } else {
        onHello(rc, ws, frame, now);
      }
      return false;
    case "ack":
      return onAck(rc, frame, now);
    case "status":
      return onStatus(rc, ws, frame, now);
    case "response":
      return onResponse(rc, ws, frame, now);
    case "error":
      onAgentError(rc, frame, now);
      return false;
  }
}

/** The connection's token bucket, refilled for the time since its last frame. */
function frameBudget(rc: RelayContext, ws: WebSocket, now: number): FrameBudget {
  const { frameRatePerS, frameBurst } = rc.config;
  let b = rc.frameBudgets.get(ws);
  if (!b) {
    b = { tokens: frameBurst, refilledAt: now, refused: 0 };
    rc.frameBudgets.set(ws, b);
  }
  b.tokens = Math.min(frameBurst, b.tokens + ((now - b.refilledAt) * frameRatePerS) / 1000);
  b.refilledAt = now;
  // Only a connection that calmed down all the way (a full bucket) is forgiven its refusals.
  if (b.tokens >= frameBurst) b.refused = 0;
  return b;
}

/**
 * Past the burst, frames are dropped with one `error` frame; a connection that keeps sending past
 * twice the burst is closed (CloseCode.RATE_LIMITED). One agent therefore cannot flood its relay,
 * the fleet's events or the shared history.
 */
function refuse(rc: RelayContext, ws: WebSocket, b: FrameBudget, now: number): void {
  const { frameRatePerS, frameBurst } = rc.config;
  b.refused++;
  if (b.refused === 1) {
    rejectFrame(
      rc,
      ws,
      FrameErrorCode.RATE_LIMITED,
      `more than ${frameRatePerS} frames/s (burst ${frameBurst}) that advance no command; frames are dropped`,
      undefined,
      now,
    );
  } else if (b.refused > frameBurst) {
    closeAgent(rc, ws, CloseCode.RATE_LIMITED, "frame rate limit exceeded", now);
  }
}

type Parsed = { ok: true; frame: AgentFrame } | { ok: false; code: string; detail: string; originalId: string | undefined };

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
  rc.store.frameErrors.record(code, detail, now);
  sendFrame(ws, {
    message_id: crypto.randomUUID(),
    timestamp: nowRfc3339(now),
    message_type: "error",
    ...(originalId && /^[0-9a-f-]{36}$/i.test(originalId) ? { original_message_id: originalId } : {}),
    code,
    // A frame failing many fields would otherwise give a detail longer than the schema allows the agent to read.
    detail: detail.slice(0, Limits.MAX_ERROR_DETAIL_CHARS),
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
  rc.store.frameErrors.record(`agent:${frame.code}`, frame.detail, now);
  if (!frame.original_message_id || !AGENT_REFUSALS.has(frame.code)) return;
  const row = rc.store.commands.get(frame.original_message_id);
  if (!row) return;
  const caused = apply(rc, row, { kind: "agent_refused" }, now, {
    detail: `agent refused the command frame (${frame.code}): ${frame.detail}`,
    response_status: "rejected",
    result: JSON.stringify({ reason: frame.detail }),
  });
  if (caused) pump(rc, now);
}

/** Agent error codes that mean "this command frame will never be accepted as sent". */
const AGENT_REFUSALS: ReadonlySet<string> = new Set([FrameErrorCode.INVALID, FrameErrorCode.MALFORMED_JSON, FrameErrorCode.TOO_LARGE]);

/**
 * The agent recorded a command durably (it is delivered, and its window slot frees up), or it
 * received a cancel frame (no resend needed; its response to the command follows).
 */
function onAck(rc: RelayContext, frame: AckMessage, now: number): boolean {
  const row = rc.store.commands.get(frame.original_message_id);
  if (!row) {
    const cancelled = rc.store.commands.byCancelFrame(frame.original_message_id);
    if (cancelled) rc.store.commands.markCancelAcked(cancelled);
    return cancelled !== null;
  }
  if (!apply(rc, row, { kind: "ack" }, now, { deadline_at: executionDeadline(rc, row, now) })) return false;
  pump(rc, now);
  return true;
}

function knownCommand(rc: RelayContext, ws: WebSocket, frameId: string, commandId: string, now: number): CommandRow | null {
  const row = rc.store.commands.get(commandId);
  if (row) return row;
  // Ack anyway so the agent stops resending something this relay will never accept.
  rejectFrame(rc, ws, FrameErrorCode.UNKNOWN_COMMAND, `no command ${commandId} on this host`, frameId, now);
  ackFrame(ws, frameId, now);
  return null;
}

/** A status or response proves delivery even when the ack was lost: the history shows the implied step. */
function impliedAck(rc: RelayContext, row: CommandRow, now: number): boolean {
  if (row.state !== "queued") return false;
  if (
    !apply(rc, row, { kind: "ack" }, now, {
      detail: "implied by a later frame from the agent",
      deadline_at: executionDeadline(rc, row, now),
    })
  ) {
    return false;
  }
  pump(rc, now);
  return true;
}

function onStatus(rc: RelayContext, ws: WebSocket, frame: StatusMessage, now: number): boolean {
  const row = knownCommand(rc, ws, frame.message_id, frame.original_message_id, now);
  if (!row) return false;
  const implied = impliedAck(rc, row, now);
  // Execution starts now: the deadline counts from here.
  const started = apply(rc, row, { kind: "running" }, now, { deadline_at: executionDeadline(rc, row, now) }) !== null;
  if (frame.output && (row.state === "running" || row.state === "cancelling")) {
    const stored = rc.store.outputs.append(row, frame.message_id, frame.seq ?? null, frame.output, now);
    if (stored === "stored") recordOutput(rc, row, frame.output, frame.seq ?? null, now);
    if (stored === "truncated")
      rc.store.commands.addHistory(row.message_id, row.state, now, null, "output truncated: stored output limit reached");
  }
  ackFrame(ws, frame.message_id, now);
  // Streamed output is not free: it is what a chatty or hostile agent could send without end.
  return implied || started;
}

/** The agent's word on a command: it decides the final state, even over a give-up by the relay. */
function onResponse(rc: RelayContext, ws: WebSocket, frame: ResponseMessage, now: number): boolean {
  const row = knownCommand(rc, ws, frame.message_id, frame.original_message_id, now);
  if (!row) return false;
  impliedAck(rc, row, now);
  const reason = frame.status === "rejected" && frame.result.reason ? `rejected by the agent: ${frame.result.reason}` : undefined;
  const caused = apply(rc, row, { kind: "response", status: frame.status }, now, {
    ...(reason && (row.state === "delivered" || row.state === "running") ? { detail: reason } : {}),
    response_status: frame.status,
    result: JSON.stringify(frame.result),
  });
  ackFrame(ws, frame.message_id, now);
  return caused !== null;
}
