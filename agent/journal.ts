import { mkdirSync } from "node:fs";
import path from "node:path";
import { DatabaseSync, type StatementSync } from "node:sqlite";

/** File name of the journal inside the state directory. */
export const JOURNAL_FILE = "journal.db";

/** Where a recorded command is: acked and waiting, running, or answered. */
export type CommandState = "received" | "started" | "finished";

export interface JournalCommand {
  /** Arrival order; commands run in this order. */
  seq: number;
  message_id: string;
  /** The command frame as received (JSON); for a tombstone, the cancel frame that made it. */
  frame: string;
  received_at: number;
  state: CommandState;
  started_at: number | null;
  finished_at: number | null;
  /** The response frame (JSON) once there is one. */
  response: string | null;
  /** When the relay acked the response; only then may the entry be pruned. */
  response_acked_at: number | null;
  /** message_id of the first `cancel` frame that named this command (schema 2), else null. */
  cancel_id: string | null;
}

export interface OutboxEntry {
  seq: number;
  frame_id: string;
  command_id: string | null;
  kind: "status" | "response";
  /** The frame (JSON), resent verbatim (same message_id) until acked. */
  frame: string;
}

export interface ExecutionRecord {
  id: number;
  message_id: string;
  started_at: number;
  finished_at: number | null;
  /** Process id of the execution's first process, which is also its process group id. */
  pid: number | null;
  /**
   * That process's start time (`/proc/<pid>/stat` field 22, clock ticks since boot) when it could be
   * read (schema 2): a restarted agent kills a leftover group only when it is still the same one.
   */
  pid_start_time: number | null;
}

const SCHEMA_VERSION = 2;

/** Schema 1: the tables as first released. Created as they were, then migrated step by step. */
const SCHEMA = `
CREATE TABLE IF NOT EXISTS commands (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  message_id TEXT NOT NULL UNIQUE,
  frame TEXT NOT NULL,
  received_at INTEGER NOT NULL,
  state TEXT NOT NULL CHECK (state IN ('received', 'started', 'finished')),
  started_at INTEGER,
  finished_at INTEGER,
  response TEXT,
  response_acked_at INTEGER
);
CREATE INDEX IF NOT EXISTS commands_open ON commands (state) WHERE state != 'finished';
CREATE TABLE IF NOT EXISTS executions (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  message_id TEXT NOT NULL,
  started_at INTEGER NOT NULL,
  finished_at INTEGER,
  pid INTEGER
);
CREATE INDEX IF NOT EXISTS executions_by_command ON executions (message_id);
CREATE TABLE IF NOT EXISTS outbox (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  frame_id TEXT NOT NULL UNIQUE,
  command_id TEXT,
  kind TEXT NOT NULL CHECK (kind IN ('status', 'response')),
  frame TEXT NOT NULL,
  created_at INTEGER NOT NULL
);
`;

/**
 * Additive steps: MIGRATIONS[n] takes a schema n−1 journal to schema n. Never edit a released step;
 * add the next one. Each runs in its own transaction together with the user_version bump.
 */
const MIGRATIONS: Record<number, string> = {
  // Process hygiene and cancel: the start time of an execution's process (to tell a recycled pid
  // from the group the agent started) and the cancel frame that named a command.
  2: `
    ALTER TABLE executions ADD COLUMN pid_start_time INTEGER;
    ALTER TABLE commands ADD COLUMN cancel_id TEXT;
  `,
};

interface Frame {
  message_id: string;
}

/**
 * The agent's durable memory, in SQLite (WAL, synchronous=FULL: a commit survives power loss).
 * Every command is recorded before it is acked, every execution before it starts, every response
 * and status frame before it is sent; that is what makes redelivery harmless and crashes visible.
 */
export class Journal {
  readonly path: string;
  readonly #db: DatabaseSync;
  readonly #q: Record<string, StatementSync>;

  constructor(file: string) {
    this.path = file;
    this.#db = new DatabaseSync(file);
    this.#db.exec("PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA busy_timeout = 5000;");
    const version = (this.#db.prepare("PRAGMA user_version").get() as { user_version: number }).user_version;
    if (version > SCHEMA_VERSION) throw new Error(`journal ${file} has schema ${version}, newer than this agent's ${SCHEMA_VERSION}`);
    this.#migrate(version);
    const p = (sql: string) => this.#db.prepare(sql);
    this.#q = {
      get: p("SELECT * FROM commands WHERE message_id = ?"),
      insert: p("INSERT INTO commands (message_id, frame, received_at, state) VALUES (?, ?, ?, 'received')"),
      insertAnswered: p(
        "INSERT INTO commands (message_id, frame, received_at, state, finished_at, response) VALUES (?, ?, ?, 'finished', ?, ?)",
      ),
      markStarted: p("UPDATE commands SET state = 'started', started_at = ? WHERE message_id = ? AND state = 'received'"),
      markFinished: p("UPDATE commands SET state = 'finished', finished_at = ?, response = ? WHERE message_id = ? AND state != 'finished'"),
      insertExecution: p("INSERT INTO executions (message_id, started_at) VALUES (?, ?)"),
      setPid: p("UPDATE executions SET pid = ?, pid_start_time = ? WHERE id = ?"),
      insertTombstone: p(
        `INSERT INTO commands (message_id, frame, received_at, state, finished_at, response, cancel_id)
           VALUES (?, ?, ?, 'finished', ?, ?, ?)`,
      ),
      cancelWaiting: p(
        "UPDATE commands SET state = 'finished', finished_at = ?, response = ?, cancel_id = COALESCE(cancel_id, ?) WHERE message_id = ? AND state = 'received'",
      ),
      noteCancel: p("UPDATE commands SET cancel_id = COALESCE(cancel_id, ?) WHERE message_id = ?"),
      finishExecution: p("UPDATE executions SET finished_at = ? WHERE id = ?"),
      openExecution: p("SELECT id FROM executions WHERE message_id = ? AND finished_at IS NULL ORDER BY id DESC LIMIT 1"),
      enqueue: p("INSERT INTO outbox (frame_id, command_id, kind, frame, created_at) VALUES (?, ?, ?, ?, ?)"),
      outboxByFrame: p("SELECT * FROM outbox WHERE frame_id = ?"),
      deleteOutbox: p("DELETE FROM outbox WHERE frame_id = ?"),
      responseAcked: p("UPDATE commands SET response_acked_at = ? WHERE message_id = ? AND response_acked_at IS NULL"),
      outbox: p("SELECT seq, frame_id, command_id, kind, frame FROM outbox ORDER BY seq"),
      outboxSize: p("SELECT COUNT(*) AS n FROM outbox"),
      byState: p("SELECT * FROM commands WHERE state = ? ORDER BY seq"),
      executionCounts: p("SELECT message_id, COUNT(*) AS n FROM executions GROUP BY message_id"),
      executions: p("SELECT * FROM executions ORDER BY id"),
      executionsOf: p("SELECT * FROM executions WHERE message_id = ? ORDER BY id"),
      pruneExecutions: p(
        `DELETE FROM executions WHERE message_id IN (SELECT message_id FROM commands
           WHERE state = 'finished' AND response_acked_at IS NOT NULL AND finished_at < ?)`,
      ),
      pruneCommands: p("DELETE FROM commands WHERE state = 'finished' AND response_acked_at IS NOT NULL AND finished_at < ?"),
    };
  }

  get(messageId: string): JournalCommand | null {
    return (this.#q.get!.get(messageId) as JournalCommand | undefined) ?? null;
  }

  /** Records an arrival; false when the message_id is already known (a redelivery). */
  record(messageId: string, frame: string, receivedAt: number): boolean {
    try {
      this.#q.insert!.run(messageId, frame, receivedAt);
      return true;
    } catch (err) {
      if (isUniqueViolation(err)) return false;
      throw err;
    }
  }

  /** Records an arrival that is answered at once (rejected): command and response in one commit. */
  recordAnswered(messageId: string, frame: string, receivedAt: number, response: Frame): void {
    this.#tx(() => {
      this.#q.insertAnswered!.run(messageId, frame, receivedAt, receivedAt, JSON.stringify(response));
      this.#enqueue(response, messageId, "response", receivedAt);
    });
  }

  /**
   * Marks a command started and opens its execution record, with the `running` status frame
   * queued in the same commit. Returns the execution id.
   */
  start(messageId: string, at: number, runningStatus: Frame): number {
    return this.#tx(() => {
      const changed = this.#q.markStarted!.run(at, messageId).changes;
      if (Number(changed) !== 1) throw new Error(`command ${messageId} is not waiting to start`);
      const id = Number(this.#q.insertExecution!.run(messageId, at).lastInsertRowid);
      this.#enqueue(runningStatus, messageId, "status", at);
      return id;
    });
  }

  /**
   * Records the execution's process (its pid is its process group id) and, when readable, its start
   * time. Called before the process is let go past its start gate, so a crash never leaves an
   * unrecorded group behind.
   */
  setPid(executionId: number, pid: number, startTime: number | null = null): void {
    this.#q.setPid!.run(pid, startTime, executionId);
  }

  /**
   * A cancel for a command never seen: records a finished entry (the tombstone) whose stored response
   * is `response` (cancelled), so a later delivery of that id is answered from here and never run.
   * `frame` is the cancel frame. False when the id is known after all (nothing written).
   */
  recordTombstone(commandId: string, frame: string, cancelId: string, at: number, response: Frame): boolean {
    try {
      this.#tx(() => {
        this.#q.insertTombstone!.run(commandId, frame, at, at, JSON.stringify(response), cancelId);
        this.#enqueue(response, commandId, "response", at);
      });
      return true;
    } catch (err) {
      if (isUniqueViolation(err)) return false;
      throw err;
    }
  }

  /**
   * A cancel for a command recorded but not started: it is finished with `response` (cancelled) and
   * the response queued, in one commit. False when the command was not waiting (nothing written).
   */
  cancelWaiting(commandId: string, cancelId: string, at: number, response: Frame): boolean {
    return this.#tx(() => {
      const changed = Number(this.#q.cancelWaiting!.run(at, JSON.stringify(response), cancelId, commandId).changes);
      if (changed !== 1) return false;
      this.#enqueue(response, commandId, "response", at);
      return true;
    });
  }

  /** Notes the first cancel frame that named a command (e.g. a running one about to be killed). */
  noteCancel(commandId: string, cancelId: string): void {
    this.#q.noteCancel!.run(cancelId, commandId);
  }

  /**
   * Puts a finished command's stored response back in the outbox (same frame, same message_id) if the
   * relay had acked it already, so it is resent until acked again. True when it was re-queued.
   */
  requeueResponse(commandId: string, at: number): boolean {
    return this.#tx(() => {
      const entry = this.get(commandId);
      if (!entry?.response) return false;
      const frame = JSON.parse(entry.response) as Frame;
      if (this.#q.outboxByFrame!.get(frame.message_id)) return false;
      this.#enqueue(frame, commandId, "response", at);
      return true;
    });
  }

  /** Queues a status frame (progress) for sending until acked. */
  enqueueStatus(frame: Frame, commandId: string, at: number): void {
    this.#enqueue(frame, commandId, "status", at);
  }

  /** Stores the response, closes the execution record and queues the response, in one commit. */
  finish(messageId: string, executionId: number | null, at: number, response: Frame): void {
    this.#tx(() => {
      this.#q.markFinished!.run(at, JSON.stringify(response), messageId);
      if (executionId !== null) this.#q.finishExecution!.run(at, executionId);
      this.#enqueue(response, messageId, "response", at);
    });
  }

  /** The relay stored frame `frameId`: it leaves the outbox. True when it was there. */
  ack(frameId: string, at: number): boolean {
    return this.#tx(() => {
      const entry = this.#q.outboxByFrame!.get(frameId) as OutboxEntry | undefined;
      if (!entry) return false;
      this.#q.deleteOutbox!.run(frameId);
      if (entry.kind === "response" && entry.command_id) this.#q.responseAcked!.run(at, entry.command_id);
      return true;
    });
  }

  /** Unacked frames in the order they were first queued. */
  outbox(): OutboxEntry[] {
    return this.#q.outbox!.all() as unknown as OutboxEntry[];
  }

  /** Number of unacked frames. */
  outboxSize(): number {
    return Number((this.#q.outboxSize!.get() as { n: number }).n);
  }

  /** Recorded (and acked) commands not started yet, in arrival order. */
  waiting(): JournalCommand[] {
    return this.#q.byState!.all("received") as unknown as JournalCommand[];
  }

  /** Commands started and never finished: the agent died while they ran. */
  interrupted(): JournalCommand[] {
    return this.#q.byState!.all("started") as unknown as JournalCommand[];
  }

  /**
   * Answers every interrupted command with `makeResponse` instead of running it again: whether it
   * took effect is unknown, and running a package operation twice is worse than saying so.
   */
  recoverInterrupted(at: number, makeResponse: (cmd: JournalCommand) => Frame): JournalCommand[] {
    const found = this.interrupted();
    for (const cmd of found) {
      const response = makeResponse(cmd);
      this.#tx(() => {
        // The execution record keeps finished_at NULL: when it ended is not known.
        this.#q.markFinished!.run(at, JSON.stringify(response), cmd.message_id);
        this.#enqueue(response, cmd.message_id, "response", at);
      });
    }
    return found;
  }

  /** Deletes answered, acked commands (and their execution records) finished before now − retention. */
  prune(now: number, retentionMs: number): number {
    const cutoff = now - retentionMs;
    return this.#tx(() => {
      this.#q.pruneExecutions!.run(cutoff);
      return Number(this.#q.pruneCommands!.run(cutoff).changes);
    });
  }

  /** How many times each message_id was actually executed (tests: must never exceed 1). */
  executionCounts(): Map<string, number> {
    const rows = this.#q.executionCounts!.all() as { message_id: string; n: number }[];
    return new Map(rows.map((r) => [r.message_id, Number(r.n)]));
  }

  executions(messageId?: string): ExecutionRecord[] {
    return (messageId === undefined ? this.#q.executions!.all() : this.#q.executionsOf!.all(messageId)) as unknown as ExecutionRecord[];
  }

  close(): void {
    if (this.#db.isOpen) this.#db.close();
  }

  #migrate(from: number): void {
    if (from >= SCHEMA_VERSION) return;
    const version = () => (this.#db.prepare("PRAGMA user_version").get() as { user_version: number }).user_version;
    // A new file (0) gets schema 1 as released, then every step, exactly like an old journal. The
    // version is read again inside each transaction: another process may have migrated meanwhile.
    this.#tx(() => {
      if (version() >= 1) return;
      this.#db.exec(SCHEMA);
      this.#db.exec("PRAGMA user_version = 1");
    });
    for (let v = 2; v <= SCHEMA_VERSION; v++) {
      const step = MIGRATIONS[v];
      if (step === undefined) throw new Error(`journal migration to schema ${v} is missing`);
      this.#tx(() => {
        if (version() >= v) return;
        this.#db.exec(step);
        this.#db.exec(`PRAGMA user_version = ${v}`);
      });
    }
  }

  #enqueue(frame: Frame, commandId: string | null, kind: OutboxEntry["kind"], at: number): void {
    this.#q.enqueue!.run(frame.message_id, commandId, kind, JSON.stringify(frame), at);
  }

  #tx<T>(fn: () => T): T {
    this.#db.exec("BEGIN IMMEDIATE");
    try {
      const out = fn();
      this.#db.exec("COMMIT");
      return out;
    } catch (err) {
      // A failed write (SQLITE_FULL, I/O error) may have ended the transaction already; the original
      // error is the one to report, never "no transaction is active".
      try {
        this.#db.exec("ROLLBACK");
      } catch {
        // nothing left to roll back
      }
      throw err;
    }
  }
}

/** Opens (creating if needed) the journal in a state directory. Readers may open it beside a running agent. */
export function openJournal(stateDir: string): Journal {
  mkdirSync(stateDir, { recursive: true, mode: 0o700 });
  return new Journal(path.join(stateDir, JOURNAL_FILE));
}

function isUniqueViolation(err: unknown): boolean {
  return err instanceof Error && /UNIQUE constraint failed/.test(err.message);
}
