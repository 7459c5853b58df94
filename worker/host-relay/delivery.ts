import type { CancelMessage, CommandMessage } from "../../schemas/index.ts";
import { nowRfc3339 } from "../../schemas/index.ts";
import { backoffMs } from "../backoff.ts";
import { M } from "../metrics/catalogue.ts";
import { attachment, HELLO_TIMEOUT_MS, liveSockets, type RelayContext, readySocket, sendFrame } from "./context.ts";
import { apply, executionDeadline } from "./lifecycle.ts";
import { addMetrics } from "./metrics-outbox.ts";
import { nextRegistryCheck } from "./operations.ts";
import type { CommandRow } from "./storage.ts";

export function commandFrame(rc: RelayContext, row: CommandRow, attempt: number, now: number): CommandMessage {
  return {
    message_id: row.message_id,
    timestamp: nowRfc3339(now),
    message_type: "command",
    command_type: row.command_type,
    target_host: rc.store.getMeta("host_id")!,
    parameters: JSON.parse(row.parameters),
    expires_at: nowRfc3339(row.expires_at),
    attempt,
    timeout: row.timeout_s,
  } as CommandMessage;
}

/** Sends one attempt of `row`; false if the socket refused it (nothing recorded then). */
function sendAttempt(rc: RelayContext, ws: WebSocket, row: CommandRow, now: number): boolean {
  const attempt = row.attempts + 1;
  if (!sendFrame(ws, commandFrame(rc, row, attempt, now))) return false;
  const { ackTimeoutMs, retryBaseMs, retryCapMs } = rc.config;
  const jitter = backoffMs(attempt, { baseMs: retryBaseMs, capMs: retryCapMs }, () => rc.clock.random());
  rc.store.commands.markSent(row, attempt, now, now + ackTimeoutMs + jitter);
  if (attempt > 1) addMetrics(rc, now, (w) => w.count(M.RESENDS));
  return true;
}

/**
 * Sends queued commands in acceptance order while the in-flight window has room.
 * Expired or exhausted commands met on the way leave the queue instead.
 */
export function pump(rc: RelayContext, now: number): void {
  const ws = readySocket(rc);
  if (!ws) return;
  let room = rc.config.maxInFlight - rc.store.commands.countInFlight();
  while (room > 0) {
    const batch = rc.store.commands.nextToSend(room);
    if (batch.length === 0) return;
    for (const row of batch) {
      if (row.expires_at <= now) {
        apply(rc, row, { kind: "expire" }, now);
      } else if (row.attempts >= row.max_attempts) {
        apply(rc, row, { kind: "attempts_spent" }, now, { detail: `no ack after ${row.attempts} attempts` });
      } else if (sendAttempt(rc, ws, row, now)) {
        room--;
      } else {
        return;
      }
    }
  }
}

/** Resends commands whose ack did not come in time, or dead-letters them when attempts are spent. */
export function retryDue(rc: RelayContext, now: number): void {
  const ws = readySocket(rc);
  for (const row of rc.store.commands.dueRetries(now)) {
    if (row.attempts >= row.max_attempts) {
      apply(rc, row, { kind: "attempts_spent" }, now, { detail: `no ack after ${row.attempts} attempts` });
    } else if (!ws || !sendAttempt(rc, ws, row, now)) {
      // No connection to resend on: it waits, spending no attempt, until the next one.
      rc.store.commands.clearInFlight();
      return;
    }
  }
}

export function expireDue(rc: RelayContext, now: number): void {
  for (const row of rc.store.commands.dueExpiries(now)) apply(rc, row, { kind: "expire" }, now);
}

/**
 * Bounds what the agent holds. A delivered command waiting behind an earlier one on a connected agent
 * is not late (the agent runs one at a time): its deadline moves on. Otherwise, past `timeout + grace`,
 * a connected agent is sent `cancel`, and an absent one's command ends `timed_out`.
 */
export function deadlinesDue(rc: RelayContext, now: number): void {
  const ws = readySocket(rc);
  const held = ws ? rc.store.commands.heldByAgent() : [];
  for (const row of rc.store.commands.dueDeadlines(now)) {
    if (ws && row.state === "delivered" && held[0] && held[0].message_id !== row.message_id) {
      rc.store.commands.setDeadline(row, executionDeadline(rc, row, now));
      continue;
    }
    const caused = apply(rc, row, { kind: "deadline", agentConnected: ws !== null }, now, {
      deadline_at: now + rc.config.executionGraceMs,
    });
    if (caused && row.state === "cancelling" && ws) sendCancel(rc, ws, row, now);
  }
}

/** Sends the cancel frame for a cancelling command; the agent acks it, then answers the command. */
export function sendCancel(rc: RelayContext, ws: WebSocket, row: CommandRow, now: number): boolean {
  const frame: CancelMessage = {
    message_id: crypto.randomUUID(),
    timestamp: nowRfc3339(now),
    message_type: "cancel",
    original_message_id: row.message_id,
  };
  if (!sendFrame(ws, frame)) return false;
  rc.store.commands.markCancelSent(row, frame.message_id, now);
  return true;
}

/** Cancel frames not yet on this connection, or unacked past the ack timeout, go (again). */
export function cancelsDue(rc: RelayContext, now: number): void {
  const ws = readySocket(rc);
  if (!ws) return;
  for (const row of rc.store.commands.cancelsToSend(now - rc.config.ackTimeoutMs)) {
    if (!sendCancel(rc, ws, row, now)) return;
  }
}

/** When the stale check for `ws` is due: hello deadline, or last sign of life plus the stale window. */
export function socketDeadline(rc: RelayContext, ws: WebSocket): number {
  const a = attachment(rc, ws);
  if (a.helloAt === null) return a.connectedAt + HELLO_TIMEOUT_MS;
  return lastActivity(rc, ws) + rc.config.staleAfterS * 1000;
}

export function lastActivity(rc: RelayContext, ws: WebSocket): number {
  const a = attachment(rc, ws);
  const pinged = rc.ctx.getWebSocketAutoResponseTimestamp(ws)?.getTime() ?? 0;
  return Math.max(a.lastFrameAt, pinged);
}

/** Points the single alarm at the earliest due row or socket deadline. */
export function scheduleAlarm(rc: RelayContext): void {
  const sockets = liveSockets(rc);
  const candidates = [
    rc.store.commands.nextDue(rc.config.retentionDays * 86_400_000, rc.config.ackTimeoutMs),
    rc.store.outbox.nextDue(),
    sockets.length > 0 ? nextRegistryCheck(rc) : null,
    ...sockets.map((ws) => socketDeadline(rc, ws)),
  ].filter((t): t is number => t !== null);
  const next = candidates.length ? Math.min(...candidates) : null;
  if (next === rc.alarmAt) return;
  if (next === null) void rc.ctx.storage.deleteAlarm();
  else void rc.ctx.storage.setAlarm(next);
  rc.alarmAt = next;
}
