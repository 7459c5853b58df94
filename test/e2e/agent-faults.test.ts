/**
 * Nothing lost, nothing executed twice — across an agent killed mid-command, a relay restart
 * with commands queued and in flight, and a proxy that keeps cutting the agent's connections
 * while 1,000 commands go through. Real processes (workerd, the TLS edge, agent children),
 * real TLS, ephemeral ports, temporary state directories.
 *
 * The counts come from the agent's own execution record (`executionCounts()` of its journal:
 * each message_id executed exactly once) and from REST (every command reached `succeeded`,
 * or the failure the agent reports for a command whose outcome it cannot know).
 */
import { readFile, mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { enroll, openJournal, startAgent, silentLogger, UNKNOWN_OUTCOME_REASON, type Agent } from "../../agent/index.ts";
import { type LocalRelay, PortInUseError, startLocalRelay } from "../../scripts/local-relay.ts";
import { type AgentChild, killAllAgents, spawnAgentCli } from "../helpers/agent-cli.ts";
import { type ChaosProxy, startChaosProxy } from "../helpers/chaos-proxy.ts";
import { RelayRest, TERMINAL, waitUntil } from "../helpers/relay-rest.ts";

const cleanups: (() => Promise<unknown> | unknown)[] = [];
afterEach(async () => {
  await killAllAgents();
  for (const c of cleanups.splice(0).reverse()) await c();
});
afterAll(killAllAgents);

async function tmp(prefix: string): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), prefix));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

async function relayOn(stateDir: string, opts: { port?: number; edgePort?: number; bindings?: Record<string, string> } = {}): Promise<LocalRelay> {
  // A port just released by the previous relay on this state dir is normally free at once; if the
  // OS has not let go of it yet, try again for a bounded while.
  const relay = await waitUntil(
    async () => {
      try {
        return await startLocalRelay({ port: opts.port ?? 0, edgePort: opts.edgePort ?? 0, stateDir, quiet: true, bindings: opts.bindings });
      } catch (err) {
        if (err instanceof PortInUseError) return undefined;
        throw err;
      }
    },
    { timeoutMs: 10_000, intervalMs: 100, what: `ports ${opts.port}/${opts.edgePort} to be free again` },
  );
  cleanups.push(() => relay.stop());
  return relay;
}

/** A relay, plus an agent state directory enrolled with it (through the library; the CLI's enroll has its own test). */
async function relayWithEnrolledAgent(bindings?: Record<string, string>) {
  const relayDir = await tmp("fleet-faults-relay-");
  const agentDir = await tmp("fleet-faults-agent-");
  const relay = await relayOn(relayDir, { bindings });
  const rest = await RelayRest.create(relay.url, relayDir);
  const token = await rest.enrollmentToken(["faults"]);
  const { hostId } = await enroll({ relay: relay.edgeUrl!, token, stateDir: agentDir, caFile: relay.caCertPath, hostname: "faulty-1" });
  return { relay, relayDir, agentDir, rest, hostId };
}

/** `fleet-agent run` as a child with fast reconnects (the relay URL and CA come from agent.json). */
function runAgent(agentDir: string, extra: string[] = []): AgentChild {
  return spawnAgentCli(["run", "--state-dir", agentDir, "--allow-shell", "--reconnect-base", "50ms", "--reconnect-cap", "500ms", ...extra]);
}

async function stopAgent(agent: AgentChild): Promise<void> {
  agent.child.kill("SIGTERM");
  expect(await agent.exit(20_000), agent.stderr()).toEqual({ code: 0, signal: null });
}

/** Execution counts from the agent's journal (opened after the agent stopped). */
function executionCounts(agentDir: string): Map<string, number> {
  const journal = openJournal(agentDir);
  try {
    return journal.executionCounts();
  } finally {
    journal.close();
  }
}

/** Every id in `ids` executed exactly once, and nothing else executed. */
function expectExactlyOnce(counts: Map<string, number>, ids: string[]): void {
  const wrong = ids.filter((id) => counts.get(id) !== 1).map((id) => `${id}: ${counts.get(id) ?? 0}`);
  expect(wrong, "commands not executed exactly once").toEqual([]);
  expect([...counts.keys()].sort()).toEqual([...ids].sort());
}

/** Waits until every command in `ids` is terminal (one list call per poll); returns them by id. */
async function waitAllTerminal(rest: RelayRest, hostId: string, ids: string[], timeoutMs: number): Promise<Map<string, any>> {
  const want = new Set(ids);
  let open = -1;
  return waitUntil(
    async () => {
      const all = await rest.allCommands(hostId);
      const byId = new Map(all.filter((c) => want.has(c.message_id)).map((c) => [c.message_id as string, c]));
      open = ids.filter((id) => !TERMINAL.has(byId.get(id)?.state)).length;
      return open === 0 ? byId : undefined;
    },
    { timeoutMs, intervalMs: 200, what: `${ids.length} commands to be terminal`, describe: () => `${open} not terminal` },
  );
}

describe("agent killed while a command runs", () => {
  it("answers the interrupted command 'outcome unknown' after a restart, never runs it again, and serves later commands", async () => {
    const { rest, hostId, agentDir } = await relayWithEnrolledAgent();
    const marker = path.join(agentDir, "runs.txt");
    let agent = runAgent(agentDir);
    await agent.waitForLog("connected");

    const slow = await rest.send(hostId, {
      command_type: "shell",
      parameters: { script: `echo started >> '${marker}'; sleep 5; echo done` },
      timeout: 60,
    });
    await rest.waitForCommand(hostId, slow, (c) => c.state === "running");
    agent.child.kill("SIGKILL");
    expect(await agent.exit(10_000)).toEqual({ code: null, signal: "SIGKILL" });

    // The journal recorded the execution with its process; end the orphaned `sleep` so it cannot
    // finish and confuse anything (it runs in its own process group).
    const journal = openJournal(agentDir);
    const [execution] = journal.executions(slow);
    journal.close();
    expect(execution).toMatchObject({ message_id: slow, finished_at: null });
    expect(execution!.pid).toBeGreaterThan(0);
    try {
      process.kill(-execution!.pid!, "SIGKILL");
    } catch {
      // already gone
    }

    agent = runAgent(agentDir);
    await agent.waitForLog("connected");
    const failed = await rest.waitForCommand(hostId, slow);
    expect(failed.state, JSON.stringify(failed)).toBe("failed");
    expect(failed.response_status).toBe("failure");
    expect(failed.result).toMatchObject({ reason: UNKNOWN_OUTCOME_REASON, exit_code: null });
    expect(failed.history.map((h: { state: string }) => h.state)).toEqual(["queued", "delivered", "running", "failed"]);

    const after = await rest.send(hostId, { command_type: "shell", parameters: { script: "echo after" } });
    const info = await rest.send(hostId, { command_type: "system_info" });
    const afterDone = await rest.waitForCommand(hostId, after);
    const infoDone = await rest.waitForCommand(hostId, info);
    expect(afterDone.state).toBe("succeeded");
    expect(afterDone.result.output).toContain("after");
    expect(infoDone.state).toBe("succeeded");

    await stopAgent(agent);
    expectExactlyOnce(executionCounts(agentDir), [slow, after, info]);
    // The script itself ran once: its first line wrote once, and it never reached "done" again.
    expect((await readFile(marker, "utf8")).trim().split("\n")).toEqual(["started"]);
  });
});

describe("relay restarted", () => {
  it("delivers commands queued before the restart, and in flight across it, exactly once", async () => {
    const bindings = { ACK_TIMEOUT_MS: "1000", RETRY_BASE_MS: "100", RETRY_CAP_MS: "1000" };
    const setup = await relayWithEnrolledAgent(bindings);
    let relay = setup.relay;
    const { relayDir, agentDir, hostId } = setup;
    const ports = { port: relay.port, edgePort: Number(new URL(relay.edgeUrl!).port) };
    let rest = setup.rest;

    // 1. Queued while the agent is offline, then the relay restarts (same ports, same state dir).
    let agent = runAgent(agentDir);
    await agent.waitForLog("connected");
    await stopAgent(agent);
    await rest.waitForHostStatus(hostId, "offline");
    const queued: string[] = [];
    for (let i = 0; i < 20; i++) queued.push(await rest.send(hostId, { command_type: "system_info" }));
    await relay.stop();
    relay = await relayOn(relayDir, { ...ports, bindings });
    expect(relay.url).toBe(rest.url);
    const kept = await rest.allCommands(hostId, "queued");
    expect(kept.map((c) => c.message_id).sort()).toEqual([...queued].sort());
    expect(kept.every((c) => c.attempts === 0)).toBe(true);

    agent = runAgent(agentDir);
    const phase1 = await waitAllTerminal(rest, hostId, queued, 30_000);
    expect([...phase1.values()].filter((c) => c.state !== "succeeded")).toEqual([]);

    // 2. The agent keeps running while the relay stops with commands delivered, running and
    //    answered-but-unacked, and comes back on the same ports: the agent reconnects by itself.
    const inFlight: string[] = [];
    for (let i = 0; i < 20; i++) {
      inFlight.push(await rest.send(hostId, { command_type: "shell", parameters: { script: `sleep 0.2; echo ${i}` } }));
    }
    // Stop once a few have finished and the rest are still open.
    await waitUntil(async () => ((await rest.allCommands(hostId, "succeeded")).length >= queued.length + 3 ? true : undefined), {
      timeoutMs: 20_000,
      intervalMs: 20,
      what: "3 of the shell commands to succeed",
    });
    const connectsBefore = agent.logs().filter((l) => l.msg === "connected").length;
    const open = await rest.allCommands(hostId, "queued,delivered,running");
    expect(open.length, "commands still open when the relay stops").toBeGreaterThan(0);
    await relay.stop();
    relay = await relayOn(relayDir, { ...ports, bindings });
    rest = rest.at(relay.url);
    await agent.waitForLog("connected", { nth: connectsBefore + 1, timeoutMs: 20_000 });
    const phase2 = await waitAllTerminal(rest, hostId, inFlight, 30_000);
    const notOk = [...phase2.values()].filter((c) => c.state !== "succeeded");
    expect(notOk, JSON.stringify(notOk.slice(0, 3))).toEqual([]);
    for (const id of inFlight) expect(phase2.get(id)!.response_status, id).toBe("success");
    const outputs = await Promise.all(inFlight.map((id) => rest.command(hostId, id)));
    expect(outputs.map((c) => c.result.output.trim())).toEqual(inFlight.map((_, i) => String(i)));
    expect(agent.running()).toBe(true);

    await stopAgent(agent);
    expectExactlyOnce(executionCounts(agentDir), [...queued, ...inFlight]);
  }, 90_000);
});
