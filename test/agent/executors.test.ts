import { spawn } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { describe, expect, test } from "vitest";
import { type ExecutorSettings, executeCommand, rejectionFor } from "../../agent/executors/index.ts";
import { detectPackageManager } from "../../agent/executors/package-managers.ts";
import { PROGRESS_CHUNK_BYTES } from "../../agent/executors/progress-stream.ts";
import { runProcess } from "../../agent/executors/run-process.ts";
import { killOrphanGroup, processGroupExists, processStartTime } from "../../agent/process-groups.ts";
import { commandFrame } from "./helpers/commands.ts";
import { gone } from "./helpers/processes.ts";

const HOST = "3d1e5c9e-8f0a-4b1c-9d2e-7f3a4b5c6d7e";
const settings = (over: Partial<ExecutorSettings> = {}): ExecutorSettings => ({
  allowShell: true,
  packageManager: detectPackageManager(),
  maxOutputBytes: 256 * 1024,
  progressIntervalMs: 200,
  killGraceMs: 1000,
  ...over,
});

describe("shell executor", () => {
  test("disabled: rejected with the documented reason, nothing spawned", async () => {
    const cmd = commandFrame(HOST, { command_type: "shell", parameters: { script: "echo no" } });
    expect(rejectionFor(cmd, settings({ allowShell: false }), HOST, Date.now())).toBe("shell commands are disabled on this agent");
    const out = await executeCommand(cmd, settings({ allowShell: false }));
    expect(out).toEqual({ status: "rejected", result: { reason: "shell commands are disabled on this agent" } });
  });

  test("enabled: stdout and stderr captured, cwd and env applied, exit code mapped", async () => {
    const ok = await executeCommand(
      commandFrame(HOST, {
        command_type: "shell",
        parameters: {
          script: 'echo "$GREETING from $(pwd)"; echo oops >&2; echo "$LC_ALL $DEBIAN_FRONTEND"',
          cwd: "/tmp",
          env: { GREETING: "hi" },
        },
      }),
      settings(),
    );
    expect(ok.status).toBe("success");
    expect(ok.result.output).toContain("hi from /tmp\n");
    expect(ok.result.output).toContain("oops\n");
    expect(ok.result.output).toContain("C noninteractive\n");
    expect(ok.result.exit_code).toBe(0);
    expect(ok.result.execution_time).toBeGreaterThan(0);

    const bad = await executeCommand(commandFrame(HOST, { command_type: "shell", parameters: { script: "exit 7" } }), settings());
    expect(bad).toMatchObject({ status: "failure", result: { exit_code: 7 } });
  });

  test("timeout kills the whole process group", async () => {
    const cmd = commandFrame(HOST, {
      command_type: "shell",
      timeout: 1,
      parameters: { script: "sleep 100 & echo $!; sleep 100 & echo $!; wait" },
    });
    const started = Date.now();
    const out = await executeCommand(cmd, settings());
    expect(Date.now() - started).toBeLessThan(4000);
    expect(out.status).toBe("timeout");
    expect(out.result.reason).toMatch(/timed out after 1 s/);
    const pids = (out.result.output ?? "").trim().split("\n").map(Number);
    expect(pids).toHaveLength(2);
    expect(pids.every((p) => Number.isInteger(p) && p > 1)).toBe(true);
    expect(await gone(pids, 3000)).toBe(true);
  });

  test("a group that ignores SIGTERM gets SIGKILL after the grace", async () => {
    const out = await runProcess({
      argv: ["/bin/sh", "-c", "trap '' TERM; echo $$; while :; do sleep 0.05; done"],
      env: process.env,
      timeoutMs: 200,
      maxOutputBytes: 1024,
      killGraceMs: 300,
    });
    expect(out.timedOut).toBe(true);
    expect(out.signal).toBe("SIGKILL");
  });

  test("output is bounded to the last bytes and streamed as ordered progress chunks", async () => {
    const chunks: string[] = [];
    // ~600 KiB in 100-byte lines (line i = "i" padded): more than both limits.
    const script = "i=0; while [ $i -lt 6000 ]; do printf '%099d\\n' $i; i=$((i+1)); done";
    const out = await executeCommand(
      commandFrame(HOST, { command_type: "shell", parameters: { script } }),
      settings({ maxOutputBytes: 64 * 1024, progressIntervalMs: 50 }),
      { onProgress: (c) => chunks.push(c) },
    );
    expect(out.status).toBe("success");
    const output = out.result.output!;
    expect(output).toMatch(/^\[output truncated: first \d+ bytes dropped\]\n/);
    const body = output.slice(output.indexOf("\n") + 1);
    expect(Buffer.byteLength(body)).toBeLessThanOrEqual(64 * 1024);
    expect(body.endsWith(`${"5999".padStart(99, "0")}\n`)).toBe(true);
    expect(out.result.output_truncated_bytes).toBe(600_000 - Buffer.byteLength(body));

    expect(chunks.length).toBeGreaterThan(1);
    expect(chunks.every((c) => Buffer.byteLength(c) <= PROGRESS_CHUNK_BYTES)).toBe(true);
    // Streamed in order and complete: the chunks concatenate to the full output.
    const streamed = chunks.join("");
    expect(streamed.length).toBe(600_000);
    expect(streamed.startsWith(`${"0".padStart(99, "0")}\n${"1".padStart(99, "0")}\n`)).toBe(true);
  });
});

describe("start gate", () => {
  test("the command does not start before onSpawn returns; if onSpawn throws it never runs", async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), "gate-"));
    try {
      const marker = path.join(dir, "ran");
      let leaderStart: number | null = null;
      let sawMarker: boolean | null = null;
      const refused = await runProcess({
        argv: ["/bin/sh", "-c", `echo ran > '${marker}'`],
        env: process.env,
        timeoutMs: 10_000,
        maxOutputBytes: 1024,
        onSpawn: (pid) => {
          sawMarker = existsSync(marker);
          leaderStart = processStartTime(pid);
          throw new Error("journal is read-only");
        },
      });
      expect(sawMarker).toBe(false);
      expect(leaderStart).toEqual(expect.any(Number));
      expect(refused.spawnError?.message).toBe("journal is read-only");
      expect(existsSync(marker)).toBe(false);

      // Let through: the same command runs, in the process (group) onSpawn was given.
      let spawned: number | null = null;
      const ok = await runProcess({
        argv: ["/bin/sh", "-c", `echo $$ > '${marker}'; echo ok`],
        env: process.env,
        timeoutMs: 10_000,
        maxOutputBytes: 1024,
        onSpawn: (pid) => {
          spawned = pid;
        },
      });
      expect(ok).toMatchObject({ exitCode: 0, output: "ok\n", spawnError: null });
      expect(Number(readFileSync(marker, "utf8"))).toBe(spawned);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test("a missing program is still 'could not start', with nothing spawned", async () => {
    const out = await executeCommand(
      commandFrame(HOST, { command_type: "package_operation", parameters: { operation: "update", packages: [] } }),
      settings({ packageManager: "apk" }),
      { onSpawn: () => expect.unreachable("nothing may be spawned") },
    );
    if (existsSync("/sbin/apk") || existsSync("/usr/sbin/apk") || existsSync("/usr/bin/apk")) return;
    expect(out).toMatchObject({ status: "failure", result: { reason: expect.stringMatching(/^could not start: spawn apk ENOENT/) } });
  });
});

describe("leftover process groups", () => {
  test("killed only when the leader's start time matches, or the leader is gone but the group lives", async () => {
    // A group whose leader stays: `sleep` itself leads it.
    const leader = spawn("sleep", ["60"], { detached: true, stdio: "ignore" });
    const leaderExit = new Promise((r) => leader.on("exit", r));
    const pid = leader.pid!;
    const start = processStartTime(pid);
    expect(start).toEqual(expect.any(Number));
    expect(killOrphanGroup(pid, start! + 1)).toMatchObject({ killed: false, why: expect.stringMatching(/recycled/) });
    expect(killOrphanGroup(pid, null)).toMatchObject({ killed: false });
    expect(processGroupExists(pid)).toBe(true);
    expect(killOrphanGroup(pid, start)).toMatchObject({ killed: true, how: "start time matches" });
    await leaderExit;
    expect(processGroupExists(pid)).toBe(false);
    expect(killOrphanGroup(pid, start)).toMatchObject({ killed: false, why: "process group is gone" });

    // A group whose leader has exited and been reaped, leaving a member behind.
    const sh = spawn("/bin/sh", ["-c", "sleep 60 >/dev/null 2>&1 & echo $!"], { detached: true, stdio: ["ignore", "pipe", "ignore"] });
    let out = "";
    sh.stdout.on("data", (d: Buffer) => (out += d.toString()));
    await new Promise((r) => sh.on("close", r));
    const member = Number(out.trim());
    expect(processStartTime(sh.pid!)).toBeNull();
    expect(processGroupExists(sh.pid!)).toBe(true);
    expect(killOrphanGroup(sh.pid!, 12345)).toMatchObject({ killed: true, how: "group exists; start time unreadable" });
    expect(await gone([member], 3000)).toBe(true);
  });
});

describe("package_operation executor", () => {
  test("a real apt-get -s install bash exits 0 with a parsed plan", async (ctx) => {
    if (detectPackageManager() !== "apt-get") ctx.skip("apt-get is not on PATH on this machine");
    const out = await executeCommand(
      commandFrame(HOST, {
        command_type: "package_operation",
        timeout: 120,
        parameters: { operation: "install", packages: ["bash"], options: { simulate: true } },
      }),
      settings({ packageManager: "apt-get" }),
    );
    expect(out.status).toBe("success");
    expect(out.result.exit_code).toBe(0);
    expect(out.result.execution_time).toBeGreaterThan(0);
    expect(out.result.output).toMatch(/bash/);
    expect(out.result).toMatchObject({ package_manager: "apt-get", simulated: true });
    // bash is installed already: either nothing to do, or an upgrade listed as `Inst bash`.
    const planned = out.result.installed_packages as string[];
    expect(Array.isArray(planned)).toBe(true);
    if (/^Inst /m.test(out.result.output!)) expect(planned).toContain("bash");
    else expect(out.result.output).toMatch(/bash is already the newest version/);
  });

  test("no package manager: rejected before anything runs", () => {
    const cmd = commandFrame(HOST, { command_type: "package_operation", parameters: { operation: "install", packages: ["nginx"] } });
    expect(rejectionFor(cmd, settings({ packageManager: null }), HOST, Date.now())).toBe("no supported package manager found on this host");
  });
});

describe("system_info executor", () => {
  test("reports OS, kernel, arch, CPU and memory in fields and readable output", async () => {
    const out = await executeCommand(commandFrame(HOST, { command_type: "system_info", parameters: {} }), settings());
    expect(out.status).toBe("success");
    const r = out.result as Record<string, any>;
    expect(r.os.name).toEqual(expect.any(String));
    expect(r.kernel).toEqual(expect.any(String));
    expect(r.arch).toEqual(expect.any(String));
    expect(r.cpu.count).toBeGreaterThan(0);
    expect(r.memory.total_bytes).toBeGreaterThan(r.memory.free_bytes);
    expect(r.uptime).toBeGreaterThanOrEqual(0);
    expect(r.output).toMatch(/^os: .+\nkernel: .+\n/);
    expect(r.exit_code).toBe(0);
  });
});
