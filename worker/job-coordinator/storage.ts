import type { JobHostState, JobHostView } from "../../schemas/index.ts";
import { nowRfc3339 } from "../../schemas/index.ts";
import { applySqlMigrations } from "../sql-migrations.ts";
import type { StopKind } from "./states.ts";
import { JOB_COORDINATOR_MIGRATIONS } from "./storage-schema.ts";

/** The job row as stored. Times are epoch milliseconds. */
export interface JobRow {
  job_id: string;
  command_type: string;
  parameters: string;
  target: string;
  created_at: number;
  created_by: string;
  timeout_s: number | null;
  max_attempts: number | null;
  expires_at: number;
  host_count: number;
  max_concurrency: number;
  max_errors: number | null;
  stop_kind: StopKind | null;
  stop_reason: string | null;
  abort_running: number;
  stopped_at: number | null;
  finished_at: number | null;
  progress_due_at: number | null;
  progress_attempts: number;
  request_hash: string | null;
  registered_at: number | null;
  registry_due_at: number | null;
  registry_attempts: number;
  progress_seq: number;
  audit_seq: number;
  audit_due_at: number | null;
  wait_sweep_at: number | null;
  waits_open: number;
  [key: string]: SqlStorageValue;
}

export interface HostRow {
  seq: number;
  host_id: string;
  state: JobHostState;
  message_id: string | null;
  dispatched_at: number | null;
  updated_at: number;
  state_at: number;
  response_status: string | null;
  detail: string | null;
  attempts: number;
  due_at: number | null;
  cancel_at: number | null;
  [key: string]: SqlStorageValue;
}

export interface NewJob {
  job_id: string;
  command_type: string;
  parameters: unknown;
  target: unknown;
  created_at: number;
  created_by: string;
  timeout_s: number | null;
  max_attempts: number | null;
  expires_at: number;
  max_concurrency: number;
  max_errors: number | null;
  host_ids: string[];
  /** Hash of the creating request when it carried an Idempotency-Key. */
  request_hash?: string | null | undefined;
}

export interface StateChange {
  message_id?: string | null | undefined;
  response_status?: string | null | undefined;
  detail?: string | null | undefined;
  /** The reporter's time of the transition. */
  at: number;
}

/** Owns the JobCoordinator's tables; every method is synchronous so callers compose them atomically. */
export class JobStorage {
  private readonly sql: SqlStorage;
  /** Hosts per state, kept in step with every write made through this module. */
  private countCache: Record<string, number> | null = null;

  constructor(storage: DurableObjectStorage) {
    this.sql = storage.sql;
  }

  /**
   * Brings an object that already holds a job up to the latest schema. A fresh object stays empty
   * (no tables) until `insertJob`, so reading an unknown job id writes nothing.
   */
  openExisting(): void {
    const exists = this.sql.exec("SELECT name FROM sqlite_master WHERE type = 'table' AND name = '_migrations'").toArray().length > 0;
    if (exists) this.migrate();
  }

  migrate(): void {
    applySqlMigrations(this.sql, JOB_COORDINATOR_MIGRATIONS);
  }

  /** Set once the tables exist (they are never dropped). */
  private tables = false;

  private hasTables(): boolean {
    this.tables ||= this.sql.exec("SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'job'").toArray().length > 0;
    return this.tables;
  }

  // ---- the job ----

  job(): JobRow | null {
    if (!this.hasTables()) return null;
    return this.sql.exec<JobRow>("SELECT * FROM job WHERE id = 1").toArray()[0] ?? null;
  }

  /** The shard confirmed the job's audit records through `seq`. */
  auditSent(seq: number): void {
    this.sql.exec("UPDATE job SET audit_seq = MAX(audit_seq, ?), audit_due_at = NULL WHERE id = 1", seq);
  }

  auditRetryAt(at: number): void {
    this.sql.exec("UPDATE job SET audit_due_at = ? WHERE id = 1", at);
  }

  /** Records the job and every target host as pending, in dispatch order. */
  insertJob(j: NewJob, now: number): void {
    this.migrate();
    this.sql.exec(
      `INSERT INTO job (id, job_id, command_type, parameters, target, created_at, created_by, timeout_s, max_attempts, expires_at,
         host_count, max_concurrency, max_errors, request_hash, registry_due_at)
       VALUES (1, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      j.job_id,
      j.command_type,
      JSON.stringify(j.parameters),
      JSON.stringify(j.target),
      j.created_at,
      j.created_by,
      j.timeout_s,
      j.max_attempts,
      j.expires_at,
      j.host_ids.length,
      j.max_concurrency,
      j.max_errors,
      j.request_hash ?? null,
      now,
    );
    this.sql.exec(
      "INSERT INTO hosts (seq, host_id, state, updated_at, state_at) SELECT key + 1, value, 'pending', ?, ? FROM json_each(?)",
      now,
      now,
      JSON.stringify(j.host_ids),
    );
    this.countCache = null;
  }

  /** Marks the job stopped (first reason wins); pending hosts are cancelled, queued ones are due for a cancel RPC. */
  stop(kind: StopKind, reason: string, now: number): boolean {
    const res = this.sql.exec(
      "UPDATE job SET stop_kind = ?, stop_reason = ?, stopped_at = ? WHERE id = 1 AND stop_kind IS NULL",
      kind,
      reason,
      now,
    );
    if (res.rowsWritten === 0) return false;
    this.sql.exec(
      "UPDATE hosts SET state = 'cancelled', detail = ?, updated_at = ?, state_at = ? WHERE state = 'pending'",
      `not dispatched: ${reason}`,
      now,
      now,
    );
    // A waiting host never got the command: nothing to ask its relay.
    this.sql.exec(
      "UPDATE hosts SET state = 'cancelled', detail = ?, updated_at = ?, state_at = ?, due_at = NULL WHERE state = 'waiting'",
      `not delivered (the host was offline): ${reason}`,
      now,
      now,
    );
    this.sql.exec("UPDATE hosts SET cancel_at = ? WHERE state IN ('dispatching', 'queued')", now);
    this.countCache = null;
    return true;
  }

  /** A cancel that also stops what the agents hold: their commands are due for a cancel RPC too. Idempotent. */
  abortRunning(now: number): void {
    this.sql.exec("UPDATE job SET abort_running = 1 WHERE id = 1");
    this.sql.exec(
      "UPDATE hosts SET cancel_at = ? WHERE state IN ('dispatching', 'queued', 'delivered', 'running') AND cancel_at IS NULL",
      now,
    );
  }

  /** The job's registry row exists: dispatching may start. */
  setRegistered(at: number): void {
    this.sql.exec("UPDATE job SET registered_at = COALESCE(registered_at, ?), registry_due_at = NULL WHERE id = 1", at);
  }

  /** The registry write failed; returns the attempts so far (the caller schedules the next). */
  registryFailed(): number {
    this.sql.exec("UPDATE job SET registry_attempts = registry_attempts + 1 WHERE id = 1");
    return this.job()?.registry_attempts ?? 0;
  }

  setRegistryDue(at: number): void {
    this.sql.exec("UPDATE job SET registry_due_at = ? WHERE id = 1 AND registered_at IS NULL", at);
  }

  setFinished(at: number | null): void {
    this.sql.exec("UPDATE job SET finished_at = ? WHERE id = 1", at);
  }

  // ---- hosts ----

  counts(): Record<string, number> {
    if (this.countCache === null) {
      const counts: Record<string, number> = {};
      for (const r of this.sql.exec<{ state: string; n: number }>("SELECT state, COUNT(*) AS n FROM hosts GROUP BY state")) {
        counts[r.state] = r.n;
      }
      this.countCache = counts;
    }
    return this.countCache;
  }

  private moveCount(from: string, to: string): void {
    if (this.countCache === null) return;
    this.countCache[from] = (this.countCache[from] ?? 0) - 1;
    this.countCache[to] = (this.countCache[to] ?? 0) + 1;
  }

  host(hostId: string): HostRow | null {
    return this.sql.exec<HostRow>("SELECT * FROM hosts WHERE host_id = ?", hostId).toArray()[0] ?? null;
  }

  hostBySeq(seq: number): HostRow | null {
    return this.sql.exec<HostRow>("SELECT * FROM hosts WHERE seq = ?", seq).toArray()[0] ?? null;
  }

  nextPending(limit: number): HostRow[] {
    if (limit <= 0) return [];
    return this.sql.exec<HostRow>("SELECT * FROM hosts WHERE state = 'pending' ORDER BY seq LIMIT ?", limit).toArray();
  }

  /**
   * Hosts due for a dispatch RPC: retries (the answer was never recorded: a failed RPC, or the object
   * restarted) and waiting hosts that came online.
   */
  dueDispatches(now: number, limit: number): HostRow[] {
    if (limit <= 0) return [];
    return this.sql
      .exec<HostRow>(
        "SELECT * FROM hosts WHERE state IN ('dispatching', 'waiting') AND due_at <= ? ORDER BY due_at, seq LIMIT ?",
        now,
        limit,
      )
      .toArray();
  }

  /**
   * Pending hosts that were offline at their turn now wait in the job (no relay holds their command
   * yet); rows that are no longer pending are left alone. `sweepAt`: when to next ask the registry
   * which waiting hosts came online, unless that is already set.
   */
  park(seqs: number[], now: number, detail: string, sweepAt: number): void {
    if (seqs.length === 0) return;
    this.sql.exec(
      "UPDATE hosts SET state = 'waiting', detail = ?, updated_at = ?, state_at = ?, due_at = NULL WHERE state = 'pending' AND seq IN (SELECT value FROM json_each(?))",
      detail,
      now,
      now,
      JSON.stringify(seqs),
    );
    this.sql.exec("UPDATE job SET waits_open = 1, wait_sweep_at = COALESCE(wait_sweep_at, ?) WHERE id = 1", sweepAt);
    this.countCache = null;
  }

  /** Waiting hosts whose agent connected are due for dispatch now; returns how many were waiting. */
  wake(hostIds: string[], now: number): number {
    if (hostIds.length === 0) return 0;
    return this.sql.exec(
      "UPDATE hosts SET due_at = ? WHERE state = 'waiting' AND (due_at IS NULL OR due_at > ?) AND host_id IN (SELECT value FROM json_each(?))",
      now,
      now,
      JSON.stringify(hostIds),
    ).rowsWritten;
  }

  setWaitSweep(at: number | null): void {
    this.sql.exec("UPDATE job SET wait_sweep_at = ? WHERE id = 1", at);
  }

  /** job_waits holds no rows of this job any more. */
  waitsClosed(): void {
    this.sql.exec("UPDATE job SET waits_open = 0, wait_sweep_at = NULL WHERE id = 1");
  }

  /** About to ask the host's relay to queue the command; `leaseUntil` is when to retry if no answer is recorded. */
  markDispatching(row: HostRow, now: number, leaseUntil: number): void {
    this.sql.exec(
      "UPDATE hosts SET state = 'dispatching', attempts = attempts + 1, due_at = ?, updated_at = ? WHERE seq = ?",
      leaseUntil,
      now,
      row.seq,
    );
    if (row.state !== "dispatching") this.moveCount(row.state, "dispatching");
    row.state = "dispatching";
    row.attempts += 1;
    row.due_at = leaseUntil;
  }

  setDispatchDue(seq: number, at: number): void {
    this.sql.exec("UPDATE hosts SET due_at = ? WHERE seq = ? AND state = 'dispatching'", at, seq);
  }

  /** Moves a host to `to` (the caller checked the move is allowed). */
  setState(row: HostRow, to: JobHostState, change: StateChange, now: number): void {
    const messageId = change.message_id ?? row.message_id;
    const keepsCancel = to === "dispatching" || to === "queued";
    this.sql.exec(
      `UPDATE hosts SET state = ?, message_id = ?, dispatched_at = CASE WHEN ? IS NULL THEN dispatched_at ELSE COALESCE(dispatched_at, ?) END,
         updated_at = ?, state_at = ?, response_status = COALESCE(?, response_status), detail = ?,
         due_at = CASE WHEN ? = 'dispatching' THEN due_at ELSE NULL END,
         cancel_at = CASE WHEN ? THEN cancel_at ELSE NULL END
       WHERE seq = ?`,
      to,
      messageId,
      messageId,
      now,
      now,
      change.at,
      change.response_status ?? null,
      change.detail ?? null,
      to,
      keepsCancel ? 1 : 0,
      row.seq,
    );
    this.moveCount(row.state, to);
    row.state = to;
    row.message_id = messageId;
    row.state_at = change.at;
    if (!keepsCancel) row.cancel_at = null;
  }

  /** Learns a host's message_id without a state change (its answer said what updates already said). */
  setMessageId(row: HostRow, messageId: string, now: number): void {
    if (row.message_id !== null) return;
    this.sql.exec(
      "UPDATE hosts SET message_id = ?, dispatched_at = COALESCE(dispatched_at, ?), due_at = NULL WHERE seq = ?",
      messageId,
      now,
      row.seq,
    );
    row.message_id = messageId;
  }

  /** Pending hosts whose delivery deadline passed before they got a slot, and waiting hosts whose deadline passed while they were offline. */
  expirePending(now: number, detail: string, waitingDetail: string): number {
    let n = this.sql.exec(
      "UPDATE hosts SET state = 'expired', detail = ?, updated_at = ?, state_at = ? WHERE state = 'pending'",
      detail,
      now,
      now,
    ).rowsWritten;
    n += this.sql.exec(
      "UPDATE hosts SET state = 'expired', detail = ?, updated_at = ?, state_at = ?, due_at = NULL WHERE state = 'waiting'",
      waitingDetail,
      now,
      now,
    ).rowsWritten;
    if (n > 0) this.countCache = null;
    return n;
  }

  /** Queued commands of a stopped job whose cancel is due. */
  dueCancels(now: number, limit: number): HostRow[] {
    if (limit <= 0) return [];
    return this.sql
      .exec<HostRow>(
        `SELECT * FROM hosts WHERE cancel_at <= ? AND message_id IS NOT NULL
           AND (state = 'queued' OR (state IN ('delivered', 'running') AND (SELECT abort_running FROM job WHERE id = 1) = 1))
         ORDER BY cancel_at, seq LIMIT ?`,
        now,
        limit,
      )
      .toArray();
  }

  setCancelAt(seq: number, at: number | null): void {
    this.sql.exec("UPDATE hosts SET cancel_at = ? WHERE seq = ?", at, seq);
  }

  /** Earliest retry of a dispatch and earliest due cancel. */
  nextDue(): { dispatch: number | null; cancel: number | null } {
    return this.sql
      .exec<{ dispatch: number | null; cancel: number | null }>(
        `SELECT (SELECT MIN(due_at) FROM hosts WHERE due_at IS NOT NULL) AS dispatch,
                (SELECT MIN(cancel_at) FROM hosts WHERE cancel_at IS NOT NULL AND state = 'queued' AND message_id IS NOT NULL) AS cancel`,
      )
      .one();
  }

  listHosts(states: JobHostState[] | undefined, limit: number, afterSeq: number | null): { items: JobHostView[]; lastSeq: number | null } {
    const filter = states?.length ? `AND state IN (${states.map(() => "?").join(",")})` : "";
    const rows = this.sql
      .exec<HostRow>(`SELECT * FROM hosts WHERE seq > ? ${filter} ORDER BY seq LIMIT ?`, afterSeq ?? 0, ...(states ?? []), limit + 1)
      .toArray();
    const page = rows.slice(0, limit);
    return {
      items: page.map((r) => ({
        host_id: r.host_id,
        state: r.state,
        message_id: r.message_id,
        dispatched_at: r.dispatched_at === null ? null : nowRfc3339(r.dispatched_at),
        updated_at: nowRfc3339(r.updated_at),
        response_status: r.response_status,
        detail: r.detail,
      })),
      lastSeq: rows.length > limit ? page[page.length - 1]!.seq : null,
    };
  }

  // ---- progress events ----

  /** A job.progress event is due at `at` (or earlier, if one already is). */
  progressDue(at: number): void {
    this.sql.exec("UPDATE job SET progress_due_at = MIN(COALESCE(progress_due_at, ?), ?) WHERE id = 1", at, at);
  }

  /** Takes the due event: later changes schedule a new one. */
  takeProgress(now: number): JobRow | null {
    const job = this.job();
    if (!job || job.progress_due_at === null || job.progress_due_at > now) return null;
    this.sql.exec("UPDATE job SET progress_due_at = NULL WHERE id = 1");
    return job;
  }

  /** The taken event was published (or given up on): the next one gets the next sequence number. */
  progressSent(): void {
    this.sql.exec("UPDATE job SET progress_attempts = 0, progress_seq = progress_seq + 1 WHERE id = 1");
  }

  /** Returns the attempts so far; the caller decides whether to retry. */
  progressFailed(): number {
    this.sql.exec("UPDATE job SET progress_attempts = progress_attempts + 1 WHERE id = 1");
    return this.job()?.progress_attempts ?? 0;
  }
}
