import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { DatabaseSync } from "node:sqlite";
import { afterEach, beforeEach, describe, expect, test } from "vitest";
import { responseFrame, statusFrame } from "../../agent/frames.ts";
import type { Journal } from "../../agent/journal.ts";
import { JOURNAL_FILE, openJournal } from "../../agent/journal.ts";
import { commandFrame } from "./helpers/commands.ts";

const DAY = 86_400_000;
const HOST = "6f9619ff-8b86-4d01-b42d-00cf4fc964ff";

let dir: string;
const open: Journal[] = [];
function journalAt(d = dir): Journal {
  const j = openJournal(d);
  open.push(j);
  return j;
}

beforeEach(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), "journal-"));
});
afterEach(async () => {
  for (const j of open.splice(0)) j.close();
  await rm(dir, { recursive: true, force: true });
});

describe("journal", () => {
  test("uses WAL with synchronous=FULL and survives reopening", () => {
    const j = journalAt();
    const cmd = commandFrame(HOST, { command_type: "system_info", parameters: {} });
    expect(j.record(cmd.message_id, JSON.stringify(cmd), 1000)).toBe(true);
    expect(j.record(cmd.message_id, JSON.stringify(cmd), 2000)).toBe(false);
    j.close();
    const again = journalAt();
    expect(again.get(cmd.message_id)).toMatchObject({ state: "received", received_at: 1000 });
    expect(again.waiting().map((c) => c.message_id)).toEqual([cmd.message_id]);
  });

  test("outbox keeps unacked frames in first-queued order across reopen; acks remove them", () => {
    const j = journalAt();
    const cmd = commandFrame(HOST, { command_type: "system_info", parameters: {} });
    j.record(cmd.message_id, JSON.stringify(cmd), 1);
    const running = statusFrame(cmd.message_id, "running");
    const exec = j.start(cmd.message_id, 2, running);
    const progress = statusFrame(cmd.message_id, "progress", { output: "x", seq: 0 });
    j.enqueueStatus(progress, cmd.message_id, 3);
    const response = responseFrame(cmd.message_id, "success", { exit_code: 0 });
    j.finish(cmd.message_id, exec, 4, response);
    expect(j.outbox().map((e) => e.frame_id)).toEqual([running.message_id, progress.message_id, response.message_id]);

    expect(j.ack(progress.message_id, 5)).toBe(true);
    expect(j.ack(progress.message_id, 5)).toBe(false);
    j.close();
    const again = journalAt();
    expect(again.outbox().map((e) => e.frame_id)).toEqual([running.message_id, response.message_id]);
    expect(JSON.parse(again.outbox()[1]!.frame)).toEqual(response);
    expect(again.get(cmd.message_id)!.response_acked_at).toBeNull();
    again.ack(response.message_id, 6);
    expect(again.get(cmd.message_id)!.response_acked_at).toBe(6);
  });

  test("execution records count actual executions per message_id", () => {
    const j = journalAt();
    const a = commandFrame(HOST, { command_type: "system_info", parameters: {} });
    const b = commandFrame(HOST, { command_type: "system_info", parameters: {} });
    j.record(a.message_id, JSON.stringify(a), 1);
    j.record(b.message_id, JSON.stringify(b), 1);
    const id = j.start(a.message_id, 2, statusFrame(a.message_id, "running"));
    j.setPid(id, 4242);
    expect(() => j.start(a.message_id, 3, statusFrame(a.message_id, "running"))).toThrow(/not waiting to start/);
    expect(j.executionCounts()).toEqual(new Map([[a.message_id, 1]]));
    expect(j.executions(a.message_id)).toEqual([
      { id, message_id: a.message_id, started_at: 2, finished_at: null, pid: 4242, pid_start_time: null },
    ]);
  });

  test("prunes only answered, acked entries older than the retention", () => {
    const j = journalAt();
    const now = 100 * DAY;
    const make = (finishedAt: number, acked: boolean) => {
      const cmd = commandFrame(HOST, { command_type: "system_info", parameters: {} });
      j.record(cmd.message_id, JSON.stringify(cmd), finishedAt);
      const exec = j.start(cmd.message_id, finishedAt, statusFrame(cmd.message_id, "running"));
      const response = responseFrame(cmd.message_id, "success", {});
      j.finish(cmd.message_id, exec, finishedAt, response);
      if (acked) j.ack(response.message_id, finishedAt);
      return cmd.message_id;
    };
    const oldAcked = make(now - 40 * DAY, true);
    const oldUnacked = make(now - 40 * DAY, false);
    const recentAcked = make(now - 1 * DAY, true);
    const stillWaiting = commandFrame(HOST, { command_type: "system_info", parameters: {} });
    j.record(stillWaiting.message_id, JSON.stringify(stillWaiting), now - 50 * DAY);

    expect(j.prune(now, 35 * DAY)).toBe(1);
    expect(j.get(oldAcked)).toBeNull();
    expect(j.executions(oldAcked)).toEqual([]);
    expect(j.get(oldUnacked)).not.toBeNull();
    expect(j.get(recentAcked)).not.toBeNull();
    expect(j.get(stillWaiting.message_id)).not.toBeNull();
    expect(j.prune(now, 35 * DAY)).toBe(0);
  });

  test("interrupted commands are answered as unknown outcome, never re-run", () => {
    const j = journalAt();
    const cmd = commandFrame(HOST, { command_type: "system_info", parameters: {} });
    j.record(cmd.message_id, JSON.stringify(cmd), 1);
    j.start(cmd.message_id, 2, statusFrame(cmd.message_id, "running"));
    j.close();

    const again = journalAt();
    const recovered = again.recoverInterrupted(10, (c) => responseFrame(c.message_id, "failure", { reason: "unknown", exit_code: null }));
    expect(recovered.map((c) => c.message_id)).toEqual([cmd.message_id]);
    expect(again.get(cmd.message_id)).toMatchObject({ state: "finished", finished_at: 10 });
    expect(again.interrupted()).toEqual([]);
    const last = again.outbox().at(-1)!;
    expect(JSON.parse(last.frame)).toMatchObject({ message_type: "response", original_message_id: cmd.message_id, status: "failure" });
    expect(again.executionCounts().get(cmd.message_id)).toBe(1);
  });

  test("a schema 1 journal is migrated in place: rows kept, new columns null", () => {
    // Schema 1 exactly as released.
    const db = new DatabaseSync(path.join(dir, JOURNAL_FILE));
    db.exec(`
      CREATE TABLE commands (seq INTEGER PRIMARY KEY AUTOINCREMENT, message_id TEXT NOT NULL UNIQUE, frame TEXT NOT NULL,
        received_at INTEGER NOT NULL, state TEXT NOT NULL CHECK (state IN ('received', 'started', 'finished')), started_at INTEGER,
        finished_at INTEGER, response TEXT, response_acked_at INTEGER);
      CREATE INDEX commands_open ON commands (state) WHERE state != 'finished';
      CREATE TABLE executions (id INTEGER PRIMARY KEY AUTOINCREMENT, message_id TEXT NOT NULL, started_at INTEGER NOT NULL,
        finished_at INTEGER, pid INTEGER);
      CREATE INDEX executions_by_command ON executions (message_id);
      CREATE TABLE outbox (seq INTEGER PRIMARY KEY AUTOINCREMENT, frame_id TEXT NOT NULL UNIQUE, command_id TEXT,
        kind TEXT NOT NULL CHECK (kind IN ('status', 'response')), frame TEXT NOT NULL, created_at INTEGER NOT NULL);
      PRAGMA user_version = 1;
    `);
    const cmd = commandFrame(HOST, { command_type: "system_info", parameters: {} });
    db.prepare("INSERT INTO commands (message_id, frame, received_at, state, started_at) VALUES (?, ?, 1, 'started', 2)").run(
      cmd.message_id,
      JSON.stringify(cmd),
    );
    db.prepare("INSERT INTO executions (message_id, started_at, pid) VALUES (?, 2, 4242)").run(cmd.message_id);
    db.close();

    const j = journalAt();
    expect(j.interrupted().map((c) => c.message_id)).toEqual([cmd.message_id]);
    expect(j.get(cmd.message_id)).toMatchObject({ state: "started", cancel_id: null });
    expect(j.executions(cmd.message_id)).toEqual([
      { id: 1, message_id: cmd.message_id, started_at: 2, finished_at: null, pid: 4242, pid_start_time: null },
    ]);
    j.close();
    const raw = new DatabaseSync(path.join(dir, JOURNAL_FILE));
    expect(raw.prepare("PRAGMA user_version").get()).toEqual({ user_version: 2 });
    raw.close();
    // Reopening a migrated journal changes nothing.
    expect(journalAt().executions(cmd.message_id)).toHaveLength(1);
  });

  test("cancel bookkeeping: tombstones, cancelling a waiting command, re-queueing a stored response", () => {
    const j = journalAt();
    const cancelId = crypto.randomUUID();
    const unknown = crypto.randomUUID();
    const tomb = responseFrame(unknown, "cancelled", { reason: "never seen", exit_code: null });
    expect(j.recordTombstone(unknown, '{"message_type":"cancel"}', cancelId, 5, tomb)).toBe(true);
    expect(j.recordTombstone(unknown, "{}", cancelId, 6, tomb)).toBe(false);
    expect(j.get(unknown)).toMatchObject({ state: "finished", response: JSON.stringify(tomb), cancel_id: cancelId });
    // A delivery of that id afterwards is not a new command.
    expect(j.record(unknown, "{}", 7)).toBe(false);

    const waiting = commandFrame(HOST, { command_type: "system_info", parameters: {} });
    j.record(waiting.message_id, JSON.stringify(waiting), 1);
    const cancelled = responseFrame(waiting.message_id, "cancelled", { exit_code: null });
    expect(j.cancelWaiting(waiting.message_id, cancelId, 8, cancelled)).toBe(true);
    expect(j.cancelWaiting(waiting.message_id, cancelId, 9, cancelled)).toBe(false);
    expect(j.waiting()).toEqual([]);
    expect(j.get(waiting.message_id)).toMatchObject({
      state: "finished",
      finished_at: 8,
      response: JSON.stringify(cancelled),
      cancel_id: cancelId,
    });
    expect(j.outbox().map((e) => e.frame_id)).toEqual([tomb.message_id, cancelled.message_id]);

    // A started command is not "waiting": it must be killed, not just marked.
    const started = commandFrame(HOST, { command_type: "system_info", parameters: {} });
    j.record(started.message_id, JSON.stringify(started), 1);
    j.start(started.message_id, 2, statusFrame(started.message_id, "running"));
    expect(j.cancelWaiting(started.message_id, cancelId, 9, cancelled)).toBe(false);
    j.noteCancel(started.message_id, cancelId);
    j.noteCancel(started.message_id, crypto.randomUUID());
    expect(j.get(started.message_id)).toMatchObject({ state: "started", cancel_id: cancelId });

    // Stored response still queued: nothing to do; acked: queued again, same frame.
    expect(j.requeueResponse(unknown, 10)).toBe(false);
    j.ack(tomb.message_id, 11);
    expect(j.requeueResponse(unknown, 12)).toBe(true);
    expect(JSON.parse(j.outbox().at(-1)!.frame)).toEqual(tomb);
    expect(j.requeueResponse(started.message_id, 12)).toBe(false);
  });
});
