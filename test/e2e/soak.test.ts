/**
 * The fault soak (`npm run soak`, bench/soak.ts), reduced: 5,000 commands through the real local
 * stack (workerd + the TLS edge in a child process) to 8 real agent processes, with the relay
 * SIGKILLed and restarted twice, agents SIGKILLed and restarted five times and three spells of the
 * chaos proxy cutting every agent connection; then the same pattern against Mosquitto, when the
 * broker is installed (its figures are printed, never asserted). The soak runs as a child process,
 * as a user runs it; its figures come back as JSON (SOAK_RESULT_FILE) and its output is printed.
 */
import { spawn } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterAll, expect, it } from "vitest";
import type { MqttSoakResult } from "../../bench/soak-mqtt.ts";
import type { RelaySoakResult } from "../../bench/soak-relay.ts";

const SOAK = path.resolve(import.meta.dirname, "../../bench/soak.ts");
const COMMANDS = 5000;
const BUDGET_S = 220;

let child: ReturnType<typeof spawn> | undefined;
afterAll(() => {
  // SIGTERM makes the soak clean up its relay, agents, broker and temp dirs itself.
  if (child && child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
});

it(
  `${COMMANDS} commands under relay kills, agent kills and cut connections: 0 lost, 0 duplicated`,
  async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), "fleet-soak-test-"));
    try {
      const resultFile = path.join(dir, "result.json");
      const started = performance.now();
      child = spawn(process.execPath, ["--experimental-strip-types", "--experimental-sqlite", "--no-warnings=ExperimentalWarning", SOAK], {
        env: {
          ...process.env,
          SOAK_COMMANDS: String(COMMANDS),
          SOAK_RELAY_KILLS: "2",
          SOAK_AGENT_KILLS: "5",
          SOAK_CUT_SPELLS: "3",
          SOAK_PROGRESS_S: "15",
          SOAK_DRAIN_S: "60",
          // Its own watchdog ends it (cleaning up) before the test's timeout.
          SOAK_BUDGET_S: String(BUDGET_S),
          SOAK_RESULT_FILE: resultFile,
        },
        stdio: ["ignore", "pipe", "pipe"],
      });
      let output = "";
      child.stdout!.on("data", (d: Buffer) => (output += d.toString()));
      child.stderr!.on("data", (d: Buffer) => (output += d.toString()));
      const exit = await new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
        child!.once("close", (code, signal) => resolve({ code, signal })),
      );
      const seconds = (performance.now() - started) / 1000;
      console.log(`${output}\nsoak child: ${JSON.stringify(exit)} after ${seconds.toFixed(1)} s`);

      const result = JSON.parse(await readFile(resultFile, "utf8")) as {
        ours?: RelaySoakResult;
        mosquitto?: MqttSoakResult | { skipped: string };
        error?: string;
      };
      expect(result.error, output).toBeUndefined();
      const ours = result.ours!;
      expect({ lost: ours.lost, duplicated: ours.duplicated }, output).toEqual({ lost: 0, duplicated: 0 });
      expect(ours.accepted).toBe(COMMANDS);
      expect(ours.drained).toBe(true);
      expect(ours.unexpectedCommands).toBe(0);
      expect(ours.unexpectedExecutions).toBe(0);
      expect(ours.succeededWithoutExecution).toBe(0);
      expect(ours.unexpectedAgentExits).toBe(0);
      // Every accepted command ended with the agent's answer: succeeded, or "outcome unknown".
      expect((ours.states.succeeded ?? 0) + ours.outcomeUnknown).toBe(COMMANDS);
      // The faults happened.
      expect(ours.faults.serverKills).toBe(2);
      expect(ours.faults.agentKills).toBe(5);
      expect(ours.faults.cutSpells).toBe(3);
      expect(ours.faults.chaos.cuts).toBeGreaterThan(0);
      expect(ours.postRetries, "POSTs retried through the relay's outages").toBeGreaterThan(0);
      if (result.mosquitto && "accepted" in result.mosquitto) expect(result.mosquitto.accepted).toBeGreaterThan(0);
      expect(exit).toEqual({ code: 0, signal: null });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  },
  (BUDGET_S + 20) * 1000,
);
