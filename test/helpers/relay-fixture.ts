/**
 * The local relay as most end-to-end tests want it: workerd and the TLS edge on free ports, state
 * and a scratch directory under the system's temp dir, a REST client with admin and operator
 * tokens, and the agent's enrolment against its edge. `stop()` kills every agent the test spawned,
 * stops the relay and removes both directories.
 */
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { type LocalRelay, type LocalRelayOptions, startLocalRelay } from "../../scripts/local-relay.ts";
import { type AgentChild, killAllAgents, spawnAgentCli } from "./agent-cli.ts";
import { RelayRest } from "./relay-rest.ts";

export interface RelayFixture {
  relay: LocalRelay;
  rest: RelayRest;
  /** The relay's state directory. */
  relayDir: string;
  /** Scratch space for the test (agents' state directories, exports). */
  workDir: string;
  stop(): Promise<void>;
}

/** `name` labels the temp directories (`fleet-<name>-relay-…`, `fleet-<name>-…`). */
export async function startRelayFixture(name: string, opts: Pick<LocalRelayOptions, "bindings"> = {}): Promise<RelayFixture> {
  const relayDir = await mkdtemp(path.join(os.tmpdir(), `fleet-${name}-relay-`));
  const workDir = await mkdtemp(path.join(os.tmpdir(), `fleet-${name}-`));
  const relay = await startLocalRelay({ port: 0, edgePort: 0, stateDir: relayDir, quiet: true, ...opts });
  const rest = await RelayRest.create(relay.url, relayDir);
  return {
    relay,
    rest,
    relayDir,
    workDir,
    async stop() {
      await killAllAgents();
      await relay.stop();
      await rm(relayDir, { recursive: true, force: true });
      await rm(workDir, { recursive: true, force: true });
    },
  };
}

/**
 * Enrols an agent through the fixture's edge with a fresh enrolment token (carrying `tags`), by the
 * given launcher (the Node CLI by default, or `spawnAgentDeno`), and returns the child that ran
 * `enroll` (exited), the token it used and the host id it printed. Throws with the agent's stderr when it fails.
 */
export async function enrollAgent(
  f: RelayFixture,
  o: { stateDir: string; hostname?: string; tags?: string[]; spawn?: (args: string[]) => AgentChild },
): Promise<{ hostId: string; token: string; enroll: AgentChild }> {
  const token = await f.rest.enrollmentToken(o.tags ?? []);
  const args = ["enroll", "--relay", f.relay.edgeUrl!, "--ca-file", f.relay.caCertPath, "--token", token, "--state-dir", o.stateDir];
  if (o.hostname) args.push("--hostname", o.hostname);
  const enroll = (o.spawn ?? spawnAgentCli)(args);
  const exit = await enroll.exit();
  if (exit.code !== 0) throw new Error(`enroll exited ${JSON.stringify(exit)}: ${enroll.stderr()}`);
  const m = /enrolled as host ([0-9a-f-]{36})/.exec(enroll.stdout());
  if (!m) throw new Error(`enroll printed no host id: ${enroll.stdout()}`);
  return { hostId: m[1]!, token, enroll };
}
