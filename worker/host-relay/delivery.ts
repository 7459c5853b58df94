import type { CommandMessage } from "../../schemas/index.ts";
import { nowRfc3339 } from "../../schemas/index.ts";
import { type RelayContext, HELLO_TIMEOUT_MS, attachment, liveSockets, readySocket, sendFrame } from "./context.ts";
import type { CommandRow } from "./storage.ts";

/**
 * Full-jitter exponential backoff: uniform in [0, min(cap, base·2^(attempt-1))], in whole
 * milliseconds because the alarm keeps only whole milliseconds and must not fire before the row is due.
 */
export function backoffMs(attempt: number, baseMs: number, capMs: number): number {
  return Math.floor(Math.random() * Math.min(capMs, baseMs * 2 ** Math.min(attempt - 1, 30)));
}

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
  rc.store.markSent(row.message_id, attempt, now, now + ackTimeoutMs + backoffMs(attempt, retryBaseMs, retryCapMs));
  row.attempts = attempt;
  return true;
}

/**
 * Sends queued commands in acceptance order while the in-flight window has room.
 * Expired or exhausted commands met on the way leave the queue instead.
 */
export function pump(rc: RelayContext, now: number): void {
  const ws = readySocket(rc);
  if (!ws) return;
  let room = rc.config.maxInFlight - rc.store.countInFlight();
  while (room > 0) {
    const batch = rc.store.nextToSend(room);
    if (batch.length === 0) return;
    for (const row of batch) {
      if (row.expires_at <= now) {
        rc.store.transition(row, "expired", now, "delivery deadline passed before an ack");
      } else if (row.attempts >= row.max_attempts) {
        rc.store.deadLetter(row, now, `no ack after ${row.attempts} attempts`);
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
  for (const row of rc.store.dueRetries(now)) {
    if (row.attempts >= row.max_attempts) {
      rc.store.deadLetter(row, now, `no ack after ${row.attempts} attempts`);
    } else if (!ws || !sendAttempt(rc, ws, row, now)) {
      // No connection to resend on: it waits, spending no attempt, until the next one.
      rc.store.clearInFlight();
      return;
    }
  }
}

export function expireDue(rc: RelayContext, now: number): void {
  for (const row of rc.store.dueExpiries(now)) {
    rc.store.transition(row, "expired", now, "delivery deadline passed");
  }
}

/** When the stale check for `ws` is due: hello deadline, or last sign of life plus the stale window. */
export function socketDeadline(rc: RelayContext, ws: WebSocket): number {
  const a = attachment(ws);
  if (a.helloAt === null) return a.connectedAt + HELLO_TIMEOUT_MS;
  return lastActivity(rc, ws) + rc.config.staleAfterS * 1000;
}

export function lastActivity(rc: RelayContext, ws: WebSocket): number {
  const a = attachment(ws);
  const pinged = rc.ctx.getWebSocketAutoResponseTimestamp(ws)?.getTime() ?? 0;
  return Math.max(a.lastFrameAt, pinged);
}

/** Points the single alarm at the earliest due row or socket deadline. */
export function scheduleAlarm(rc: RelayContext): void {
  let next = rc.store.nextDue(rc.config.retentionDays * 86_400_000);
  for (const ws of liveSockets(rc)) {
    const deadline = socketDeadline(rc, ws);
    next = next === null ? deadline : Math.min(next, deadline);
  }
  if (next === rc.alarmAt) return;
  if (next === null) {
    void rc.ctx.storage.deleteAlarm();
  } else {
    void rc.ctx.storage.setAlarm(next);
  }
  rc.alarmAt = next;
}
