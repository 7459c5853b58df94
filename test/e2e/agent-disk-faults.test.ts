/**
 * The agent's journal cannot be written: its state directory is a small tmpfs, filled to the last
 * block while the agent runs (a real ENOSPC under SQLite, not an injected error; the tests run as
 * root, where a read-only chmod would not stop writes). A command that arrives then is neither
 * acked nor run; the agent logs it and tells the relay (`error` frame ERR_AGENT_STORAGE). Once
 * space is freed, the relay's redelivery is journaled, acked and run exactly once.
 *
 * Needs `mount -t tmpfs` (root with CAP_SYS_ADMIN); skipped, saying so, where mounting is refused.
 */
import { execFile } from "node:child_process";
import { closeSync, openSync, writeSync } from "node:fs";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { afterEach, describe, expect, it } from "vitest";
import { enroll, type Logger, openJournal, startAgent } from "../../agent/index.ts";
import { FrameErrorCode } from "../../schemas/index.ts";
import { startLocalRelay } from "../../scripts/local-relay.ts";
import { EventRecorder } from "../agent/helpers/events.ts";
import { RelayRest, waitUntil } from "../helpers/relay-rest.ts";

const execFileP = promisify(execFile);
const cleanups: (() => Promise<unknown> | unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function tmp(prefix: string): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), prefix));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** A tmpfs of `size` mounted on a new directory, or null when this machine does not allow it. */
async function smallDisk(size: string): Promise<string | null> {
  const dir = await tmp("fleet-disk-");
  try {
    await execFileP("mount", ["-t", "tmpfs", "-o", `size=${size},mode=0700`, "tmpfs", dir]);
  } catch {
    return null;
  }
  // Lazily if still busy (an agent that did not close its journal), so a failed run leaves no mount behind.
  cleanups.push(() => execFileP("umount", [dir]).catch(() => execFileP("umount", ["-l", dir])));
  return dir;
}

/** Writes a file until the filesystem says ENOSPC; returns its path. */
function fill(dir: string): string {
  const file = path.join(dir, "filler");
  const fd = openSync(file, "w");
  const block = Buffer.alloc(4096, 0x61);
  try {
    for (;;) writeSync(fd, block);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOSPC") throw err;
  } finally {
    closeSync(fd);
  }
  return file;
}

describe("the journal cannot be written (disk full)", () => {
  it("no ack, no execution, an ERR_AGENT_STORAGE error frame; after space is freed the redelivery runs exactly once", async (ctx) => {
    const disk = await smallDisk("2m");
    if (disk === null) {
      ctx.annotate("mount -t tmpfs is not permitted here; the disk-full test needs it");
      ctx.skip();
    }
    const stateDir = disk!;
    const relayDir = await tmp("fleet-disk-relay-");
    const markerDir = await tmp("fleet-disk-marker-");
    const marker = path.join(markerDir, "runs.txt");
    // Redelivery within a second of a missing ack, so the test sees it happen more than once.
    const relay = await startLocalRelay({
      port: 0,
      edgePort: 0,
      stateDir: relayDir,
      quiet: true,
      bindings: { ACK_TIMEOUT_MS: "700", RETRY_BASE_MS: "100", RETRY_CAP_MS: "700" },
    });
    cleanups.push(() => relay.stop());
    const rest = await RelayRest.create(relay.url, relayDir);
    const token = await rest.enrollmentToken();
    const { hostId } = await enroll({ relay: relay.edgeUrl!, token, stateDir, caFile: relay.caCertPath, hostname: "full-disk-1" });

    const lines: { level: string; msg: string; fields: Record<string, unknown> }[] = [];
    const keep =
      (level: string) =>
      (msg: string, fields: Record<string, unknown> = {}) =>
        void lines.push({ level, msg, fields });
    const logger: Logger = { debug: keep("debug"), info: keep("info"), warn: keep("warn"), error: keep("error") };
    const agent = await startAgent({ stateDir, logger, allowShell: true, reconnectBaseMs: 50, reconnectCapMs: 300 });
    cleanups.push(() => agent.stop("test over"));
    const events = new EventRecorder(agent);
    await events.waitFor("welcome", () => true, 20_000);

    const filler = fill(stateDir);
    const id = await rest.send(hostId, { command_type: "shell", parameters: { script: `echo ran >> '${marker}'` }, timeout: 30 });
    // Refused on first delivery and again on a redelivery: nothing acked, nothing run.
    await events.waitFor("storage_fault", (e) => e.message_id === id, 20_000, 2);
    expect(events.all("ack_sent").filter((e) => e.message_id === id)).toEqual([]);
    expect(events.all("execution_started")).toEqual([]);
    await expect(readFile(marker, "utf8")).rejects.toMatchObject({ code: "ENOENT" });
    const pending = await rest.command(hostId, id);
    // Sent twice or more, never acked: still queued for the relay (it moves to delivered on the ack).
    expect(pending.state, JSON.stringify(pending)).toBe("queued");
    expect(pending.attempts).toBeGreaterThanOrEqual(2);
    // Said in the log (once as an error, then as "still") and to the relay, which recorded the error frames.
    const faultLog = lines.find((l) => l.msg.startsWith("journal write failed"));
    expect(faultLog).toMatchObject({ level: "error", fields: { operation: "record", message_id: id, code: "ERR_AGENT_STORAGE" } });
    expect(String((faultLog!.fields.error as Error).message)).toMatch(/database or disk is full/);
    const ns = await relay.miniflare.getDurableObjectNamespace("HOST_RELAY");
    const stub = ns.get(ns.idFromName(hostId)) as unknown as { frameErrors(): Promise<{ code: string; detail: string }[]> };
    const recorded = await waitUntil(
      async () => {
        const errs = (await stub.frameErrors()).filter((e) => e.code === `agent:${FrameErrorCode.AGENT_STORAGE}`);
        return errs.length >= 2 ? errs : undefined;
      },
      { what: "the relay to record the agent's storage errors" },
    );
    expect(recorded[0]!.detail).toMatch(/agent journal write failed \(record\): database or disk is full; not acked, not run/);

    // Space again: the next redelivery is journaled, acked and run, once.
    await rm(filler);
    const done = await rest.waitForCommand(hostId, id, undefined, 20_000);
    expect(done.state, JSON.stringify(done)).toBe("succeeded");
    expect(events.all("storage_recovered")).toHaveLength(1);
    expect(events.all("ack_sent").filter((e) => e.message_id === id).length).toBeGreaterThanOrEqual(1);
    expect(events.all("execution_started").map((e) => e.message_id)).toEqual([id]);
    expect((await readFile(marker, "utf8")).trim().split("\n")).toEqual(["ran"]);
    expect(lines.map((l) => l.msg)).toContain("journal writable again; taking commands");
    const journal = openJournal(stateDir);
    try {
      expect(Object.fromEntries(journal.executionCounts())).toEqual({ [id]: 1 });
    } finally {
      journal.close();
    }
  });
});
