/**
 * Mosquitto's half of the fault soak, the same pattern as ours: an operator client publishes commands
 * with QoS 1 to per-agent topics (`fleet/<i>/cmd`); agent clients (clean=false, fixed client ids,
 * subscribed with QoS 1) "execute" a command by appending its id to their own record file, then
 * publish a response with QoS 1 to `fleet/<i>/resp`, which the operator (clean=false, subscribed
 * with QoS 1) receives. Faults at seeded random points of the accepted (PUBACKed) count:
 *
 * - the broker SIGKILLed and started again on the same config and persistence directory;
 * - an agent client crashed (its socket destroyed with no DISCONNECT, its in-memory state dropped)
 *   and a new one connected with the same client id — what an agent process SIGKILL does;
 * - the chaos proxy, through which every agent client dials the broker, cutting their connections.
 *
 * Mosquitto writes its persistence file every `autosave_interval` seconds (and on a clean shutdown),
 * not per message: what it held in memory since the last save is gone after a SIGKILL.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { appendFileSync, readFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { MqttClient } from "mqtt";
import { type ChaosStats, startChaosProxy } from "../test/helpers/chaos-proxy.ts";
import { freePort, mosquittoVersion, writeMosquittoConfig } from "./mqtt-peer.ts";
import { between, type Fault, type FaultCounts, faultSchedule, fmt, Notifier, pause, prng } from "./soak-common.ts";

export interface MqttSoakOptions {
  bin: string;
  commands: number;
  agents: number;
  /** Publishes in flight (not yet PUBACKed) at the operator. */
  window: number;
  seed: number;
  faults: FaultCounts;
  /** Mosquitto's `autosave_interval`, seconds (its default is 1800). */
  autosaveIntervalS: number;
  drainMs: number;
  /** A drain with no new response for this long is over. */
  drainIdleMs: number;
  stallMs: number;
  log(line: string): void;
  cleanups: (() => Promise<unknown> | unknown)[];
}

export interface MqttSoakResult {
  system: "mosquitto";
  version: string;
  autosaveIntervalS: number;
  seed: number;
  commands: number;
  agents: number;
  /** PUBACKed at the operator. */
  accepted: number;
  /** Publishes never PUBACKed within their bound. */
  abandoned: number;
  /** Accepted and never executed by an agent. */
  lost: number;
  /** Accepted and no response at the operator after the drain. */
  noResponse: number;
  /** Executions beyond the first of one command, summed over the agents' records. */
  duplicated: number;
  faults: { serverKills: number; agentKills: number; cutSpells: number; chaos: ChaosStats };
  sendS: number;
  drainS: number;
  totalS: number;
  commandsPerS: number;
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const c = net.connect({ port, host: "127.0.0.1" });
    c.once("connect", () => {
      c.destroy();
      resolve(true);
    });
    c.once("error", () => resolve(false));
  });
}

class Broker {
  proc: ChildProcess | null = null;
  #stderr = "";
  readonly bin: string;
  readonly conf: string;
  readonly port: number;
  constructor(bin: string, conf: string, port: number) {
    this.bin = bin;
    this.conf = conf;
    this.port = port;
  }

  async start(): Promise<void> {
    const deadline = Date.now() + 20_000;
    for (;;) {
      const proc = spawn(this.bin, ["-c", this.conf], { stdio: ["ignore", "ignore", "pipe"] });
      this.proc = proc;
      proc.stderr!.on("data", (c: Buffer) => (this.#stderr = (this.#stderr + c.toString()).slice(-4000)));
      // Listening (polling the port, bounded), or exited (e.g. the port is not free yet: try again).
      for (;;) {
        if (proc.exitCode !== null || proc.signalCode !== null) break;
        if (await canConnect(this.port)) return;
        if (Date.now() > deadline) break;
        await pause(20);
      }
      if (Date.now() > deadline) {
        proc.kill("SIGKILL");
        throw new Error(`mosquitto did not listen on ${this.port} within 20 s; stderr: ${this.#stderr}`);
      }
      await pause(100);
    }
  }

  async kill(): Promise<void> {
    const proc = this.proc;
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
    const exited = new Promise((r) => proc.once("exit", r));
    proc.kill("SIGKILL");
    await exited;
  }

  stderr(): string {
    return this.#stderr;
  }
}

function mqttClient(port: number, clientId: string): MqttClient {
  return new MqttClient(
    () => {
      const s = net.createConnection({ host: "127.0.0.1", port, noDelay: true });
      s.setNoDelay(true);
      return s;
    },
    { clientId, clean: false, protocolVersion: 4, keepalive: 30, reconnectPeriod: 100, connectTimeout: 5000, resubscribe: false },
  );
}

export async function runMqttSoak(o: MqttSoakOptions): Promise<MqttSoakResult> {
  const random = prng(o.seed ^ 0x5bd1e995);
  const schedule: Fault[] = faultSchedule(random, o.commands, o.faults);
  const version = mosquittoVersion(o.bin);
  const dir = await mkdtemp(path.join(os.tmpdir(), "fleet-soak-mqtt-"));
  o.cleanups.push(() => rm(dir, { recursive: true, force: true }));
  const port = await freePort();
  const conf = await writeMosquittoConfig(dir, port, [
    `autosave_interval ${o.autosaveIntervalS}`,
    "autosave_on_changes false",
    // No queue limit: a message is never dropped for a full queue, only for what a crash takes.
    "max_queued_messages 0",
  ]);
  const broker = new Broker(o.bin, conf, port);
  o.cleanups.push(() => broker.kill());
  await broker.start();
  o.log(`  mosquitto ${version} on 127.0.0.1:${port}, persistence in ${dir}, autosave_interval ${o.autosaveIntervalS} s`);

  const proxy = await startChaosProxy({
    target: { host: "127.0.0.1", port },
    minLifeMs: 50,
    maxLifeMs: 400,
    minBytes: 32 * 1024,
    maxBytes: 1024 * 1024,
    cutForMs: 0,
    seed: o.seed,
  });
  o.cleanups.push(() => proxy.close());

  const changed = new Notifier();
  // Agents: each a client id, a record file, and the client object currently serving it.
  const records = Array.from({ length: o.agents }, (_, i) => path.join(dir, `agent-${i}.executed`));
  const agentClients: (MqttClient | null)[] = new Array(o.agents).fill(null);
  const startAgentClient = (i: number) => {
    const c = mqttClient(proxy.port, `soak-agent-${i}`);
    agentClients[i] = c;
    c.on("connect", (connack) => {
      if (!connack.sessionPresent) c.subscribe(`fleet/${i}/cmd`, { qos: 1 }, () => changed.notify());
      changed.notify();
    });
    c.on("error", () => {});
    c.on("message", (_topic, payload) => {
      const cmd = JSON.parse(payload.toString("utf8")) as { message_id: string };
      // "Execute": recorded before the PUBACK goes out (mqtt.js emits `message` first).
      appendFileSync(records[i]!, `${cmd.message_id}\n`);
      c.publish(`fleet/${i}/resp`, JSON.stringify({ original_message_id: cmd.message_id, status: "success" }), { qos: 1 });
    });
  };
  const crashAgentClient = (i: number) => {
    const c = agentClients[i]!;
    // No DISCONNECT: the socket goes away as a killed process's would, and the client's state with it.
    (c.stream as net.Socket | undefined)?.destroy();
    c.end(true);
    c.removeAllListeners("message");
    agentClients[i] = null;
  };
  for (let i = 0; i < o.agents; i++) startAgentClient(i);
  o.cleanups.push(() => agentClients.forEach((c) => c?.end(true)));

  const operator = mqttClient(port, "soak-operator");
  o.cleanups.push(() => operator.end(true));
  const responded = new Set<string>();
  operator.on("connect", (connack) => {
    if (!connack.sessionPresent) operator.subscribe("fleet/+/resp", { qos: 1 }, () => changed.notify());
    changed.notify();
  });
  operator.on("error", () => {});
  operator.on("message", (_topic, payload) => {
    responded.add((JSON.parse(payload.toString("utf8")) as { original_message_id: string }).original_message_id);
    changed.notify();
  });
  await changed.until(() => operator.connected && agentClients.every((c) => c?.connected), 20_000, "the MQTT clients to connect");
  // The subscriptions are in place before the first publish (SUBACKs are quick; give them a bounded wait).
  await new Promise<void>((resolve) => operator.subscribe("fleet/+/resp", { qos: 1 }, () => resolve()));

  const ids: (string | null)[] = new Array(o.commands).fill(null);
  let accepted = 0;
  let abandoned = 0;
  let inFlight = 0;
  let next = 0;
  let sending = true;
  let failure: Error | null = null;
  const t0 = performance.now();
  const elapsed = () => ((performance.now() - t0) / 1000).toFixed(0);

  const publishOne = (i: number) => {
    const id = crypto.randomUUID();
    const agent = i % o.agents;
    const frame = JSON.stringify({
      message_id: id,
      message_type: "command",
      command_type: "system_info",
      target_host: `soak-${agent}`,
      attempt: 1,
    });
    inFlight++;
    let settled = false;
    const timer = setTimeout(() => {
      if (settled) return;
      settled = true;
      inFlight--;
      abandoned++;
      changed.notify();
    }, o.stallMs);
    operator.publish(`fleet/${agent}/cmd`, frame, { qos: 1 }, (err) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      inFlight--;
      if (err) abandoned++;
      else {
        ids[i] = id;
        accepted++;
      }
      changed.notify();
    });
  };

  const counters = { serverKills: 0, agentKills: 0, cutSpells: 0 };
  // Faults started so far; the operator waits for the one due before it publishes more.
  let injected = 0;
  const injector = (async () => {
    for (const f of schedule) {
      await changed.until(() => accepted >= f.at || !sending, o.stallMs, `fault point ${f.at}`);
      if (!sending) break;
      injected++;
      changed.notify();
      if (f.kind === "server") {
        const downMs = between(random, 0, 2000);
        await broker.kill();
        counters.serverKills++;
        o.log(`  [${elapsed()} s] mosquitto SIGKILL #${counters.serverKills} at ${fmt(accepted)} accepted; down ${downMs} ms`);
        await pause(downMs);
        await broker.start();
      } else if (f.kind === "agent") {
        const i = between(random, 0, o.agents - 1);
        crashAgentClient(i);
        counters.agentKills++;
        await pause(between(random, 0, 1000));
        startAgentClient(i);
      } else {
        counters.cutSpells++;
        proxy.cutFor(between(random, 1000, 4000));
      }
    }
  })().catch((err: Error) => {
    failure ??= err;
    changed.notify();
  });

  try {
    while (next < o.commands && !failure) {
      await changed.until(() => inFlight < o.window || failure !== null, o.stallMs * 2, "a free publish slot");
      // Never ahead of the fault schedule: every fault due by this point has been started.
      await changed.until(
        () => injected >= schedule.length || schedule[injected]!.at > accepted || failure !== null,
        o.stallMs * 2,
        "the fault due",
      );
      if (failure) break;
      publishOne(next++);
    }
    await changed.until(() => inFlight === 0, o.stallMs * 2, "the last PUBACKs");
  } finally {
    sending = false;
    changed.notify();
  }
  await injector;
  if (failure) throw failure;
  const sendS = (performance.now() - t0) / 1000;

  // Drain: no more faults; wait until every accepted command has its response, or no response came for a while.
  proxy.stopCutting();
  const tDrain = performance.now();
  const drainDeadline = Date.now() + o.drainMs;
  while (responded.size < accepted && Date.now() < drainDeadline) {
    const before = responded.size;
    try {
      await changed.until(() => responded.size >= accepted, Math.min(o.drainIdleMs, Math.max(1, drainDeadline - Date.now())), "responses");
    } catch {
      if (responded.size === before) break; // nothing new within the idle bound: what is missing is not coming
    }
  }
  const drainS = (performance.now() - tDrain) / 1000;
  const totalS = (performance.now() - t0) / 1000;

  const executions = new Map<string, number>();
  for (const file of records) {
    let text = "";
    try {
      text = readFileSync(file, "utf8");
    } catch {
      // this agent never executed anything
    }
    for (const id of text.split("\n")) if (id) executions.set(id, (executions.get(id) ?? 0) + 1);
  }
  let lost = 0;
  let noResponse = 0;
  for (const id of ids) {
    if (!id) continue;
    if (!executions.has(id)) lost++;
    if (!responded.has(id)) noResponse++;
  }
  let duplicated = 0;
  for (const n of executions.values()) if (n > 1) duplicated += n - 1;

  operator.end(true);
  agentClients.forEach((c) => c?.end(true));
  await proxy.close();
  await broker.kill();
  return {
    system: "mosquitto",
    version,
    autosaveIntervalS: o.autosaveIntervalS,
    seed: o.seed,
    commands: o.commands,
    agents: o.agents,
    accepted,
    abandoned,
    lost,
    noResponse,
    duplicated,
    faults: { ...counters, chaos: proxy.stats() },
    sendS,
    drainS,
    totalS,
    commandsPerS: accepted / totalS,
  };
}
