/**
 * `npm run soak`: 0 lost, 0 duplicated under faults, measured. Runs SOAK_COMMANDS (default 100,000)
 * commands through the real local stack to real agents while the relay, the agents and their
 * connections are killed at seeded random points (bench/soak-relay.ts), then the same pattern
 * against Mosquitto (bench/soak-mqtt.ts), and prints both side by side. Exits 1 when ours lost or
 * duplicated anything (or the run itself failed), 0 otherwise; Mosquitto's figures never fail it.
 *
 * Everything on loopback, temp dirs removed, child processes killed, a watchdog over the whole run.
 * SOAK_RESULT_FILE, when set, receives the figures as JSON (the e2e test reads them).
 */
import { writeFileSync } from "node:fs";
import os from "node:os";
import { findMosquitto } from "./mqtt-peer.ts";
import { fmt, intEnv } from "./soak-common.ts";
import { type MqttSoakResult, runMqttSoak } from "./soak-mqtt.ts";
import { type RelaySoakResult, runRelaySoak } from "./soak-relay.ts";

const commands = intEnv("SOAK_COMMANDS", 100_000, 1);
const agents = intEnv("SOAK_AGENTS", 8, 1);
const seed = intEnv("SOAK_SEED", Math.floor(Math.random() * 2 ** 31));
const faults = {
  server: intEnv("SOAK_RELAY_KILLS", Math.max(2, Math.round(commands / 10_000))),
  agent: intEnv("SOAK_AGENT_KILLS", Math.max(5, Math.round(commands / 1_000))),
  cut: intEnv("SOAK_CUT_SPELLS", Math.max(3, Math.round(commands / 2_500))),
};
const budgetS = intEnv("SOAK_BUDGET_S", 3600, 10);
const drainS = intEnv("SOAK_DRAIN_S", 180, 1);
const autosaveS = intEnv("SOAK_MQTT_AUTOSAVE_S", 1800, 1);
const mqttCommands = intEnv("SOAK_MQTT_COMMANDS", commands, 0);
const skipMqtt = process.env.SOAK_MOSQUITTO === "0";
const resultFile = process.env.SOAK_RESULT_FILE;

const log = (line: string) => console.log(line);
const cleanups: (() => Promise<unknown> | unknown)[] = [];
// Runs (once each, newest first) the cleanups registered so far; calls queue behind each other.
let cleaning: Promise<void> = Promise.resolve();
const cleanup = () =>
  (cleaning = cleaning.then(async () => {
    for (const c of cleanups.splice(0).reverse()) {
      try {
        await c();
      } catch {
        // best effort: the rest still runs
      }
    }
  }));

const watchdog = setTimeout(() => {
  console.error(`soak: aborted by its watchdog after ${budgetS} s (SOAK_BUDGET_S)`);
  void cleanup().finally(() => process.exit(2));
}, budgetS * 1000);
watchdog.unref();
for (const sig of ["SIGINT", "SIGTERM"] as const) {
  process.on(sig, () => {
    console.error(`soak: ${sig}; cleaning up`);
    void cleanup().finally(() => process.exit(130));
  });
}

const s = (x: number) => `${x.toFixed(1)} s`;

function printOurs(r: RelaySoakResult): void {
  const other = Object.entries(r.states)
    .filter(([k]) => k !== "succeeded")
    .map(([k, n]) => `${k} ${fmt(n)}`)
    .join(", ");
  log(`fleet-relay — ${fmt(r.commands)} commands to ${r.agents} real agents (system_info), seed ${r.seed}`);
  log(
    `  faults:      relay SIGKILL + restart ×${r.faults.serverKills} (workerd + edge; restart ${
      r.faults.relayRestartMs.length ? `${Math.min(...r.faults.relayRestartMs)}–${Math.max(...r.faults.relayRestartMs)} ms` : "–"
    }), agent SIGKILL + restart ×${r.faults.agentKills}, cut spells ×${r.faults.cutSpells} (${fmt(r.faults.chaos.cuts)} connections cut of ${fmt(r.faults.chaos.connections)}, ${fmt(r.faults.chaos.resets)} by RST)`,
  );
  if (r.faults.relayStartFailures.length)
    log(
      `  NOTE:        ${r.faults.relayStartFailures.length} relay start(s) failed and were tried again: ${r.faults.relayStartFailures.join(" | ")}`,
    );
  log(
    `  accepted:    ${fmt(r.accepted)} (202; ${fmt(r.postRetries)} POST retries with the same Idempotency-Key, ${fmt(r.abandoned)} abandoned)`,
  );
  log(`  final:       succeeded ${fmt(r.states.succeeded ?? 0)}${other ? `, ${other}` : ""}${r.drained ? "" : "  (drain did NOT finish)"}`);
  log(
    `  LOST:        ${fmt(r.lost)}${r.lost ? `  ${JSON.stringify(r.lostByState)}` : ""}   (accepted, and no answer from the agent after a ${drainS} s-bounded drain)`,
  );
  log(`  DUPLICATED:  ${fmt(r.duplicated)}   (executions beyond the first per message_id, from the agents' journals)`);
  log(`  outcome unknown: ${fmt(r.outcomeUnknown)}   (agent killed mid-command: answered failure "outcome unknown", never re-run)`);
  log(
    `  checks:      unexpected commands ${r.unexpectedCommands}, unexpected executions ${r.unexpectedExecutions}, succeeded without execution ${r.succeededWithoutExecution}, ` +
      `responses left unacked ${r.unackedResponses}, agents that exited by themselves ${r.unexpectedAgentExits}`,
  );
  log(
    `  time:        ${s(r.totalS)} (sending ${s(r.sendS)}, drain ${s(r.drainS)}) → ${r.commandsPerS.toFixed(0)} commands/s ` +
      `(accepted / total time; every one answered by its agent)`,
  );
}

function printMqtt(r: MqttSoakResult): void {
  log(`mosquitto ${r.version} — ${fmt(r.commands)} commands to ${r.agents} agent clients (QoS 1, clean=false), seed ${r.seed}`);
  log(`  persistence: autosave_interval ${r.autosaveIntervalS} s, autosave_on_changes false (a SIGKILL loses what was not saved)`);
  log(
    `  faults:      broker SIGKILL + restart ×${r.faults.serverKills}, agent crash + reconnect ×${r.faults.agentKills}, cut spells ×${r.faults.cutSpells} (${fmt(r.faults.chaos.cuts)} connections cut of ${fmt(r.faults.chaos.connections)})`,
  );
  log(`  accepted:    ${fmt(r.accepted)} (PUBACK at the operator; ${fmt(r.abandoned)} never PUBACKed)`);
  log(`  LOST:        ${fmt(r.lost)}   (accepted, never executed; ${fmt(r.noResponse)} without a response at the operator)`);
  log(`  DUPLICATED:  ${fmt(r.duplicated)}   (executions beyond the first per command, from the agents' records)`);
  log(`  outcome unknown: n/a (a plain MQTT agent has no journal: a crash between execution and PUBACK shows as a duplicate)`);
  log(
    `  time:        ${s(r.totalS)} (sending ${s(r.sendS)}, drain ${s(r.drainS)}, which ends after 10 s without a new response) → ` +
      `${r.commandsPerS.toFixed(0)} commands/s (accepted / total time), ${(r.accepted / r.sendS).toFixed(0)}/s while sending`,
  );
}

let exitCode = 1;
const out: { ours?: RelaySoakResult; mosquitto?: MqttSoakResult | { skipped: string }; error?: string; machine: unknown } = {
  machine: { cpus: os.availableParallelism(), node: process.version },
};
try {
  log(
    `soak: ${fmt(commands)} commands, ${agents} agents, seed ${seed} (SOAK_SEED=${seed} replays the fault schedule), ` +
      `faults: ${faults.server} relay kills, ${faults.agent} agent kills, ${faults.cut} cut spells; budget ${budgetS} s`,
  );
  const ours = await runRelaySoak({
    commands,
    agents,
    concurrency: intEnv("SOAK_CONCURRENCY", 32, 1),
    maxOpen: intEnv("SOAK_MAX_OPEN", 1000, 1),
    seed,
    faults,
    drainMs: drainS * 1000,
    stallMs: 300_000,
    progressEveryMs: intEnv("SOAK_PROGRESS_S", 30, 1) * 1000,
    log,
    cleanups,
  });
  out.ours = ours;
  await cleanup();
  log("");
  printOurs(ours);

  let mqtt: MqttSoakResult | null = null;
  const bin = findMosquitto();
  if (skipMqtt || mqttCommands === 0) out.mosquitto = { skipped: "SOAK_MOSQUITTO=0" };
  else if (!bin) {
    out.mosquitto = { skipped: "mosquitto not found" };
    log("SKIP mosquitto soak: no broker binary (apt-get install -y mosquitto, or BENCH_MOSQUITTO=<path>)");
  } else {
    log("");
    log("mosquitto: the same fault pattern");
    mqtt = await runMqttSoak({
      bin,
      commands: mqttCommands,
      agents,
      window: 64,
      seed,
      faults: {
        server: faults.server,
        agent: faults.agent,
        cut: faults.cut,
      },
      autosaveIntervalS: autosaveS,
      drainMs: drainS * 1000,
      drainIdleMs: 10_000,
      stallMs: 120_000,
      log,
      cleanups,
    });
    out.mosquitto = mqtt;
    await cleanup();
  }

  if (mqtt) {
    log("");
    printMqtt(mqtt);
  }
  log("");
  const ok =
    ours.lost === 0 &&
    ours.duplicated === 0 &&
    ours.unexpectedCommands === 0 &&
    ours.unexpectedExecutions === 0 &&
    ours.succeededWithoutExecution === 0 &&
    ours.unexpectedAgentExits === 0 &&
    ours.drained;
  log(
    ok
      ? `PASS: 0 lost, 0 duplicated over ${fmt(ours.accepted)} commands under faults`
      : `FAIL: lost ${ours.lost}, duplicated ${ours.duplicated}, unexpected commands ${ours.unexpectedCommands}, unexpected executions ${ours.unexpectedExecutions}, ` +
          `succeeded without execution ${ours.succeededWithoutExecution}, agents that exited by themselves ${ours.unexpectedAgentExits}, drained ${ours.drained}`,
  );
  exitCode = ok ? 0 : 1;
} catch (err) {
  out.error = (err as Error).stack ?? String(err);
  console.error(`soak: the run failed: ${out.error}`);
  exitCode = 1;
} finally {
  await cleanup();
  if (resultFile) writeFileSync(resultFile, `${JSON.stringify(out, null, 2)}\n`);
}
process.exit(exitCode);
