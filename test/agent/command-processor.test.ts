import { EventEmitter } from "node:events";
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, test } from "vitest";
import { CommandProcessor, UNKNOWN_OUTCOME_REASON } from "../../agent/command-processor.ts";
import type { AgentEventMap } from "../../agent/events.ts";
import type { ExecutorSettings } from "../../agent/executors/index.ts";
import { statusFrame } from "../../agent/frames.ts";
import { openJournal, type Journal } from "../../agent/journal.ts";
import { silentLogger } from "../../agent/log.ts";
import { EventRecorder } from "./helpers/events.ts";
import { commandFrame } from "./helpers/commands.ts";

const HOST = "0b0a4a54-54b4-4d5b-9b39-1d2c8b3f6a10";
type Sent = { frame: Record<string, unknown>; recorded: boolean; executions: number };

let dir: string;
let journal: Journal;
beforeEach(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), "processor-"));
  journal = openJournal(dir);
});
afterEach(async () => {
  journal.close();
  await rm(dir, { recursive: true, force: true });
});

function processor(settings: Partial<ExecutorSettings> = {}, j: Journal = journal) {
  const sent: Sent[] = [];
  const events = new EventEmitter<AgentEventMap>();
  const recorder = new EventRecorder({ events });
  const p = new CommandProcessor({
    journal: j,
    settings: { allowShell: true, packageManager: null, maxOutputBytes: 64 * 1024, progressIntervalMs: 50, killGraceMs: 1000, ...settings },
    hostId: () => HOST,
    send: (frame) => {
      const f = frame as Record<string, unknown>;
      const id = (f.original_message_id ?? "") as string;
      // What the journal holds at the instant the frame is handed to the socket.
      sent.push({ frame: f, recorded: j.get(id) !== null, executions: j.executionCounts().get(id) ?? 0 });
      return true;
    },
    logger: silentLogger,
    events,
  });
  return { p, sent, recorder };
}

const types = (sent: Sent[]) => sent.map((s) => `${s.frame.message_type}${s.frame.state ? `:${s.frame.state}` : ""}`);

describe("command processor", () => {
  test("records the command, then acks, then executes; the response is journaled and queued", async () => {
    const { p, sent } = processor();
    const cmd = commandFrame(HOST, { command_type: "shell", parameters: { script: "echo hello" } });
    p.onCommand(cmd, JSON.stringify(cmd));
    // Synchronously: the ack is out, the command is on disk, nothing has run.
    expect(types(sent)).toEqual(["ack"]);
    expect(sent[0]).toMatchObject({ recorded: true, executions: 0, frame: { original_message_id: cmd.message_id } });

    await p.idle();
    expect(types(sent)).toEqual(["ack", "status:running", "status:progress", "response"]);
    expect(sent[2]!.frame).toMatchObject({ output: "hello\n", seq: 0 });
    const response = sent[3]!.frame;
    expect(response).toMatchObject({ status: "success", result: { output: "hello\n", exit_code: 0 } });
    expect(journal.executionCounts().get(cmd.message_id)).toBe(1);
    expect(journal.get(cmd.message_id)).toMatchObject({ state: "finished", response: JSON.stringify(response) });
    expect(journal.outbox().map((e) => e.kind)).toEqual(["status", "status", "response"]);
  });

  test("a redelivered command is re-acked and answered from the journal, never executed again", async () => {
    const { p, sent } = processor();
    const cmd = commandFrame(HOST, { command_type: "shell", parameters: { script: "echo once" } });
    p.onCommand(cmd, JSON.stringify(cmd));
    await p.idle();
    const first = sent.find((s) => s.frame.message_type === "response")!.frame;
    sent.length = 0;

    p.onCommand({ ...cmd, attempt: 2 }, JSON.stringify({ ...cmd, attempt: 2 }));
    await p.idle();
    expect(types(sent)).toEqual(["ack", "response"]);
    expect(sent[1]!.frame).toEqual(first);
    expect(journal.executionCounts().get(cmd.message_id)).toBe(1);
  });

  test("a command redelivered while it runs is only re-acked", async () => {
    const { p, sent, recorder } = processor();
    const cmd = commandFrame(HOST, { command_type: "shell", parameters: { script: "sleep 0.3; echo done" } });
    p.onCommand(cmd, JSON.stringify(cmd));
    await recorder.waitFor("execution_started");
    p.onCommand(cmd, JSON.stringify(cmd));
    expect(types(sent)).toEqual(["ack", "status:running", "ack"]);
    await p.idle();
    expect(types(sent)).toEqual(["ack", "status:running", "ack", "status:progress", "response"]);
    expect(journal.executionCounts().get(cmd.message_id)).toBe(1);
  });

  test("long output streams as progress frames with increasing seq, each journaled until acked", async () => {
    const { p, sent } = processor({ progressIntervalMs: 20 });
    // ~120 KiB: more than one 16 KiB chunk, so several progress frames.
    const cmd = commandFrame(HOST, { command_type: "shell", parameters: { script: "i=0; while [ $i -lt 1200 ]; do printf '%099d\\n' $i; i=$((i+1)); done" } });
    p.onCommand(cmd, JSON.stringify(cmd));
    await p.idle();
    const progress = sent.filter((s) => s.frame.state === "progress").map((s) => s.frame);
    expect(progress.length).toBeGreaterThanOrEqual(8);
    expect(progress.map((f) => f.seq)).toEqual(progress.map((_, i) => i));
    expect(progress.every((f) => Buffer.byteLength(f.output as string) <= 16 * 1024)).toBe(true);
    expect(progress.map((f) => f.output).join("")).toHaveLength(120_000);
    expect(journal.outbox().filter((e) => e.kind === "status")).toHaveLength(progress.length + 1);
    expect(sent.at(-1)!.frame.message_type).toBe("response");
  });

  test("commands run one at a time in arrival order", async () => {
    const { p, sent } = processor();
    const cmds = [0, 1, 2].map((i) => commandFrame(HOST, { command_type: "shell", parameters: { script: `echo ${i}` } }));
    for (const c of cmds) p.onCommand(c, JSON.stringify(c));
    await p.idle();
    const order = sent
      .filter((s) => s.frame.message_type !== "ack")
      .map((s) => `${s.frame.state ?? s.frame.message_type}:${cmds.findIndex((c) => c.message_id === s.frame.original_message_id)}`);
    expect(order).toEqual(["running:0", "progress:0", "response:0", "running:1", "progress:1", "response:1", "running:2", "progress:2", "response:2"]);
  });

  test("expired, misaddressed and shell-disabled commands are rejected without executing", async () => {
    const { p, sent } = processor({ allowShell: false });
    const expired = commandFrame(HOST, { command_type: "system_info", parameters: {}, expires_at: new Date(Date.now() - 1000).toISOString() });
    const elsewhere = commandFrame("11111111-2222-4333-8444-555555555555", { command_type: "system_info", parameters: {} });
    const shell = commandFrame(HOST, { command_type: "shell", parameters: { script: "touch /tmp/never" } });
    for (const c of [expired, elsewhere, shell]) p.onCommand(c, JSON.stringify(c));
    await p.idle();
    const responses = sent.filter((s) => s.frame.message_type === "response").map((s) => s.frame);
    expect(responses).toMatchObject([
      { original_message_id: expired.message_id, status: "rejected", result: { reason: "expired before delivery" } },
      { original_message_id: elsewhere.message_id, status: "rejected", result: { reason: expect.stringContaining("addressed to host") } },
      { original_message_id: shell.message_id, status: "rejected", result: { reason: "shell commands are disabled on this agent" } },
    ]);
    expect(sent.filter((s) => s.frame.message_type === "ack")).toHaveLength(3);
    expect(journal.executionCounts().size).toBe(0);
  });

  test("after a crash, a started command gets the unknown-outcome failure and waiting ones run once", async () => {
    const interrupted = commandFrame(HOST, { command_type: "shell", parameters: { script: "echo must-not-run" } });
    const waiting = commandFrame(HOST, { command_type: "shell", parameters: { script: "echo resumed" } });
    journal.record(interrupted.message_id, JSON.stringify(interrupted), Date.now());
    journal.start(interrupted.message_id, Date.now(), statusFrame(interrupted.message_id, "running"));
    journal.record(waiting.message_id, JSON.stringify(waiting), Date.now());
    journal.close();

    // A new process: reopen the journal and resume.
    journal = openJournal(dir);
    const { p, sent } = processor({}, journal);
    p.resume();
    await p.idle();
    const outbox = journal.outbox().map((e) => JSON.parse(e.frame) as Record<string, unknown>);
    expect(outbox.find((f) => f.original_message_id === interrupted.message_id && f.message_type === "response")).toMatchObject({
      status: "failure",
      result: { reason: UNKNOWN_OUTCOME_REASON, exit_code: null },
    });
    expect(sent.find((s) => s.frame.original_message_id === waiting.message_id && s.frame.message_type === "response")!.frame).toMatchObject({
      status: "success",
      result: { output: "resumed\n" },
    });
    expect(journal.executionCounts()).toEqual(new Map([[interrupted.message_id, 1], [waiting.message_id, 1]]));

    // The relay redelivers the interrupted one: the stored failure answers it.
    sent.length = 0;
    p.onCommand(interrupted, JSON.stringify(interrupted));
    expect(types(sent)).toEqual(["ack", "response"]);
    expect(sent[1]!.frame).toMatchObject({ status: "failure", result: { reason: UNKNOWN_OUTCOME_REASON } });
    expect(journal.executionCounts().get(interrupted.message_id)).toBe(1);
  });

  test("stop lets the running command use the grace, then kills it and answers 'agent stopped'", async () => {
    const { p, sent, recorder } = processor({ killGraceMs: 200 });
    const cmd = commandFrame(HOST, { command_type: "shell", parameters: { script: "sleep 30" } });
    p.onCommand(cmd, JSON.stringify(cmd));
    await recorder.waitFor("execution_started");
    const started = Date.now();
    await p.stop(300);
    expect(Date.now() - started).toBeGreaterThanOrEqual(290);
    expect(sent.at(-1)!.frame).toMatchObject({ message_type: "response", status: "failure", result: { reason: "agent stopped" } });

    // No longer accepting: a new command is neither acked nor recorded.
    sent.length = 0;
    const late = commandFrame(HOST, { command_type: "system_info", parameters: {} });
    p.onCommand(late, JSON.stringify(late));
    expect(sent).toEqual([]);
    expect(journal.get(late.message_id)).toBeNull();
  });
});
