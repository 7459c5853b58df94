/**
 * The peer: Mosquitto (MQTT 3.1.1, QoS 1, persistent sessions) doing the relay's command → response
 * round trip on loopback. An "operator" client publishes a command to fleet/<host>/cmd; an "agent"
 * client subscribed with QoS 1 receives it and publishes a response to fleet/<host>/resp; the
 * operator, subscribed there, receives it. Both clients use clean=false and fixed client ids, the
 * broker has persistence on (in a temp dir) and TCP_NODELAY; the clients' sockets have Nagle off.
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { MqttClient } from "mqtt";
import { type Summary, summarize } from "./stats.ts";

export const MOSQUITTO_PATHS = ["/usr/sbin/mosquitto", "/usr/bin/mosquitto", "/usr/local/sbin/mosquitto"];

export interface MqttResult {
  version: string;
  count: number;
  /** operator publish → agent client received the command */
  received: Summary;
  /** operator publish → PUBACK of the agent's response back at the agent (broker stored it) */
  stored: Summary;
  /** operator publish → operator received the response (full round trip) */
  roundTrip: Summary;
  /** operator publish → PUBACK of the command at the operator (the analogue of the REST call) */
  publish: Summary;
}

/** The broker binary: BENCH_MOSQUITTO if set, else the first of MOSQUITTO_PATHS that exists. */
export function findMosquitto(): string | null {
  const chosen = process.env.BENCH_MOSQUITTO;
  if (chosen) return existsSync(chosen) ? chosen : null;
  return MOSQUITTO_PATHS.find((p) => existsSync(p)) ?? null;
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

export async function waitForPort(port: number, proc: ChildProcess, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (proc.exitCode !== null) throw new Error(`mosquitto exited with code ${proc.exitCode}`);
    const ok = await new Promise<boolean>((resolve) => {
      const c = net.connect({ port, host: "127.0.0.1" });
      c.once("connect", () => {
        c.destroy();
        resolve(true);
      });
      c.once("error", () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`mosquitto did not listen on ${port} within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function client(port: number, clientId: string): Promise<MqttClient> {
  const c = new MqttClient(
    () => {
      const s = net.createConnection({ host: "127.0.0.1", port, noDelay: true });
      s.setNoDelay(true);
      return s;
    },
    { clientId, clean: false, protocolVersion: 4, keepalive: 60, reconnectPeriod: 0, connectTimeout: 10_000 },
  );
  return new Promise((resolve, reject) => {
    c.once("connect", () => resolve(c));
    c.once("error", reject);
  });
}

function end(c: MqttClient): Promise<void> {
  return new Promise((resolve) => c.end(false, {}, () => resolve()));
}

/** The broker's version as `mosquitto -h` prints it. */
export function mosquittoVersion(bin: string): string {
  return /mosquitto version (\S+)/.exec(spawnSync(bin, ["-h"], { encoding: "utf8" }).stdout ?? "")?.[1] ?? "unknown";
}

/**
 * Writes `dir/mosquitto.conf`: loopback listener on `port`, persistence in `dir`, Nagle off, QoS 1
 * window 20, errors to stderr; `extra` lines (queue limit, autosave) are added. Returns its path.
 */
export async function writeMosquittoConfig(dir: string, port: number, extra: string[]): Promise<string> {
  const conf = path.join(dir, "mosquitto.conf");
  await writeFile(
    conf,
    [
      `listener ${port} 127.0.0.1`,
      "allow_anonymous true",
      "persistence true",
      `persistence_location ${dir}/`,
      "persistence_file mosquitto.db",
      "set_tcp_nodelay true",
      "max_inflight_messages 20",
      ...extra,
      "log_type error",
      "log_dest stderr",
      // Started as root, mosquitto would switch to the `mosquitto` user, which cannot write the temp dir.
      `user ${os.userInfo().username}`,
      "",
    ].join("\n"),
  );
  return conf;
}

export async function runMosquitto(bin: string, count: number, warmup: number, log: (line: string) => void): Promise<MqttResult> {
  const version = mosquittoVersion(bin);
  const dir = await mkdtemp(path.join(os.tmpdir(), "fleet-bench-mqtt-"));
  const port = await freePort();
  const conf = await writeMosquittoConfig(dir, port, ["max_queued_messages 10000"]);
  const proc = spawn(bin, ["-c", conf], { stdio: ["ignore", "ignore", "pipe"] });
  let stderr = "";
  proc.stderr!.on("data", (c: Buffer) => (stderr += c.toString()));
  const clients: MqttClient[] = [];
  try {
    await waitForPort(port, proc, 5000);
    log(`  mosquitto ${version} on 127.0.0.1:${port} (persistence in ${dir})`);
    const host = "bench-host-1";
    const cmdTopic = `fleet/${host}/cmd`;
    const respTopic = `fleet/${host}/resp`;
    const agent = await client(port, `bench-agent-${host}`);
    clients.push(agent);
    const operator = await client(port, "bench-operator");
    clients.push(operator);
    await agent.subscribeAsync(cmdTopic, { qos: 1 });
    await operator.subscribeAsync(respTopic, { qos: 1 });

    const received = new Map<string, number>();
    const stored = new Map<string, number>();
    let waiting: { id: string; resolve: (t: number) => void } | null = null;
    let storedWaiter: (() => void) | null = null;

    agent.on("message", (_topic, payload) => {
      const t = performance.now();
      const cmd = JSON.parse(payload.toString("utf8")) as { message_id: string };
      received.set(cmd.message_id, t);
      const response = JSON.stringify({
        message_id: crypto.randomUUID(),
        timestamp: new Date().toISOString(),
        message_type: "response",
        original_message_id: cmd.message_id,
        status: "success",
        result: { output: "ok\n", exit_code: 0, execution_time: 0 },
      });
      agent.publish(respTopic, response, { qos: 1 }, (err) => {
        if (err) return;
        stored.set(cmd.message_id, performance.now());
        storedWaiter?.();
      });
    });
    operator.on("message", (_topic, payload) => {
      const t = performance.now();
      const resp = JSON.parse(payload.toString("utf8")) as { original_message_id: string };
      if (waiting && waiting.id === resp.original_message_id) {
        const w = waiting;
        waiting = null;
        w.resolve(t);
      }
    });

    const rt: number[] = [];
    const rcv: number[] = [];
    const sto: number[] = [];
    const pub: number[] = [];
    for (let i = 0; i < warmup + count; i++) {
      const id = crypto.randomUUID();
      // The same shape and size as the relay's command frame for system_info.
      const frame = JSON.stringify({
        message_id: id,
        timestamp: new Date().toISOString(),
        message_type: "command",
        command_type: "system_info",
        target_host: "00000000-0000-4000-8000-000000000000",
        parameters: {},
        expires_at: new Date(Date.now() + 86_400_000).toISOString(),
        attempt: 1,
        timeout: 300,
      });
      let pubackAt = 0;
      const t0 = performance.now();
      const done = new Promise<number>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`mqtt: no response to ${id} within 10 s`)), 10_000);
        waiting = {
          id,
          resolve: (t) => {
            clearTimeout(timer);
            resolve(t);
          },
        };
      });
      const acked = new Promise<void>((resolve, reject) =>
        operator.publish(cmdTopic, frame, { qos: 1 }, (err) => {
          if (err) reject(err);
          pubackAt = performance.now();
          resolve();
        }),
      );
      const tResp = await done;
      await acked;
      // The agent's PUBACK for its response may land just after the operator got the message.
      if (!stored.has(id)) {
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, 5000);
          storedWaiter = () => {
            clearTimeout(timer);
            resolve();
          };
        });
        storedWaiter = null;
      }
      if (i >= warmup) {
        rt.push(tResp - t0);
        rcv.push(received.get(id)! - t0);
        const s = stored.get(id);
        if (s !== undefined) sto.push(s - t0);
        pub.push(pubackAt - t0);
      }
      received.delete(id);
      stored.delete(id);
    }
    return { version, count, received: summarize(rcv), stored: summarize(sto), roundTrip: summarize(rt), publish: summarize(pub) };
  } catch (err) {
    if (stderr) log(`  mosquitto stderr: ${stderr.trim()}`);
    throw err;
  } finally {
    await Promise.all(clients.map((c) => end(c).catch(() => {})));
    if (proc.exitCode === null) {
      const exited = new Promise((r) => proc.once("exit", r));
      proc.kill("SIGTERM");
      const timer = setTimeout(() => proc.kill("SIGKILL"), 3000);
      await exited;
      clearTimeout(timer);
    }
    await rm(dir, { recursive: true, force: true });
  }
}
