import type { CommandState, CommandSummary, CommandView, DeadLetter, StateChange } from "../../schemas/index.ts";
import { TERMINAL_STATES } from "../../schemas/index.ts";
import { HOST_RELAY_MIGRATIONS } from "./storage-schema.ts";
import { applySqlMigrations } from "../sql-migrations.ts";

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
  [key: string]: SqlStorageValue;
}

export interface OutboxRow {
  id: number;
  kind: string;
  target: string;
  body: string;
  attempts: number;
  next_at: number;
  backoff_until: number | null;
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

/** Most output kept per command; later chunks are dropped and the cut is noted once. */
export const MAX_STORED_OUTPUT_BYTES = 1024 * 1024;
const MAX_FRAME_ERRORS = 100;

const TERMINAL_SQL = TERMINAL_STATES.map((s) => `'${s}'`).join(",");
const iso = (ms: number | null): string | null => (ms === null ? null : new Date(ms).toISOString());

/**
 * Terminal states are final, with two exits: requeue takes a dead letter back to `queued`, and an
 * agent's response for a command the relay had given up on (dead-lettered or expired while possibly
 * already on the agent) records what really happened — the agent ran it.
 */
function mayLeave(row: CommandRow, to: CommandState, responseStatus: string | null | undefined): boolean {
  if (row.state === "dead_lettered" && to === "queued") return true;
  const gaveUp = row.state === "dead_lettered" || row.state === "expired";
  return gaveUp && row.response_status === null && !!responseStatus && ["succeeded", "failed", "timed_out"].includes(to);
}

/** Owns the HostRelay's tables; every method is synchronous so callers compose them atomically. */
export class HostRelayStorage {
  private readonly sql: SqlStorage;
  /** Called after every stored state change of a command (the notifier hangs here). */
  onTransition: ((row: CommandRow, state: CommandState, at: number, detail: string | null) => void) | undefined;
  /** Called after a streamed output chunk is stored (not for resent duplicates). */
  onOutput: ((row: CommandRow, chunk: string, seq: number | null, at: number) => void) | undefined;

  constructor(storage: DurableObjectStorage) {
    this.sql = storage.sql;
  }

  migrate(): void {
    applySqlMigrations(this.sql, HOST_RELAY_MIGRATIONS);
  }

  // ---- meta ----

  getMeta(key: string): string | null {
    const row = this.sql.exec<{ value: string }>("SELECT value FROM meta WHERE key = ?", key).toArray()[0];
    return row ? row.value : null;
  }

  setMeta(key: string, value: string): void {
    this.sql.exec("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value", key, value);
  }

  // ---- commands ----

  insertCommand(c: NewCommand, now: number): CommandRow {
    this.sql.exec(
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
    this.addTransition(c.message_id, "queued", now, null, null);
    const row = this.getCommand(c.message_id)!;
    this.onTransition?.(row, "queued", now, null);
    return row;
  }

  getCommand(messageId: string): CommandRow | null {
    return this.sql.exec<CommandRow>("SELECT * FROM commands WHERE message_id = ?", messageId).toArray()[0] ?? null;
  }

  getByIdempotencyKey(key: string): CommandRow | null {
    return this.sql.exec<CommandRow>("SELECT * FROM commands WHERE idempotency_key = ?", key).toArray()[0] ?? null;
  }

  /** Moves a command to `state` and records the transition; refuses to leave a terminal state. */
  transition(
    row: CommandRow,
    state: CommandState,
    now: number,
    detail: string | null = null,
    extra: Partial<Pick<CommandRow, "response_status" | "result">> = {},
  ): boolean {
    if (TERMINAL_STATES.includes(row.state) && !mayLeave(row, state, extra.response_status)) return false;
    const terminal = TERMINAL_STATES.includes(state);
    this.sql.exec(
      `UPDATE commands SET state = ?, updated_at = ?, in_flight = 0, retry_at = NULL,
         terminal_at = ?, response_status = COALESCE(?, response_status), result = COALESCE(?, result)
       WHERE message_id = ?`,
      state,
      now,
      terminal ? now : null,
      extra.response_status ?? null,
      extra.result ?? null,
      row.message_id,
    );
    this.addTransition(row.message_id, state, now, row.attempts || null, detail);
    row.state = state;
    if (extra.response_status) row.response_status = extra.response_status;
    this.onTransition?.(row, state, now, detail);
    return true;
  }

  addTransition(messageId: string, state: string, at: number, attempt: number | null, detail: string | null): void {
    this.sql.exec(
      "INSERT INTO transitions (message_id, state, at, attempt, detail) VALUES (?, ?, ?, ?, ?)",
      messageId,
      state,
      at,
      attempt,
      detail,
    );
  }

  /** Records a send: one more attempt, in flight until acked or `retryAt`. */
  markSent(messageId: string, attempt: number, now: number, retryAt: number): void {
    this.sql.exec(
      "UPDATE commands SET attempts = ?, in_flight = 1, last_attempt_at = ?, retry_at = ?, updated_at = ? WHERE message_id = ?",
      attempt,
      now,
      retryAt,
      now,
      messageId,
    );
  }

  /**
   * The connection is gone: nothing is in flight any more; unacked commands wait for the next one.
   * Their last send is refunded — it never had its full ack window — so a flapping connection
   * cannot exhaust max_attempts for commands the agent may well be holding. The deadline still bounds them.
   */
  clearInFlight(): void {
    this.sql.exec("UPDATE commands SET in_flight = 0, retry_at = NULL, attempts = MAX(attempts - 1, 0) WHERE in_flight = 1");
  }

  countInFlight(): number {
    return this.sql.exec<{ n: number }>("SELECT COUNT(*) AS n FROM commands WHERE in_flight = 1").one().n;
  }

  /** Queued commands not in flight, oldest first. */
  nextToSend(limit: number): CommandRow[] {
    return this.sql
      .exec<CommandRow>("SELECT * FROM commands WHERE state = 'queued' AND in_flight = 0 ORDER BY seq LIMIT ?", limit)
      .toArray();
  }

  dueRetries(now: number): CommandRow[] {
    return this.sql
      .exec<CommandRow>("SELECT * FROM commands WHERE in_flight = 1 AND retry_at <= ? ORDER BY seq", now)
      .toArray();
  }

  dueExpiries(now: number): CommandRow[] {
    return this.sql
      .exec<CommandRow>("SELECT * FROM commands WHERE state = 'queued' AND expires_at <= ? ORDER BY seq", now)
      .toArray();
  }

  queuedCommands(): CommandRow[] {
    return this.sql.exec<CommandRow>("SELECT * FROM commands WHERE state = 'queued' ORDER BY seq").toArray();
  }

  queueDepth(): number {
    return this.sql.exec<{ n: number }>(`SELECT COUNT(*) AS n FROM commands WHERE state NOT IN (${TERMINAL_SQL})`).one().n;
  }

  /** Earliest time any stored row needs the alarm: a retry, an expiry, an undelivered notification, or a prune. */
  nextDue(retentionMs: number): number | null {
    const row = this.sql
      .exec<{ retry: number | null; expiry: number | null; prune: number | null; outbox: number | null }>(
        `SELECT
           (SELECT MIN(retry_at) FROM commands WHERE in_flight = 1) AS retry,
           (SELECT MIN(expires_at) FROM commands WHERE state = 'queued') AS expiry,
           (SELECT MIN(terminal_at) FROM commands WHERE terminal_at IS NOT NULL) AS prune,
           (SELECT MIN(next_at) FROM outbox) AS outbox`,
      )
      .one();
    const candidates = [row.retry, row.expiry, row.outbox, row.prune === null ? null : row.prune + retentionMs].filter(
      (t): t is number => t !== null,
    );
    return candidates.length ? Math.min(...candidates) : null;
  }

  /** Deletes terminal commands older than the retention window, with their history. Returns how many. */
  prune(now: number, retentionMs: number): number {
    const cutoff = now - retentionMs;
    const ids = this.sql
      .exec<{ message_id: string }>("SELECT message_id FROM commands WHERE terminal_at IS NOT NULL AND terminal_at <= ?", cutoff)
      .toArray()
      .map((r) => r.message_id);
    for (const id of ids) {
      this.sql.exec("DELETE FROM transitions WHERE message_id = ?", id);
      this.sql.exec("DELETE FROM outputs WHERE message_id = ?", id);
      this.sql.exec("DELETE FROM dead_letters WHERE message_id = ?", id);
      this.sql.exec("DELETE FROM commands WHERE message_id = ?", id);
    }
    return ids.length;
  }

  // ---- dead letters ----

  deadLetter(row: CommandRow, now: number, reason: string): void {
    if (!this.transition(row, "dead_lettered", now, reason)) return;
    this.sql.exec(
      "INSERT INTO dead_letters (message_id, dead_lettered_at, reason) VALUES (?, ?, ?) ON CONFLICT(message_id) DO UPDATE SET dead_lettered_at = excluded.dead_lettered_at, reason = excluded.reason",
      row.message_id,
      now,
      reason,
    );
  }

  removeDeadLetter(messageId: string): void {
    this.sql.exec("DELETE FROM dead_letters WHERE message_id = ?", messageId);
  }

  requeue(row: CommandRow, now: number, expiresAt: number, maxAttempts: number): void {
    this.sql.exec("DELETE FROM dead_letters WHERE message_id = ?", row.message_id);
    this.sql.exec(
      `UPDATE commands SET state = 'queued', attempts = 0, in_flight = 0, retry_at = NULL, terminal_at = NULL,
         expires_at = ?, max_attempts = ?, updated_at = ? WHERE message_id = ?`,
      expiresAt,
      maxAttempts,
      now,
      row.message_id,
    );
    this.addTransition(row.message_id, "queued", now, null, "requeued from dead letters");
    row.state = "queued";
    row.attempts = 0;
    this.onTransition?.(row, "queued", now, "requeued from dead letters");
  }

  listDeadLetters(limit: number, afterSeq: number | null): { items: DeadLetter[]; lastSeq: number | null } {
    const rows = this.sql
      .exec<CommandRow & { dead_lettered_at: number; reason: string }>(
        `SELECT c.*, d.dead_lettered_at, d.reason FROM dead_letters d JOIN commands c USING (message_id)
         WHERE (? IS NULL OR c.seq < ?) ORDER BY c.seq DESC LIMIT ?`,
        afterSeq,
        afterSeq,
        limit + 1,
      )
      .toArray();
    const page = rows.slice(0, limit);
    return {
      items: page.map((r) => ({
        message_id: r.message_id,
        command_type: r.command_type as DeadLetter["command_type"],
        attempts: r.attempts,
        reason: r.reason,
        dead_lettered_at: iso(r.dead_lettered_at)!,
        created_at: iso(r.created_at)!,
        expires_at: iso(r.expires_at)!,
      })),
      lastSeq: rows.length > limit ? page[page.length - 1]!.seq : null,
    };
  }

  // ---- outputs ----

  /** Stores one streamed chunk; a resent frame (same frame id) is a no-op. */
  appendOutput(row: CommandRow, frameId: string, seq: number | null, chunk: string, now: number): void {
    const bytes = new TextEncoder().encode(chunk).byteLength;
    if (row.output_bytes + bytes > MAX_STORED_OUTPUT_BYTES) {
      if (row.output_bytes <= MAX_STORED_OUTPUT_BYTES) {
        this.sql.exec("UPDATE commands SET output_bytes = ? WHERE message_id = ?", MAX_STORED_OUTPUT_BYTES + 1, row.message_id);
        this.addTransition(row.message_id, row.state, now, null, "output truncated: stored output limit reached");
      }
      return;
    }
    const cursor = this.sql.exec(
      "INSERT INTO outputs (message_id, frame_id, seq, chunk, at) VALUES (?, ?, ?, ?, ?) ON CONFLICT(frame_id) DO NOTHING",
      row.message_id,
      frameId,
      seq,
      chunk,
      now,
    );
    if (cursor.rowsWritten > 0) {
      this.sql.exec("UPDATE commands SET output_bytes = output_bytes + ? WHERE message_id = ?", bytes, row.message_id);
      row.output_bytes += bytes;
      this.onOutput?.(row, chunk, seq, now);
    }
  }

  output(messageId: string): string {
    return this.sql
      .exec<{ chunk: string }>("SELECT chunk FROM outputs WHERE message_id = ? ORDER BY seq, id", messageId)
      .toArray()
      .map((r) => r.chunk)
      .join("");
  }

  // ---- outbox ----

  /** Queues a notification; `backupAt` is when the alarm retries it if the immediate flush does not deliver it. */
  addOutbox(kind: string, target: string, body: unknown, backupAt: number): void {
    this.sql.exec("INSERT INTO outbox (kind, target, body, next_at) VALUES (?, ?, ?, ?)", kind, target, JSON.stringify(body), backupAt);
  }

  /** Deliverable notifications, oldest first, leased until `leaseUntil` so the alarm leaves them alone meanwhile. */
  leaseOutbox(now: number, leaseUntil: number, limit: number): OutboxRow[] {
    const rows = this.sql
      .exec<OutboxRow>("SELECT * FROM outbox WHERE backoff_until IS NULL OR backoff_until <= ? ORDER BY id LIMIT ?", now, limit)
      .toArray();
    for (const r of rows) this.sql.exec("UPDATE outbox SET next_at = ? WHERE id = ?", leaseUntil, r.id);
    return rows;
  }

  deleteOutbox(ids: number[]): void {
    for (const id of ids) this.sql.exec("DELETE FROM outbox WHERE id = ?", id);
  }

  deferOutbox(ids: number[], until: (attempts: number) => number): void {
    for (const id of ids) {
      const row = this.sql.exec<{ attempts: number }>("SELECT attempts FROM outbox WHERE id = ?", id).toArray()[0];
      if (!row) continue;
      const at = until(row.attempts + 1);
      this.sql.exec("UPDATE outbox SET attempts = ?, next_at = ?, backoff_until = ? WHERE id = ?", row.attempts + 1, at, at, id);
    }
  }

  hasDeliverableOutbox(now: number): boolean {
    return (
      this.sql.exec<{ n: number }>("SELECT COUNT(*) AS n FROM outbox WHERE backoff_until IS NULL OR backoff_until <= ?", now).one().n > 0
    );
  }

  // ---- frame errors ----

  recordFrameError(code: string, detail: string, now: number): void {
    this.sql.exec("INSERT INTO frame_errors (at, code, detail) VALUES (?, ?, ?)", now, code, detail.slice(0, 2000));
    this.sql.exec(
      "DELETE FROM frame_errors WHERE id <= (SELECT id FROM frame_errors ORDER BY id DESC LIMIT 1 OFFSET ?)",
      MAX_FRAME_ERRORS,
    );
  }

  frameErrors(): { at: string; code: string; detail: string }[] {
    return this.sql
      .exec<{ at: number; code: string; detail: string }>("SELECT at, code, detail FROM frame_errors ORDER BY id")
      .toArray()
      .map((r) => ({ at: iso(r.at)!, code: r.code, detail: r.detail }));
  }

  // ---- views ----

  listCommands(
    hostId: string,
    states: CommandState[] | undefined,
    limit: number,
    beforeSeq: number | null,
  ): { items: CommandSummary[]; lastSeq: number | null } {
    const stateFilter = states?.length ? `AND state IN (${states.map(() => "?").join(",")})` : "";
    const rows = this.sql
      .exec<CommandRow>(
        `SELECT * FROM commands WHERE (? IS NULL OR seq < ?) ${stateFilter} ORDER BY seq DESC LIMIT ?`,
        beforeSeq,
        beforeSeq,
        ...(states ?? []),
        limit + 1,
      )
      .toArray();
    const page = rows.slice(0, limit);
    return {
      items: page.map((r) => this.summary(hostId, r)),
      lastSeq: rows.length > limit ? page[page.length - 1]!.seq : null,
    };
  }

  summary(hostId: string, r: CommandRow): CommandSummary {
    return {
      message_id: r.message_id,
      host_id: hostId,
      command_type: r.command_type as CommandSummary["command_type"],
      state: r.state,
      attempts: r.attempts,
      max_attempts: r.max_attempts,
      timeout: r.timeout_s,
      expires_at: iso(r.expires_at)!,
      created_at: iso(r.created_at)!,
      updated_at: iso(r.updated_at)!,
      response_status: r.response_status as CommandSummary["response_status"],
    };
  }

  view(hostId: string, r: CommandRow): CommandView {
    const history: StateChange[] = this.sql
      .exec<{ state: CommandState; at: number; attempt: number | null; detail: string | null }>(
        "SELECT state, at, attempt, detail FROM transitions WHERE message_id = ? ORDER BY id",
        r.message_id,
      )
      .toArray()
      .map((t) => ({ state: t.state, at: iso(t.at)!, attempt: t.attempt, detail: t.detail }));
    return {
      ...this.summary(hostId, r),
      parameters: JSON.parse(r.parameters) as Record<string, unknown>,
      last_attempt_at: iso(r.last_attempt_at),
      history,
      result: r.result === null ? null : (JSON.parse(r.result) as CommandView["result"]),
      output: this.output(r.message_id),
    };
  }
}
