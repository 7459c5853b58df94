import { mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, test } from "vitest";
import { OPTION_SPECS, parseCli, runOptions } from "../../agent/cli-options.ts";
import { UNKNOWN_OUTCOME_REASON } from "../../agent/command-processor.ts";
import { certificateMatchesKey } from "../../agent/csr.ts";
import { ConfigError, startAgent } from "../../agent/index.ts";
import { openJournal } from "../../agent/journal.ts";
import { silentLogger } from "../../agent/log.ts";
import { processGroupExists } from "../../agent/process-groups.ts";
import { type AgentProcess, exitOf, spawnAgent } from "./helpers/agent-process.ts";
import { FakeRelay } from "./helpers/fake-relay.ts";
import { alive, gone } from "./helpers/processes.ts";
import { createTestPki, enrolledStateDir, type TestPki } from "./helpers/test-pki.ts";

let pki: TestPki;
const cleanups: (() => Promise<void> | void)[] = [];
beforeAll(async () => {
  pki = await createTestPki();
});
afterAll(async () => {
  await rm(pki.dir, { recursive: true, force: true });
});
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function tmpDir(prefix: string): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), prefix));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

async function fakeRelay(opts: { tokens?: string[] } = {}): Promise<FakeRelay> {
  const relay = await FakeRelay.start({ pki, hostId: crypto.randomUUID(), ...opts });
  cleanups.push(() => relay.close());
  return relay;
}

function track(p: AgentProcess): AgentProcess {
  cleanups.push(() => {
    if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill("SIGKILL");
  });
  return p;
}

function logLines(p: AgentProcess): Record<string, unknown>[] {
  return p
    .stderr()
    .split("\n")
    .filter((l) => l.startsWith("{"))
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

describe("cli --help", () => {
  test.each(["enroll", "run"] as const)("%s --help explains every option with its default", async (command) => {
    const p = track(spawnAgent([command, "--help"]));
    expect((await exitOf(p)).code).toBe(0);
    const out = p.stdout();
    for (const spec of OPTION_SPECS.filter((s) => s.commands.includes(command))) {
      expect(out).toContain(`--${spec.flag}`);
      const def = typeof spec.default === "string" ? spec.default : spec.default[command];
      expect(out).toContain(`Default: ${def}.`);
      if (spec.env) expect(out).toContain(spec.env);
    }
  });

  test("no command prints usage and exits 2", async () => {
    const p = track(spawnAgent([]));
    expect((await exitOf(p)).code).toBe(2);
    expect(p.stdout()).toMatch(/Usage: fleet-agent <command>/);
  });
});

describe("configuration precedence", () => {
  test("flags > environment > config file > defaults", async () => {
    const dir = await tmpDir("cfg-");
    await writeFile(
      path.join(dir, "config.json"),
      JSON.stringify({ reconnect_cap: "30s", allow_shell: true, max_output: "128KiB", heartbeat: 15 }),
    );
    const env = { FLEET_AGENT_STATE_DIR: dir, FLEET_AGENT_RECONNECT_CAP: "20s" };
    const opts = (argv: string[], e: NodeJS.ProcessEnv) => runOptions(parseCli("run", argv, e));

    expect(opts(["--reconnect-cap", "10s"], env).reconnectCapMs).toBe(10_000);
    expect(opts([], env).reconnectCapMs).toBe(20_000);
    expect(opts([], { FLEET_AGENT_STATE_DIR: dir }).reconnectCapMs).toBe(30_000);
    expect(opts(["--state-dir", await tmpDir("empty-")], {}).reconnectCapMs).toBeUndefined();

    const fromFile = opts([], env);
    expect(fromFile).toMatchObject({ stateDir: dir, allowShell: true, maxOutputBytes: 128 * 1024, heartbeatIntervalMs: 15_000 });
    expect(opts(["--no-allow-shell"], env).allowShell).toBe(false);
    expect(opts([], { ...env, FLEET_AGENT_ALLOW_SHELL: "false" }).allowShell).toBe(false);
  });

  test("--config names another file; unknown keys and bad values are refused", async () => {
    const dir = await tmpDir("cfg-");
    const file = path.join(dir, "agent.json5");
    await writeFile(file, JSON.stringify({ state_dir: dir, shutdown_grace: "5s" }));
    expect(runOptions(parseCli("run", ["--config", file], {}))).toMatchObject({ stateDir: dir, shutdownGraceMs: 5000 });

    await writeFile(file, JSON.stringify({ reconect_cap: "5s" }));
    expect(() => parseCli("run", ["--config", file], {})).toThrow(/unknown key "reconect_cap"/);
    expect(() => runOptions(parseCli("run", ["--state-dir", dir, "--reconnect-cap", "soon"], {}))).toThrow(ConfigError);
    expect(() => parseCli("run", ["--bogus"], {})).toThrow(ConfigError);
    expect(() => parseCli("run", ["--config", path.join(dir, "missing.json")], {})).toThrow(/cannot read config file/);
  });

  test("--ca-file and --system-ca: the higher-precedence source wins", async () => {
    const dir = await tmpDir("cfg-");
    await writeFile(path.join(dir, "config.json"), JSON.stringify({ system_ca: true }));
    expect(runOptions(parseCli("run", ["--state-dir", dir, "--ca-file", "/x/ca.pem"], {}))).toMatchObject({
      caFile: "/x/ca.pem",
      systemCa: undefined,
    });
    expect(runOptions(parseCli("run", ["--state-dir", dir], {}))).toMatchObject({ caFile: undefined, systemCa: true });
    expect(() => parseCli("run", ["--state-dir", dir, "--ca-file", "/x", "--system-ca"], {})).toThrow(/not both/);
  });

  test("a reconnect cap above 60 s is refused (exit 2)", async () => {
    const relay = await fakeRelay();
    const { stateDir } = await enrolledStateDir(pki, { relay: relay.url });
    cleanups.push(() => rm(stateDir, { recursive: true, force: true }));
    await expect(startAgent({ stateDir, reconnectCapMs: 61_000, logger: silentLogger })).rejects.toThrow(/at most 60 s/);
    const p = track(spawnAgent(["run", "--state-dir", stateDir, "--reconnect-cap", "90s"]));
    expect((await exitOf(p)).code).toBe(2);
    expect(p.stderr()).toMatch(/reconnect cap must be at most 60 s/);
  });
});

describe("cli enroll", () => {
  test("writes the key (0600), certificates and agent.json; the key never leaves the host", async () => {
    const relay = await fakeRelay({ tokens: ["good-token"] });
    const stateDir = path.join(await tmpDir("enroll-"), "state");
    const p = track(
      spawnAgent(["enroll", "--relay", relay.url, "--state-dir", stateDir, "--ca-file", pki.caFile, "--hostname", "web-1"], {
        FLEET_AGENT_TOKEN: "good-token",
      }),
    );
    expect((await exitOf(p)).code).toBe(0);
    expect(p.stdout()).toContain(`enrolled as host ${relay.hostId}`);

    const key = await readFile(path.join(stateDir, "agent.key"), "utf8");
    expect(key).toMatch(/^-----BEGIN PRIVATE KEY-----/);
    expect((await stat(path.join(stateDir, "agent.key"))).mode & 0o777).toBe(0o600);
    expect((await stat(stateDir)).mode & 0o077).toBe(0);
    const cert = await readFile(path.join(stateDir, "agent.crt"), "utf8");
    expect(certificateMatchesKey(cert, key)).toBe(true);
    expect(await readFile(path.join(stateDir, "ca.crt"), "utf8")).toBe(pki.caPem);
    expect(JSON.parse(await readFile(path.join(stateDir, "agent.json"), "utf8"))).toMatchObject({
      host_id: relay.hostId,
      relay: relay.url,
      ca_file: pki.caFile,
      system_ca: false,
    });

    // Enrolled once: a second enrolment needs --force.
    const again = track(spawnAgent(["enroll", "--relay", relay.url, "--state-dir", stateDir, "--ca-file", pki.caFile, "--token", "x"]));
    expect((await exitOf(again)).code).toBe(2);
    expect(again.stderr()).toMatch(/already holds an enrolled agent/);

    // …and `run` picks everything up from the state directory alone.
    const run = track(spawnAgent(["run", "--state-dir", stateDir]));
    const conn = await relay.connection(1);
    expect((await conn.waitForFrame((f) => f.message_type === "hello")).hostname).toBe("web-1");
    run.child.kill("SIGTERM");
    expect((await exitOf(run)).code).toBe(0);
  });

  test("a refused token prints the relay's code and detail and exits 2", async () => {
    const relay = await fakeRelay({ tokens: [] });
    const stateDir = await tmpDir("enroll-");
    const p = track(
      spawnAgent(["enroll", "--relay", relay.url, "--token", "used-token", "--state-dir", stateDir, "--ca-file", pki.caFile]),
    );
    expect((await exitOf(p)).code).toBe(2);
    expect(p.stderr()).toContain("ERR_ENROLLMENT_TOKEN_INVALID: this enrolment token does not exist");
    await expect(stat(path.join(stateDir, "agent.key"))).rejects.toThrow(/ENOENT/);
  });

  test("a relay whose certificate is not from --ca-file is refused with a one-line error (exit 1)", async () => {
    const relay = await fakeRelay({ tokens: ["t"] });
    const other = await tmpDir("otherca-");
    const otherPki = await createTestPki();
    cleanups.push(() => rm(otherPki.dir, { recursive: true, force: true }));
    const p = track(spawnAgent(["enroll", "--relay", relay.url, "--token", "t", "--state-dir", other, "--ca-file", otherPki.caFile]));
    expect((await exitOf(p)).code).toBe(1);
    expect(p.stderr().trim()).toMatch(/^fleet-agent: enrolment failed: .*certificate/);
    expect(p.stderr().trim().split("\n")).toHaveLength(1);
  });
});

describe("cli run", () => {
  async function enrolled() {
    const relay = await fakeRelay();
    const { stateDir } = await enrolledStateDir(pki, { hostId: relay.hostId, relay: relay.url });
    cleanups.push(() => rm(stateDir, { recursive: true, force: true }));
    return { relay, stateDir };
  }

  test("SIGTERM: kills the command after the grace, answers it, closes with 1000, exits 0; logs are JSON lines", async () => {
    const { relay, stateDir } = await enrolled();
    const p = track(spawnAgent(["run", "--state-dir", stateDir, "--allow-shell", "--shutdown-grace", "300ms"]));
    const conn = await relay.connection(1);
    await conn.waitForFrame((f) => f.message_type === "hello");
    const cmd = relay.command({ command_type: "shell", parameters: { script: "sleep 30" } });
    conn.sendFrame(cmd);
    await conn.waitForFrame((f) => f.state === "running");
    p.child.kill("SIGTERM");
    expect(await exitOf(p)).toEqual({ code: 0, signal: null });
    expect((await conn.closed).code).toBe(1000);
    expect(conn.frames.at(-1)).toMatchObject({
      message_type: "response",
      original_message_id: cmd.message_id,
      status: "failure",
      result: { reason: "agent stopped" },
    });
    const lines = p
      .stderr()
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as { level: string; msg: string });
    expect(lines.every((l) => typeof l.level === "string" && typeof l.msg === "string")).toBe(true);
    expect(lines.map((l) => l.msg)).toEqual(expect.arrayContaining(["agent starting", "connected", "command started", "agent stopped"]));
  });

  test("killed mid-command: on restart the orphaned process group is killed first, then the command is answered 'outcome unknown', never re-run", async () => {
    const { relay, stateDir } = await enrolled();
    const first = track(spawnAgent(["run", "--state-dir", stateDir, "--allow-shell"]));
    const conn1 = await relay.connection(1);
    await conn1.waitForFrame((f) => f.message_type === "hello");
    // A group that ignores nothing and would outlive the agent: the shell and a long `sleep` child.
    const cmd = relay.command({ command_type: "shell", parameters: { script: 'sleep 600 & echo "child $!"; wait' } });
    conn1.sendFrame(cmd);
    // Output arrives only once the process exists (and its group is journaled: the start gate).
    const progress = await conn1.waitForFrame((f) => f.state === "progress" && /^child \d+\n$/.test(f.output as string));
    const child = Number(/^child (\d+)/.exec(progress.output as string)![1]);
    cleanups.push(() => {
      try {
        process.kill(child, "SIGKILL");
      } catch {
        // already gone
      }
    });
    first.child.kill("SIGKILL");
    await exitOf(first);

    const journal = openJournal(stateDir);
    const [execution] = journal.executions(cmd.message_id);
    journal.close();
    expect(execution).toMatchObject({ finished_at: null, pid: expect.any(Number), pid_start_time: expect.any(Number) });
    const pgid = execution!.pid!;
    expect(pgid).toBeGreaterThan(1);
    cleanups.push(() => {
      try {
        if (pgid > 1) process.kill(-pgid, "SIGKILL");
      } catch {
        // already gone
      }
    });
    // The agent is gone; its command's group is not.
    expect(alive(child)).toBe(true);
    expect(processGroupExists(pgid)).toBe(true);

    const second = track(spawnAgent(["run", "--state-dir", stateDir, "--allow-shell"]));
    const conn2 = await relay.connection(2);
    const response = await conn2.waitForFrame((f) => f.message_type === "response" && f.original_message_id === cmd.message_id);
    expect(response).toMatchObject({ status: "failure", result: { reason: UNKNOWN_OUTCOME_REASON, exit_code: null } });
    // Dead (zombies count as dead: this container may have no reaper for orphans).
    expect(await gone([child, pgid], 5000)).toBe(true);
    // Killed (and logged) before the command was answered.
    await second.waitForStderr("answered as unknown outcome");
    const msgs = logLines(second).map((l) => l.msg);
    const killedAt = msgs.indexOf("killed the process group left running by an interrupted execution");
    expect(killedAt).toBeGreaterThanOrEqual(0);
    expect(killedAt).toBeLessThan(msgs.indexOf("command was running when the agent stopped; answered as unknown outcome"));
    expect(logLines(second)[killedAt]).toMatchObject({ message_id: cmd.message_id, pgid, how: "start time matches" });

    // The relay redelivers it anyway: acked and answered the same way, still one execution.
    conn2.sendFrame({ ...cmd, attempt: 2 });
    await conn2.until(() => conn2.frames.filter((f) => f.message_type === "response").length === 2, 5000, "replayed response");
    expect(conn2.frames.filter((f) => f.message_type === "response")[1]).toEqual(response);
    second.child.kill("SIGTERM");
    expect((await exitOf(second)).code).toBe(0);
    const after = openJournal(stateDir);
    expect(after.executionCounts().get(cmd.message_id)).toBe(1);
    after.close();
  });

  test("revoked (4003): exits with code 3", async () => {
    const { relay, stateDir } = await enrolled();
    const p = track(spawnAgent(["run", "--state-dir", stateDir]));
    const conn = await relay.connection(1);
    await conn.waitForFrame((f) => f.message_type === "hello");
    conn.close(4003, "certificate revoked");
    expect((await exitOf(p)).code).toBe(3);
    expect(p.stderr()).toMatch(/"level":"error","msg":"this host was revoked by the relay/);
  });
});
