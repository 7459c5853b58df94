import type { EventEmitter } from "node:events";
import type { CancelMessage } from "../schemas/index.ts";
import { CommandMessage, FrameErrorCode } from "../schemas/index.ts";
import { Backoff } from "./backoff.ts";
import type { AgentEventMap } from "./events.ts";
import type { ExecutionOutcome, ExecutorSettings } from "./executors/index.ts";
import { AGENT_STOPPED_REASON, executeCommand, rejectionFor } from "./executors/index.ts";
import { ackFrame, errorFrame, responseFrame, statusFrame } from "./frames.ts";
import type { Journal, JournalCommand } from "./journal.ts";
import type { Logger } from "./log.ts";
import { killOrphanGroup, processStartTime } from "./process-groups.ts";

/** Reason given for a command that was running when the agent died. */
export const UNKNOWN_OUTCOME_REASON = "agent restarted during execution; outcome unknown";
/** Reasons of the `cancelled` responses. */
export const CANCELLED_BEFORE_START_REASON = "cancelled by the relay before it started; never run";
export const CANCELLED_RUNNING_REASON = "cancelled by the relay while running; process group killed";
export const CANCELLED_UNKNOWN_REASON = "cancelled by the relay before it arrived; it will not run if delivered";

export interface CommandProcessorOptions {
  journal: Journal;
  settings: ExecutorSettings;
  /** This agent's host id, or null while not yet known (then target_host is not checked). */
  hostId: () => string | null;
  /** The relay's clock as best known, for times the relay set (`expires_at`). Default Date.now. */
  relayNow?: () => number;
  /** Hands a frame to the current connection; returns false when there is none (the outbox covers it). */
  send: (frame: object) => boolean;
  logger: Logger;
  events: EventEmitter<AgentEventMap>;
}

interface Running {
  messageId: string;
  abort: AbortController;
  done: Promise<void>;
  /** message_id of the cancel frame that aborted it, once one has. */
  cancelledBy: string | null;
}

/**
 * Turns command frames into executions with the journal as the source of truth:
 * record → ack → run (one at a time, arrival order) → store response → send.
 * A message_id the journal knows is never run again.
 */
export class CommandProcessor {
  readonly #o: CommandProcessorOptions;
  readonly #queue: string[] = [];
  #running: Running | null = null;
  #accepting = true;
  #idleWaiters: (() => void)[] = [];
  /** The last journal write failed (disk full, read-only); cleared by the next one that succeeds. */
  #storageFaulted = false;
  /** Retries a journal write the queue is waiting on (start, finish) after a storage fault. */
  readonly #storageBackoff = new Backoff(100, 5000);
  #storageRetry: NodeJS.Timeout | null = null;

  constructor(opts: CommandProcessorOptions) {
    this.#o = opts;
  }

  get accepting(): boolean {
    return this.#accepting;
  }

  /**
   * Picks up after a restart: commands that were running get the unknown-outcome failure
   * (never a second run); commands acked but not started are queued in arrival order.
   */
  resume(): void {
    const { journal, logger } = this.#o;
    // Whatever those executions left running is killed before they are answered: nothing the agent
    // started outlives the agent's knowledge of it.
    for (const cmd of journal.interrupted()) this.#killLeftovers(cmd.message_id);
    const now = Date.now();
    const recovered = journal.recoverInterrupted(now, (cmd) =>
      responseFrame(cmd.message_id, "failure", { reason: UNKNOWN_OUTCOME_REASON, exit_code: null }, now),
    );
    for (const cmd of recovered) {
      logger.warn("command was running when the agent stopped; answered as unknown outcome", { message_id: cmd.message_id });
      this.#o.events.emit("response", { message_id: cmd.message_id, status: "failure", replay: false });
    }
    for (const cmd of journal.waiting()) this.#queue.push(cmd.message_id);
    if (this.#queue.length > 0) logger.info("resuming journaled commands", { count: this.#queue.length });
    this.#pump();
  }

  /** A parsed command frame; `raw` is journaled verbatim. */
  onCommand(command: CommandMessage, raw: string): void {
    const { journal, logger, events, send } = this.#o;
    const id = command.message_id;
    if (!this.#accepting) {
      // Not acked: the relay keeps it and delivers it to the next run of this agent.
      logger.info("stopping; command left for the relay to redeliver", { message_id: id });
      return;
    }
    const known = journal.get(id);
    if (known) {
      events.emit("command", { message_id: id, command_type: command.command_type, redelivery: true });
      this.#ack(id);
      if (known.response) {
        const stored = JSON.parse(known.response) as { status: AgentEventMap["response"][0]["status"] };
        send(stored);
        events.emit("response", { message_id: id, status: stored.status, replay: true });
      }
      logger.info("redelivered command answered from the journal", { message_id: id, state: known.state });
      return;
    }
    events.emit("command", { message_id: id, command_type: command.command_type, redelivery: false });
    const now = Date.now();
    // expires_at is the relay's time: compared with the relay's clock, so a host clock that runs ahead does not expire it early.
    const rejection = rejectionFor(command, this.#o.settings, this.#o.hostId(), this.#o.relayNow?.() ?? now);
    if (rejection !== null) {
      const response = responseFrame(id, "rejected", { reason: rejection }, now);
      if (this.#write("record", id, () => journal.recordAnswered(id, raw, now, response)) === null) return;
      this.#ack(id);
      send(response);
      events.emit("response", { message_id: id, status: "rejected", replay: false });
      logger.info("command rejected", { message_id: id, reason: rejection });
      return;
    }
    // Not journaled, not acked: the relay redelivers it, and it runs once the journal takes it.
    if (this.#write("record", id, () => journal.record(id, raw, now)) === null) return;
    this.#ack(id);
    this.#queue.push(id);
    logger.debug("command recorded", { message_id: id, command_type: command.command_type, queued: this.#queue.length });
    this.#pump();
  }

  /**
   * A parsed `cancel` frame: acked (once what it changes is on disk), then the command it names is
   * answered with its real response through the outbox: `cancelled` when it had not started (never
   * run), was running (process group killed) or was unknown (tombstoned: a later delivery of it is
   * refused); the stored response when it had already been answered.
   */
  onCancel(cancel: CancelMessage, raw: string): void {
    const { journal, logger, events, send } = this.#o;
    const cancelId = cancel.message_id;
    const id = cancel.original_message_id;
    if (!this.#accepting) {
      // Not acked: the relay resends it; the next run of this agent answers it.
      logger.info("stopping; cancel left for the relay to resend", { message_id: cancelId, command_id: id });
      return;
    }
    const now = Date.now();
    const known = journal.get(id);
    const answerCancelled = (response: object, outcome: AgentEventMap["cancel"][0]["outcome"]) => {
      this.#ack(cancelId);
      send(response);
      events.emit("cancel", { message_id: cancelId, command_id: id, outcome });
      events.emit("response", { message_id: id, status: "cancelled", replay: false });
    };

    if (known === null) {
      const response = responseFrame(id, "cancelled", { reason: CANCELLED_UNKNOWN_REASON, exit_code: null }, now);
      const tombstoned = this.#write("cancel", cancelId, () => journal.recordTombstone(id, raw, cancelId, now, response));
      if (tombstoned === null) return;
      if (tombstoned) {
        answerCancelled(response, "tombstoned");
        logger.info("cancel for an unknown command: tombstoned", { message_id: cancelId, command_id: id });
        return;
      }
    }
    if (known?.state === "received") {
      const response = responseFrame(id, "cancelled", { reason: CANCELLED_BEFORE_START_REASON, exit_code: null }, now);
      const cancelled = this.#write("cancel", cancelId, () => journal.cancelWaiting(id, cancelId, now, response));
      if (cancelled === null) return;
      if (cancelled) {
        const queued = this.#queue.indexOf(id);
        if (queued >= 0) this.#queue.splice(queued, 1);
        answerCancelled(response, "not_started");
        logger.info("cancelled before it started", { message_id: cancelId, command_id: id });
        return;
      }
    }
    const running = this.#running;
    if (running !== null && running.messageId === id && journal.get(id)?.state === "started") {
      if (this.#write("cancel", cancelId, () => journal.noteCancel(id, cancelId)) === null) return;
      this.#ack(cancelId);
      // The response follows once the group is dead (SIGTERM, SIGKILL after the grace).
      const first = running.cancelledBy === null;
      if (first) {
        running.cancelledBy = cancelId;
        running.abort.abort();
      }
      events.emit("cancel", { message_id: cancelId, command_id: id, outcome: first ? "killing" : "already_cancelling" });
      logger.info(first ? "cancelling the running command: killing its process group" : "cancel repeated; already killing", {
        message_id: cancelId,
        command_id: id,
      });
      return;
    }
    // Answered already (finished, rejected, cancelled, tombstoned): the stored response is the truth.
    const entry = journal.get(id);
    if (entry?.response && this.#write("cancel", cancelId, () => journal.requeueResponse(id, now)) === null) return;
    this.#ack(cancelId);
    if (entry?.response) {
      const stored = JSON.parse(entry.response) as { status: AgentEventMap["response"][0]["status"] };
      send(stored);
      events.emit("cancel", { message_id: cancelId, command_id: id, outcome: "answered" });
      events.emit("response", { message_id: id, status: stored.status, replay: true });
      logger.info("cancel for an answered command: stored response resent", {
        message_id: cancelId,
        command_id: id,
        status: stored.status,
      });
      return;
    }
    // Started but not running in this process: only before resume(), which answers it.
    logger.warn("cancel for a command in an unexpected state; acked only", {
      message_id: cancelId,
      command_id: id,
      state: entry?.state ?? null,
    });
  }

  /** Resolves when nothing is running or queued. */
  idle(): Promise<void> {
    if (!this.#running && this.#queue.length === 0) return Promise.resolve();
    return new Promise((resolve) => this.#idleWaiters.push(resolve));
  }

  /**
   * Stops taking commands; the running one gets `graceMs` to finish, then its process group is
   * killed and it is answered "agent stopped". Queued ones stay journaled for the next start.
   */
  async stop(graceMs: number): Promise<void> {
    this.#accepting = false;
    this.#queue.length = 0;
    if (this.#storageRetry) clearTimeout(this.#storageRetry);
    this.#storageRetry = null;
    const running = this.#running;
    if (!running) return;
    let timer: NodeJS.Timeout | undefined;
    const graceOver = new Promise<"grace">((resolve) => {
      timer = setTimeout(() => resolve("grace"), graceMs);
    });
    const first = await Promise.race([running.done.then(() => "done" as const), graceOver]);
    clearTimeout(timer);
    if (first === "grace") {
      this.#o.logger.warn("shutdown grace over; killing the running command", { message_id: running.messageId, grace_ms: graceMs });
      running.abort.abort();
      await running.done;
    }
  }

  /** Kills, if still alive and provably the same, the process groups of a command's open executions. */
  #killLeftovers(commandId: string): void {
    const { journal, logger } = this.#o;
    for (const exec of journal.executions(commandId)) {
      if (exec.finished_at !== null || exec.pid === null) continue;
      const verdict = killOrphanGroup(exec.pid, exec.pid_start_time);
      if (verdict.killed) {
        logger.warn("killed the process group left running by an interrupted execution", {
          message_id: commandId,
          execution_id: exec.id,
          pgid: verdict.pgid,
          start_time: exec.pid_start_time,
          how: verdict.how,
        });
      } else {
        logger.info("no process group of the interrupted execution to kill", {
          message_id: commandId,
          execution_id: exec.id,
          pgid: verdict.pgid,
          why: verdict.why,
        });
      }
    }
  }

  #ack(id: string): void {
    this.#o.send(ackFrame(id));
    this.#o.events.emit("ack_sent", { message_id: id });
  }

  /**
   * One journal write. On failure (disk full, read-only state directory, I/O error) nothing it
   * guards may happen — no ack, no start — so it says so in the log and to the relay (an
   * ERR_AGENT_STORAGE error frame naming the frame) and returns null; the relay redelivers what
   * was not acked. The first success after a failure logs the recovery.
   */
  #write<T>(operation: string, frameId: string | null, fn: () => T): T | null {
    try {
      const out = fn();
      if (this.#storageFaulted) {
        this.#storageFaulted = false;
        this.#storageBackoff.reset();
        this.#o.logger.info("journal writable again; taking commands", { operation });
        this.#o.events.emit("storage_recovered", { operation });
      }
      return out;
    } catch (err) {
      const detail = `agent journal write failed (${operation}): ${(err as Error).message}; not acked, not run`;
      const fields = { operation, message_id: frameId, error: err, code: FrameErrorCode.AGENT_STORAGE };
      if (this.#storageFaulted) this.#o.logger.warn("journal still not writable", fields);
      else
        this.#o.logger.error(
          "journal write failed (disk full or read-only?): commands are not acked or run until it can be written",
          fields,
        );
      this.#storageFaulted = true;
      this.#o.send(errorFrame(FrameErrorCode.AGENT_STORAGE, detail, frameId ?? undefined));
      this.#o.events.emit("storage_fault", { operation, message_id: frameId, error: (err as Error).message });
      return null;
    }
  }

  /** Runs the queue again after a storage fault held it, with backoff while the journal stays unwritable. */
  #retryAfterStorageFault(): void {
    if (this.#storageRetry || !this.#accepting) return;
    this.#storageRetry = setTimeout(() => {
      this.#storageRetry = null;
      this.#pump();
    }, this.#storageBackoff.next());
  }

  #pump(): void {
    if (this.#running || this.#storageRetry) return;
    const next = this.#queue.shift();
    if (next === undefined) {
      for (const resolve of this.#idleWaiters.splice(0)) resolve();
      return;
    }
    const abort = new AbortController();
    const running: Running = { messageId: next, abort, done: Promise.resolve(), cancelledBy: null };
    this.#running = running;
    // Deferred a tick: the ack for this command has been written to the socket before anything runs.
    running.done = new Promise<void>((resolve) => setImmediate(resolve))
      .then(() => this.#run(running))
      .catch((err: unknown) => this.#o.logger.error("command processing failed", { message_id: next, error: err }))
      .finally(() => {
        this.#running = null;
        this.#pump();
      });
  }

  async #run(running: Running): Promise<void> {
    const { journal, logger, events, send, settings } = this.#o;
    const id = running.messageId;
    const signal = running.abort.signal;
    // Stopped between scheduling and starting: it stays journaled and runs on the next start.
    if (!this.#accepting) return;
    const entry = journal.get(id);
    if (entry?.state !== "received") return;
    const command = parseJournaled(entry);
    if (!command) {
      const response = responseFrame(id, "failure", { reason: "journaled command frame is unreadable by this agent", exit_code: null });
      journal.finish(id, null, Date.now(), response);
      send(response);
      return;
    }
    const runningStatus = statusFrame(id, "running");
    const executionId = this.#write("start", id, () => journal.start(id, Date.now(), runningStatus));
    if (executionId === null) {
      // Still journaled as waiting: it starts once the journal can record that it did.
      this.#queue.unshift(id);
      this.#retryAfterStorageFault();
      return;
    }
    send(runningStatus);
    let pid: number | null = null;
    events.emit("execution_started", { message_id: id, execution_id: executionId });
    logger.info("command started", { message_id: id, command_type: command.command_type, timeout_s: command.timeout });
    let seq = 0;
    let outcome: ExecutionOutcome;
    try {
      outcome = await executeCommand(command, settings, {
        signal,
        // The process waits at its start gate until this returns: its group is durable first.
        onSpawn: (p) => {
          pid = p;
          // Unrecorded (storage fault), a restart cannot kill this group; the execution still goes on.
          this.#write("pid", id, () => journal.setPid(executionId, p, processStartTime(p)));
        },
        onProgress: (chunk) => {
          const frame = statusFrame(id, "progress", { output: chunk, seq: seq++ });
          // Progress is best effort: sent even when it could not be queued for resending.
          this.#write("status", id, () => journal.enqueueStatus(frame, id, Date.now()));
          send(frame);
        },
      });
    } catch (err) {
      outcome = { status: "failure", result: { reason: `agent error: ${(err as Error).message}`, exit_code: null } };
    }
    if (running.cancelledBy !== null && outcome.aborted) {
      // Killed for the cancel: what it printed so far and how it ended, under `cancelled`.
      outcome = { status: "cancelled", result: { ...outcome.result, reason: CANCELLED_RUNNING_REASON } };
    } else if (running.cancelledBy === null && signal.aborted && outcome.status !== "failure") {
      outcome = { status: "failure", result: { ...outcome.result, reason: AGENT_STOPPED_REASON } };
    }
    const response = responseFrame(id, outcome.status, outcome.result);
    // The response goes out only once it is stored: until then a restart answers "outcome unknown",
    // never two different answers. Retried with backoff while the journal cannot be written.
    while (this.#write("finish", id, () => journal.finish(id, executionId, Date.now(), response)) === null) {
      if (!this.#accepting) {
        logger.error("stopping with a response the journal could not store; the next start answers it as unknown outcome", {
          message_id: id,
        });
        return;
      }
      await new Promise((resolve) => setTimeout(resolve, this.#storageBackoff.next()));
    }
    send(response);
    events.emit("response", { message_id: id, status: outcome.status, replay: false });
    logger.info("command finished", {
      message_id: id,
      status: outcome.status,
      exit_code: outcome.result.exit_code ?? null,
      execution_time: outcome.result.execution_time ?? null,
      pid,
      ...(running.cancelledBy !== null ? { cancel_id: running.cancelledBy } : {}),
    });
  }
}

function parseJournaled(entry: JournalCommand): CommandMessage | null {
  try {
    const parsed = CommandMessage.safeParse(JSON.parse(entry.frame));
    return parsed.success ? parsed.data : null;
  } catch {
    return null;
  }
}
