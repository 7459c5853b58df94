import { EventEmitter } from "node:events";
import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, test } from "vitest";
import {
  CANCELLED_BEFORE_START_REASON,
  CANCELLED_RUNNING_REASON,
  CANCELLED_UNKNOWN_REASON,
  CommandProcessor,
  UNKNOWN_OUTCOME_REASON,
} from "../../agent/command-processor.ts";
import type { AgentEventMap } from "../../agent/events.ts";
import type { ExecutorSettings } from "../../agent/executors/index.ts";
import { statusFrame } from "../../agent/frames.ts";
import { type Journal, openJournal } from "../../agent/journal.ts";
import { silentLogger } from "../../agent/log.ts";
import type { CancelMessage } from "../../schemas/index.ts";
import { nowRfc3339 } from "../../schemas/index.ts";
import { commandFrame } from "./helpers/commands.ts";
import { EventRecorder } from "./helpers/events.ts";
import { alive, gone } from "./helpers/processes.ts";

const HOST = "0b0a4a54-54b4-4d5b-9b39-1d2c8b3f6a10";
type Sent = { frame: Record<string, unknown>; recorded: boolean; executions: number };

let dir: string;
let journal: Journal;
beforeEach(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), "processor-"));
  journal = openJournal(dir);
});
const processors: CommandProcessor[] = [];
afterEach(async () => {
  // A failed test must not leave a command running: stop kills its process group.
  for (const p of processors.splice(0)) await p.stop(0);
  journal.close();
  await rm(dir, { recursive: true, force: true });
});

function processor(settings: Partial<ExecutorSettings> = {}, j: Journal = journal) {
  const sent: Sent[] = [];
  const waiters = new Set<() => void>();
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
      for (const w of [...waiters]) w();
      return true;
    },
    logger: silentLogger,
    events,
  });
  processors.push(p);
  /** Resolves with the first sent frame matching `pred` (already sent or yet to be), bounded. */
  const waitSent = (pred: (f: Record<string, unknown>) => boolean, what: string, timeoutMs = 10_000) =>
    new Promise<Record<string, unknown>>((resolve, reject) => {
      const check = () => {
        const hit = sent.find((x) => pred(x.frame));
        if (!hit) return;
        clearTimeout(timer);
        waiters.delete(check);
        resolve(hit.frame);
      };
      const timer = setTimeout(() => {
        waiters.delete(check);
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}; sent: ${JSON.stringify(types(sent))}`));
      }, timeoutMs);
      waiters.add(check);
      check();
    });
  return { p, sent, recorder, waitSent };
}

function cancelFrame(commandId: string): CancelMessage {
  return { message_id: crypto.randomUUID(), timestamp: nowRfc3339(), message_type: "cancel", original_message_id: commandId };
}

function cancel(p: CommandProcessor, commandId: string): CancelMessage {
  const c = cancelFrame(commandId);
  p.onCancel(c, JSON.stringify(c));
  return c;
}

const isResponseTo = (id: string) => (f: Record<string, unknown>) => f.message_type === "response" && f.original_message_id === id;

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
    const cmd = commandFrame(HOST, {
      command_type: "shell",
      parameters: { script: "i=0; while [ $i -lt 1200 ]; do printf '%099d\\n' $i; i=$((i+1)); done" },
    });
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
    expect(order).toEqual([
      "running:0",
      "progress:0",
      "response:0",
      "running:1",
      "progress:1",
      "response:1",
      "running:2",
      "progress:2",
      "response:2",
    ]);
  });

  test("expired, misaddressed and shell-disabled commands are rejected without executing", async () => {
    const { p, sent } = processor({ allowShell: false });
    const expired = commandFrame(HOST, {
      command_type: "system_info",
      parameters: {},
      expires_at: new Date(Date.now() - 1000).toISOString(),
    });
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
    expect(
      sent.find((s) => s.frame.original_message_id === waiting.message_id && s.frame.message_type === "response")!.frame,
    ).toMatchObject({
      status: "success",
      result: { output: "resumed\n" },
    });
    expect(journal.executionCounts()).toEqual(
      new Map([
        [interrupted.message_id, 1],
        [waiting.message_id, 1],
      ]),
    );

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

  describe("cancel", () => {
    let work: string;
    beforeEach(async () => {
      work = await mkdtemp(path.join(os.tmpdir(), "cancel-"));
    });
    afterEach(async () => {
      await rm(work, { recursive: true, force: true });
    });

    test("before it starts: acked, answered cancelled and journaled; it never runs, and a redelivery is answered from the journal", async () => {
      const { p, sent, waitSent } = processor();
      const marker = path.join(work, "ran");
      // The queue is busy with a long command, so the second one is journaled but waiting.
      const busy = commandFrame(HOST, { command_type: "shell", parameters: { script: "sleep 30" } });
      const victim = commandFrame(HOST, { command_type: "shell", parameters: { script: `touch '${marker}'` } });
      p.onCommand(busy, JSON.stringify(busy));
      p.onCommand(victim, JSON.stringify(victim));
      await waitSent((f) => f.state === "running" && f.original_message_id === busy.message_id, "busy running");
      expect(journal.get(victim.message_id)!.state).toBe("received");

      const c = cancel(p, victim.message_id);
      // Synchronously: the cancel is acked, then the command is answered; both are on disk already.
      const after = sent.slice(-2);
      expect(after.map((x) => [x.frame.message_type, x.frame.original_message_id])).toEqual([
        ["ack", c.message_id],
        ["response", victim.message_id],
      ]);
      const response = after[1]!.frame;
      expect(response).toMatchObject({ status: "cancelled", result: { reason: CANCELLED_BEFORE_START_REASON, exit_code: null } });
      expect(journal.get(victim.message_id)).toMatchObject({
        state: "finished",
        response: JSON.stringify(response),
        cancel_id: c.message_id,
      });
      expect(journal.outbox().map((e) => e.frame_id)).toContain(response.message_id);

      // The busy one is cancelled too, so the queue drains; the victim never ran.
      cancel(p, busy.message_id);
      await p.idle();
      expect(existsSync(marker)).toBe(false);
      expect(journal.executionCounts().get(victim.message_id)).toBeUndefined();

      // Redelivered: re-acked and answered with the same stored frame, never run.
      sent.length = 0;
      p.onCommand({ ...victim, attempt: 2 }, JSON.stringify({ ...victim, attempt: 2 }));
      await p.idle();
      expect(types(sent)).toEqual(["ack", "response"]);
      expect(sent[1]!.frame).toEqual(response);
      expect(existsSync(marker)).toBe(false);
      expect(journal.executionCounts().get(victim.message_id)).toBeUndefined();
    });

    test("in the instant between being queued and starting: never runs", async () => {
      const { p, sent } = processor();
      const marker = path.join(work, "ran");
      const cmd = commandFrame(HOST, { command_type: "shell", parameters: { script: `touch '${marker}'` } });
      p.onCommand(cmd, JSON.stringify(cmd));
      cancel(p, cmd.message_id);
      await p.idle();
      expect(types(sent)).toEqual(["ack", "ack", "response"]);
      expect(sent[2]!.frame).toMatchObject({ status: "cancelled" });
      expect(existsSync(marker)).toBe(false);
      expect(journal.executionCounts().size).toBe(0);
    });

    test("while running: the whole process group is killed (SIGTERM, SIGKILL after the grace); cancelled with the output so far", async () => {
      const { p, sent, waitSent, recorder } = processor({ killGraceMs: 300 });
      // Shell and child both ignore SIGTERM, so only the SIGKILL after the grace ends them.
      const cmd = commandFrame(HOST, {
        command_type: "shell",
        parameters: { script: "trap '' TERM; echo before; sleep 60 & echo \"child $!\"; wait" },
      });
      p.onCommand(cmd, JSON.stringify(cmd));
      const progress = () =>
        sent
          .filter((x) => x.frame.state === "progress")
          .map((x) => x.frame.output as string)
          .join("");
      await waitSent(() => /child \d+\n/.test(progress()), "the child's pid");
      const child = Number(/child (\d+)/.exec(progress())![1]);
      expect(alive(child)).toBe(true);

      const c = cancel(p, cmd.message_id);
      expect(sent.at(-1)!.frame).toMatchObject({ message_type: "ack", original_message_id: c.message_id });
      // A repeated cancel is acked only; the one response follows the kill.
      const again = cancel(p, cmd.message_id);
      expect(sent.at(-1)!.frame).toMatchObject({ message_type: "ack", original_message_id: again.message_id });
      expect(recorder.all("cancel").map((e) => e.outcome)).toEqual(["killing", "already_cancelling"]);

      const response = await waitSent(isResponseTo(cmd.message_id), "the cancelled response");
      expect(response).toMatchObject({
        status: "cancelled",
        result: { reason: CANCELLED_RUNNING_REASON, output: expect.stringContaining("before\n"), exit_code: null, signal: "SIGKILL" },
      });
      expect((response.result as { output: string }).output).toContain(`child ${child}\n`);
      expect(await gone([child], 3000)).toBe(true);
      await p.idle();
      expect(sent.filter((x) => x.frame.message_type === "response")).toHaveLength(1);
      expect(journal.get(cmd.message_id)).toMatchObject({ state: "finished", response: JSON.stringify(response), cancel_id: c.message_id });
      expect(journal.executions(cmd.message_id)).toMatchObject([{ finished_at: expect.any(Number), pid: expect.any(Number) }]);

      // Cancelled again later, or redelivered: the stored cancelled response, same message_id.
      sent.length = 0;
      cancel(p, cmd.message_id);
      p.onCommand(cmd, JSON.stringify(cmd));
      expect(sent.filter((x) => x.frame.message_type === "response").map((x) => x.frame)).toEqual([response, response]);
      expect(journal.executionCounts().get(cmd.message_id)).toBe(1);
    });

    test("after it finished (or was rejected): the stored response is resent, same message_id, and queued again once acked", async () => {
      const { p, sent } = processor({ allowShell: false });
      const info = commandFrame(HOST, { command_type: "system_info", parameters: {} });
      const shell = commandFrame(HOST, { command_type: "shell", parameters: { script: "echo no" } });
      p.onCommand(info, JSON.stringify(info));
      p.onCommand(shell, JSON.stringify(shell));
      await p.idle();
      const stored = (id: string) => sent.find((x) => isResponseTo(id)(x.frame))!.frame;
      const infoResponse = stored(info.message_id);
      const rejected = stored(shell.message_id);
      expect(infoResponse.status).toBe("success");
      expect(rejected.status).toBe("rejected");

      // The relay had acked the first response already: the cancel puts it back in the outbox.
      journal.ack(infoResponse.message_id as string, Date.now());
      sent.length = 0;
      const c1 = cancel(p, info.message_id);
      const c2 = cancel(p, shell.message_id);
      expect(sent.map((x) => x.frame)).toEqual([
        expect.objectContaining({ message_type: "ack", original_message_id: c1.message_id }),
        infoResponse,
        expect.objectContaining({ message_type: "ack", original_message_id: c2.message_id }),
        rejected,
      ]);
      const queued = journal
        .outbox()
        .filter((e) => e.kind === "response")
        .map((e) => e.frame_id);
      expect(queued).toEqual(expect.arrayContaining([infoResponse.message_id, rejected.message_id]));
      expect(journal.executionCounts().get(info.message_id)).toBe(1);
    });

    test("of an id never seen: tombstoned and answered cancelled; a later delivery of that id is refused, never run", async () => {
      const { p, sent } = processor();
      const marker = path.join(work, "ran");
      const cmd = commandFrame(HOST, { command_type: "shell", parameters: { script: `touch '${marker}'` } });
      const c = cancel(p, cmd.message_id);
      expect(types(sent)).toEqual(["ack", "response"]);
      expect(sent[0]!.frame.original_message_id).toBe(c.message_id);
      const response = sent[1]!.frame;
      expect(response).toMatchObject({
        original_message_id: cmd.message_id,
        status: "cancelled",
        result: { reason: CANCELLED_UNKNOWN_REASON, exit_code: null },
      });
      expect(journal.get(cmd.message_id)).toMatchObject({ state: "finished", response: JSON.stringify(response), cancel_id: c.message_id });

      sent.length = 0;
      p.onCommand(cmd, JSON.stringify(cmd));
      await p.idle();
      expect(types(sent)).toEqual(["ack", "response"]);
      expect(sent[1]!.frame).toEqual(response);
      expect(existsSync(marker)).toBe(false);
      expect(journal.executionCounts().size).toBe(0);
    });

    test("while stopping: neither acked nor acted on (the relay resends it)", async () => {
      const { p, sent } = processor();
      await p.stop(100);
      const cmd = commandFrame(HOST, { command_type: "system_info", parameters: {} });
      cancel(p, cmd.message_id);
      expect(sent).toEqual([]);
      expect(journal.get(cmd.message_id)).toBeNull();
    });
  });
});
