/**
 * The scale benchmark (`npm run bench:scale`, bench/scale.ts), reduced so it does not rot: 200 idle
 * agents (the real agent's RelaySocket, reconnect loop and backoff, in two client processes) through
 * three edge processes sharing the port, one job to all of them, then the reconnect storm: the relay SIGKILLed and started
 * again on the same state and ports, with commands queued to offline hosts before the kill and right
 * after the restart. Its figures are printed, never asserted; what is asserted is that every agent
 * connected through the edges and came back, and that no queued command was lost.
 */
import { expect, it } from "vitest";
import { runScaleBench } from "../../bench/scale.ts";

const AGENTS = 200;
const EDGES = 3;

it(`${AGENTS} agents through ${EDGES} edge processes, a relay kill and restart: all back, no queued command lost`, async () => {
  const lines: string[] = [];
  const result = await runScaleBench({
    agents: AGENTS,
    edgeProcesses: EDGES,
    clientProcesses: 2,
    dialConcurrency: 32,
    holdS: 0,
    storm: true,
    stormSample: 10,
    mosquitto: null,
    log: (line) => lines.push(line),
  });
  console.log(lines.join("\n"));

  expect(result.relay.connected).toBe(AGENTS);
  expect(result.relay.heldToEnd).toBe(AGENTS);
  expect(result.relay.stoppedAtFdLimit).toBeNull();
  // The job to the connected fleet: every host got the command through its relay and answered.
  expect(result.job).toMatchObject({ hosts: AGENTS, online: AGENTS, succeeded: AGENTS, waiting: 0 });
  // The kernel spread the connections over every edge process sharing the port.
  const edges = result.relay.memory.filter((m) => m.name.startsWith("edge"));
  expect(edges).toHaveLength(EDGES);
  for (const e of edges) expect(e.fdsConnected).toBeGreaterThan(e.fdsBefore);

  const storm = result.storm!;
  expect(storm.agents).toBe(AGENTS);
  // Ten hosts, a command each before the kill and another right after the restart.
  expect(storm.commandsQueued).toBe(20);
  expect(storm.commandsDelivered).toBe(20);
  expect(storm.commandsSucceeded).toBe(20);
  expect(storm.lost).toBe(0);
  // Every agent was welcomed again after the kill.
  expect(storm.perSecond.reduce((a, b) => a + b, 0)).toBeGreaterThanOrEqual(AGENTS);
}, 360_000);
