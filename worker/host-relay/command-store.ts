import type { CommandState, ResponseStatus } from "../../schemas/index.ts";
import { TERMINAL_STATES } from "../../schemas/index.ts";
import type { CommandFacts } from "./command-states.ts";

/** A command row as stored. Times are epoch milliseconds. */
export interface CommandRow {
  seq: number;
  message_id: string;
  command_type: string;
  parameters: string;
  timeout_s: number;
  max_attempts: number;
  expires_at: number;
  created_at: number;
  updated_at: number;
  state: CommandState;
  attempts: number;
  in_flight: number;
  last_attempt_at: number | null;
  retry_at: number | null;
  terminal_at: number | null;
  response_status: string | null;
  result: string | null;
  output_bytes: number;
  idempotency_key: string | null;
  request_hash: string | null;
  job_id: string | null;
  deadline_at: number | null;
  cancel_frame_id: string | null;
  cancel_sent_at: number | null;
  [key: string]: SqlStorageValue;
}

export interface NewCommand {
  message_id: string;
  command_type: string;
  parameters: unknown;
  timeout_s: number;
  max_attempts: number;
  expires_at: number;
  idempotency_key: string | null;
  request_hash: string | null;
  job_id: string | null;
}

/** One stored state change, as returned by `transition`. */
export interface Transition {
  message_id: string;
  job_id: string | null;
  from: CommandState | null;
  to: CommandState;
  at: number;
  attempt: number | null;
  detail: string | null;
  response_status: string | null;
}

/** What a move writes besides the state. */
export interface MoveExtra {
  response_status?: string;
  result?: string;
  /** Execution deadline to set (delivered/running/cancelling); cleared when omitted. */
  deadline_at?: number | null;
}

const TERMINAL_SQL = TERMINAL_STATES.map((s) => `'${s}'`).join(",");

export function factsOf(row: CommandRow): CommandFacts {
  return { state: row.state, sent: row.last_attempt_at !== null, responseStatus: row.response_status as ResponseStatus | null };
}

/** Owns the `commands` and `transitions` tables. Every method is synchronous, so callers compose them atomically. */
export class CommandStore {
  readonly #sql: SqlStorage;
  /** Bumped by every write to `commands`, so `nextDue` is recomputed only after one. */
  #version = 0;
  #due: { version: number; retentionMs: number; ackTimeoutMs: number; at: number | null } | null = null;

  constructor(sql: SqlStorage) {
    this.#sql = sql;
  }

  /** Every write to the `commands` table goes through here. */
  #write(query: string, ...bindings: SqlStorageValue[]): SqlStorageCursor<Record<string, SqlStorageValue>> {
    const cursor = this.#sql.exec(query, ...bindings);
    this.#version++;
    return cursor;
  }

  insert(c: NewCommand, now: number): { row: CommandRow; transition: Transition } {
    this.#write(
      `INSERT INTO commands (message_id, command_type, parameters, timeout_s, max_attempts, expires_at, created_at, updated_at, state, idempotency_key, request_hash, job_id)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'queued', ?, ?, ?)`,
      c.message_id,
      c.command_type,
      JSON.stringify(c.parameters),
      c.timeout_s,
      c.max_attempts,
      c.expires_at,
      now,
      now,
      c.idempotency_key,
      c.request_hash,
      c.job_id,
    );
    this.addHistory(c.message_id, "queued", now, null, null);
    const row = this.get(c.message_id)!;
    return {
      row,
      transition: {
        message_id: row.message_id,
        job_id: row.job_id,
        from: null,
        to: "queued",
        at: now,
        attempt: null,
        detail: null,
        response_status: null,
      },
    };
  }

  get(messageId: string): CommandRow | null {
    return this.#sql.exec<CommandRow>("SELECT * FROM commands WHERE message_id = ?", messageId).toArray()[0] ?? null;
  }

  byIdempotencyKey(key: string): CommandRow | null {
    return this.#sql.exec<CommandRow>("SELECT * FROM commands WHERE idempotency_key = ?", key).toArray()[0] ?? null;
  }

  byCancelFrame(frameId: string): CommandRow | null {
    return this.#sql.exec<CommandRow>("SELECT * FROM commands WHERE cancel_frame_id = ?", frameId).toArray()[0] ?? null;
  }

  /**
   * Stores a move the state machine allowed (callers go through `lifecycle.ts`, which asks it first)
   * and returns the transition. Nothing is in flight after a move; a requeue resets attempts.
   */
  move(row: CommandRow, to: CommandState, now: number, detail: string | null, extra: MoveExtra = {}): Transition {
    const terminal = TERMINAL_STATES.includes(to);
    const requeue = to === "queued";
    this.#write(
      `UPDATE commands SET state = ?, updated_at = ?, in_flight = 0, retry_at = NULL, terminal_at = ?,
         response_status = COALESCE(?, response_status), result = COALESCE(?, result), deadline_at = ?,
         attempts = CASE WHEN ? THEN 0 ELSE attempts END
       WHERE message_id = ?`,
      to,
      now,
      terminal ? now : null,
      extra.response_status ?? null,
      extra.result ?? null,
      terminal ? null : (extra.deadline_at ?? null),
      requeue ? 1 : 0,
      row.message_id,
    );
    const attempt = row.attempts || null;
    this.addHistory(row.message_id, to, now, attempt, detail);
    const from = row.state;
    row.state = to;
    row.in_flight = 0;
    row.retry_at = null;
    row.terminal_at = terminal ? now : null;
    row.deadline_at = terminal ? null : (extra.deadline_at ?? null);
    if (requeue) row.attempts = 0;
    if (extra.response_status) row.response_status = extra.response_status;
    if (extra.result) row.result = extra.result;
    return { message_id: row.message_id, job_id: row.job_id, from, to, at: now, attempt, detail, response_status: row.response_status };
  }

  /** A history line without a state change (a late response, a truncation). */
  addHistory(messageId: string, state: string, at: number, attempt: number | null, detail: string | null): void {
    this.#sql.exec(
      "INSERT INTO transitions (message_id, state, at, attempt, detail) VALUES (?, ?, ?, ?, ?)",
      messageId,
      state,
      at,
      attempt,
      detail,
    );
  }

  setLimits(row: CommandRow, expiresAt: number, maxAttempts: number): void {
    this.#write("UPDATE commands SET expires_at = ?, max_attempts = ? WHERE message_id = ?", expiresAt, maxAttempts, row.message_id);
    row.expires_at = expiresAt;
    row.max_attempts = maxAttempts;
  }

  /** Records a send: one more attempt, in flight until acked or `retryAt`. */
  markSent(row: CommandRow, attempt: number, now: number, retryAt: number): void {
    this.#write(
      "UPDATE commands SET attempts = ?, in_flight = 1, last_attempt_at = ?, retry_at = ?, updated_at = ? WHERE message_id = ?",
      attempt,
      now,
      retryAt,
      now,
      row.message_id,
    );
    row.attempts = attempt;
    row.in_flight = 1;
    row.last_attempt_at = now;
    row.retry_at = retryAt;
  }

  markCancelSent(row: CommandRow, frameId: string, now: number): void {
    this.#write("UPDATE commands SET cancel_frame_id = ?, cancel_sent_at = ? WHERE message_id = ?", frameId, now, row.message_id);
    row.cancel_frame_id = frameId;
    row.cancel_sent_at = now;
  }

  /** The agent acked the cancel frame: no resend; the deadline still bounds the wait for its response. */
  markCancelAcked(row: CommandRow): void {
    this.#write("UPDATE commands SET cancel_frame_id = NULL WHERE message_id = ?", row.message_id);
    row.cancel_frame_id = null;
  }

  setDeadline(row: CommandRow, deadlineAt: number): void {
    this.#write("UPDATE commands SET deadline_at = ? WHERE message_id = ?", deadlineAt, row.message_id);
    row.deadline_at = deadlineAt;
  }

  /**
   * The connection is gone: nothing is in flight any more; unacked commands wait for the next one.
   * Their last send is refunded (it never had its full ack window), so a flapping connection cannot
   * exhaust max_attempts for commands the agent may well be holding. The deadline still bounds them.
   * Cancel frames not yet acked are sent again on the next connection.
   */
  clearInFlight(): void {
    this.#write("UPDATE commands SET in_flight = 0, retry_at = NULL, attempts = MAX(attempts - 1, 0) WHERE in_flight = 1");
    this.#write("UPDATE commands SET cancel_sent_at = NULL WHERE state = 'cancelling' AND cancel_frame_id IS NOT NULL");
  }

  countInFlight(): number {
    return this.#sql.exec<{ n: number }>("SELECT COUNT(*) AS n FROM commands WHERE in_flight = 1").one().n;
  }

  /** Queued commands not in flight, oldest first. */
  nextToSend(limit: number): CommandRow[] {
    return this.#sql
      .exec<CommandRow>("SELECT * FROM commands WHERE state = 'queued' AND in_flight = 0 ORDER BY seq LIMIT ?", limit)
      .toArray();
  }

  dueRetries(now: number): CommandRow[] {
    return this.#sql.exec<CommandRow>("SELECT * FROM commands WHERE in_flight = 1 AND retry_at <= ? ORDER BY seq", now).toArray();
  }

  dueExpiries(now: number): CommandRow[] {
    return this.#sql.exec<CommandRow>("SELECT * FROM commands WHERE state = 'queued' AND expires_at <= ? ORDER BY seq", now).toArray();
  }

  dueDeadlines(now: number): CommandRow[] {
    return this.#sql
      .exec<CommandRow>("SELECT * FROM commands WHERE deadline_at IS NOT NULL AND deadline_at <= ? ORDER BY seq", now)
      .toArray();
  }

  /** Cancelling commands whose cancel frame must go (again): never sent on this connection, or unacked past `resendBefore`. */
  cancelsToSend(resendBefore: number): CommandRow[] {
    return this.#sql
      .exec<CommandRow>(
        `SELECT * FROM commands WHERE state = 'cancelling' AND (cancel_sent_at IS NULL OR (cancel_frame_id IS NOT NULL AND cancel_sent_at <= ?))
         ORDER BY seq`,
        resendBefore,
      )
      .toArray();
  }

  queued(): CommandRow[] {
    return this.#sql.exec<CommandRow>("SELECT * FROM commands WHERE state = 'queued' ORDER BY seq").toArray();
  }

  /** Commands the agent holds or is running, oldest first: they run one at a time on the agent, in this order. */
  heldByAgent(): CommandRow[] {
    return this.#sql.exec<CommandRow>("SELECT * FROM commands WHERE state IN ('delivered', 'running') ORDER BY seq").toArray();
  }

  /** Non-final commands per state (for the queue-depth gauge; read when metrics are sent, not per change). */
  activeByState(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const r of this.#sql.exec<{ state: string; n: number }>(
      `SELECT state, COUNT(*) AS n FROM commands WHERE state NOT IN (${TERMINAL_SQL}) GROUP BY state`,
    )) {
      out[r.state] = r.n;
    }
    return out;
  }

  queueDepth(): number {
    return this.#sql.exec<{ n: number }>(`SELECT COUNT(*) AS n FROM commands WHERE state NOT IN (${TERMINAL_SQL})`).one().n;
  }

  /** Earliest time a command needs the alarm: a retry, an expiry, an execution deadline, a cancel resend, or a prune. */
  nextDue(retentionMs: number, ackTimeoutMs: number): number | null {
    const memo = this.#due;
    if (memo && memo.version === this.#version && memo.retentionMs === retentionMs && memo.ackTimeoutMs === ackTimeoutMs) return memo.at;
    const at = this.#computeNextDue(retentionMs, ackTimeoutMs);
    this.#due = { version: this.#version, retentionMs, ackTimeoutMs, at };
    return at;
  }

  #computeNextDue(retentionMs: number, ackTimeoutMs: number): number | null {
    const row = this.#sql
      .exec<{ retry: number | null; expiry: number | null; deadline: number | null; cancel: number | null; prune: number | null }>(
        `SELECT
           (SELECT MIN(retry_at) FROM commands WHERE in_flight = 1) AS retry,
           (SELECT MIN(expires_at) FROM commands WHERE state = 'queued') AS expiry,
           (SELECT MIN(deadline_at) FROM commands WHERE deadline_at IS NOT NULL) AS deadline,
           (SELECT MIN(cancel_sent_at) FROM commands WHERE state = 'cancelling' AND cancel_frame_id IS NOT NULL) AS cancel,
           (SELECT MIN(terminal_at) FROM commands WHERE terminal_at IS NOT NULL) AS prune`,
      )
      .one();
    const candidates = [
      row.retry,
      row.expiry,
      row.deadline,
      row.cancel === null ? null : row.cancel + ackTimeoutMs,
      row.prune === null ? null : row.prune + retentionMs,
    ].filter((t): t is number => t !== null);
    return candidates.length ? Math.min(...candidates) : null;
  }

  /** Deletes terminal commands older than the retention window, with their history and output. Returns how many. */
  prune(now: number, retentionMs: number): number {
    const cutoff = now - retentionMs;
    const ids = this.#sql
      .exec<{ message_id: string }>("SELECT message_id FROM commands WHERE terminal_at IS NOT NULL AND terminal_at <= ?", cutoff)
      .toArray()
      .map((r) => r.message_id);
    for (const id of ids) {
      this.#sql.exec("DELETE FROM transitions WHERE message_id = ?", id);
      this.#sql.exec("DELETE FROM outputs WHERE message_id = ?", id);
      this.#sql.exec("DELETE FROM dead_letters WHERE message_id = ?", id);
      this.#write("DELETE FROM commands WHERE message_id = ?", id);
    }
    return ids.length;
  }
}
