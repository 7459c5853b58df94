/**
 * The real agent under Deno: `deno run agent/cli.ts` (Deno from node_modules, offline, with the
 * permissions in DENO_AGENT_FLAGS) enrols with the local relay, connects over mutual TLS 1.3, runs
 * a system_info command and the product page's install as a dry run, and stops cleanly on SIGTERM.
 * Its journal is node:sqlite as Deno provides it.
 */
import { stat } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type AgentChild, spawnAgentDeno } from "../helpers/agent-cli.ts";
import { choosePackages, expectInstallDryRun } from "../helpers/apt-dry-run.ts";
import { enrollAgent, type RelayFixture, startRelayFixture } from "../helpers/relay-fixture.ts";
import type { RelayRest } from "../helpers/relay-rest.ts";

let fx: RelayFixture;
let workDir: string;
let rest: RelayRest;

beforeAll(async () => {
  fx = await startRelayFixture("agent-deno");
  ({ rest, workDir } = fx);
});

afterAll(() => fx?.stop());

describe("the agent under deno run", () => {
  const agentDir = () => path.join(workDir, "agent");
  let hostId: string;
  let agent: AgentChild;

  it("enrols", async () => {
    ({ hostId } = await enrollAgent(fx, { stateDir: agentDir(), hostname: "deno-1", tags: ["deno"], spawn: spawnAgentDeno }));
    expect((await stat(path.join(agentDir(), "agent.key"))).mode & 0o777).toBe(0o600);
    expect(await rest.host(hostId)).toMatchObject({ hostname: "deno-1", tags: ["deno"] });
  });

  it("connects over mutual TLS and runs system_info", async () => {
    agent = spawnAgentDeno(["run", "--state-dir", agentDir()]);
    expect((await agent.waitForLog("connected", { timeoutMs: 30_000 })).host_id).toBe(hostId);
    await rest.waitForHostStatus(hostId, "online");
    const messageId = await rest.send(hostId, { command_type: "system_info", parameters: {} });
    const done = await rest.waitForCommand(hostId, messageId, undefined, 30_000);
    expect(done.state, JSON.stringify(done)).toBe("succeeded");
    expect(done.result).toMatchObject({ hostname: os.hostname(), kernel: os.release(), arch: os.machine(), package_manager: "apt-get" });
  });

  it("the product page's install as a dry run", async (ctx) => {
    const choice = await choosePackages();
    if (choice === null) ctx.skip(); // no apt-get here
    ctx.annotate(choice!.note);
    await expectInstallDryRun(rest, hostId, choice!);
  });

  it("SIGTERM: exit 0, host offline", async () => {
    agent.child.kill("SIGTERM");
    expect(await agent.exit(20_000), agent.stderr()).toEqual({ code: 0, signal: null });
    expect(agent.logs().map((l) => l.msg)).toContain("agent stopped");
    await rest.waitForHostStatus(hostId, "offline");
  });
});
