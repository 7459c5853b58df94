/**
 * Child process of the scale benchmark (bench/scale.ts): holds a share of the idle agents, so no one
 * process needs more open files than it may have. Two kinds:
 *
 * - `agents`: each is the real agent's connection code without its journal: `RelaySocket` (TLS with
 *   the host's client certificate, hello → welcome, heartbeats) inside `reconnectLoop` with the
 *   agent's `Backoff` (full jitter, 1 s doubling to 60 s, reset after a connection stable for 60 s),
 *   exactly as `agent/agent.ts` wires them. A command is acked and answered `success` at once.
 * - `mqtt`: MQTT 3.1.1 clients for the peer (clean=false, fixed ids, a QoS 1 subscription each).
 *
 * Events go to the parent in batches (every 200 ms): welcomes and closes with their times, and the
 * ids of commands received.
 */
import { EventEmitter } from "node:events";
import net from "node:net";
import { MqttClient } from "mqtt";
import { Backoff } from "../agent/backoff.ts";
import type { AgentEventMap } from "../agent/events.ts";
import { silentLogger } from "../agent/log.ts";
import { reconnectLoop } from "../agent/reconnect-loop.ts";
import { RelaySocket } from "../agent/relay-socket.ts";
import { nowRfc3339 } from "../schemas/index.ts";

export interface AgentSpec {
  /** Index in the whole fleet (the parent's numbering). */
  i: number;
  cn: string;
  certPem: string;
}

export type ClientRequest =
  | {
      type: "agents";
      url: string;
      caPem: string;
      keyPem: string;
      agents: AgentSpec[];
      /** First dials in flight at once in this process (reconnects are not limited: the backoff spreads them). */
      dialConcurrency: number;
      backoff: { baseMs: number; capMs: number; stableAfterMs: number };
    }
  | { type: "mqtt"; port: number; ids: number[]; dialConcurrency: number; keepaliveS: number }
  /** No more first dials (the relay is at its open-file limit). */
  | { type: "halt" }
  /** Close these agents and keep them away until `resume`. */
  | { type: "pause"; indexes: number[] }
  | { type: "resume"; indexes: number[] }
  | { type: "stop" };

export type ClientReply =
  | {
      type: "events";
      /** [index, epoch ms] of each welcome (or MQTT CONNACK). */
      up: [number, number][];
      /** [index, epoch ms] of each close of a welcomed connection. */
      down: [number, number][];
      /** First dials that failed (errors by message, counted). */
      failed: Record<string, number>;
      /** Ids of command frames received (each time one arrives). */
      commands: string[];
    }
  /** `dialling`: epoch ms of this process's first dial; `started`: every first dial made. */
  | { type: "dialling"; at: number }
  | { type: "started"; dialled: number }
  | { type: "stopped" };

if (!process.send) {
  console.error("bench/scale-client.ts is forked by bench/scale.ts");
  process.exit(2);
}
const send = (m: ClientReply) => process.send!(m);

let up: [number, number][] = [];
let down: [number, number][] = [];
let failed: Record<string, number> = {};
let commands: string[] = [];
const flush = () => {
  if (up.length + down.length + commands.length + Object.keys(failed).length === 0) return;
  send({ type: "events", up, down, failed, commands });
  up = [];
  down = [];
  failed = {};
  commands = [];
};
const flushTimer = setInterval(flush, 200);

let halted = false;
const stoppers: (() => Promise<void>)[] = [];

/** Runs `fn` over `items`, at most `limit` at a time, until halted. */
async function gate<T>(items: T[], limit: number, fn: (item: T) => Promise<void>): Promise<number> {
  send({ type: "dialling", at: Date.now() });
  let next = 0;
  let dialled = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      while (!halted && next < items.length) {
        const item = items[next++]!;
        dialled++;
        await fn(item);
      }
    }),
  );
  return dialled;
}

// ---------------------------------------------------------------- relay agents

interface IdleAgent {
  spec: AgentSpec;
  abort: AbortController | null;
  socket: RelaySocket | null;
  loop: Promise<unknown> | null;
}

function runAgents(m: Extract<ClientRequest, { type: "agents" }>): void {
  const agents = new Map<number, IdleAgent>(m.agents.map((spec) => [spec.i, { spec, abort: null, socket: null, loop: null }]));

  const start = (a: IdleAgent, firstWelcome?: () => void) => {
    const abort = new AbortController();
    a.abort = abort;
    const events = new EventEmitter<AgentEventMap>();
    a.loop = reconnectLoop({
      backoff: new Backoff(m.backoff.baseMs, m.backoff.capMs),
      stableAfterMs: m.backoff.stableAfterMs,
      logger: silentLogger,
      events,
      signal: abort.signal,
      takeReconnectNow: () => false,
      connectOnce: async () => {
        const socket = new RelaySocket({
          url: m.url,
          ca: [m.caPem],
          cert: a.spec.certPem,
          key: m.keyPem,
          hello: {
            message_id: crypto.randomUUID(),
            timestamp: nowRfc3339(Date.now()),
            message_type: "hello",
            agent_version: "bench-scale-agent",
            protocol_version: 1,
            hostname: a.spec.cn,
            os: { name: "linux" },
            supported_commands: ["system_info"],
          },
          handshakeTimeoutMs: 60_000,
          welcomeTimeoutMs: 60_000,
          logger: silentLogger,
          onWelcome: () => {
            up.push([a.spec.i, Date.now()]);
            firstWelcome?.();
            firstWelcome = undefined;
          },
          onFrame: (frame) => {
            if (frame.message_type !== "command") return;
            commands.push(frame.message_id);
            const ts = nowRfc3339(Date.now());
            socket.send({ message_id: crypto.randomUUID(), timestamp: ts, message_type: "ack", original_message_id: frame.message_id });
            socket.send({
              message_id: crypto.randomUUID(),
              timestamp: ts,
              message_type: "response",
              original_message_id: frame.message_id,
              status: "success",
              result: { output: "ok\n", exit_code: 0, execution_time: 0 },
            });
          },
        });
        a.socket = socket;
        const closed = await socket.closed;
        a.socket = null;
        if (closed.welcomed) down.push([a.spec.i, Date.now()]);
        else if (firstWelcome) {
          // A first dial that failed: counted, and its gate slot freed; the loop retries it like any agent would.
          const why = (closed.error ?? `close ${closed.code}`).slice(0, 80);
          failed[why] = (failed[why] ?? 0) + 1;
          firstWelcome();
          firstWelcome = undefined;
        }
        return closed;
      },
    });
  };

  const stopOne = async (a: IdleAgent) => {
    a.abort?.abort();
    a.socket?.close(1000, "bench done");
    await a.loop;
    a.abort = null;
    a.loop = null;
  };

  process.on("message", (r: ClientRequest) => {
    if (r.type === "pause") for (const i of r.indexes) void stopOne(agents.get(i)!);
    if (r.type === "resume") for (const i of r.indexes) start(agents.get(i)!);
  });
  stoppers.push(async () => {
    await Promise.all([...agents.values()].map(stopOne));
  });

  // The first dial of each agent is gated (a fleet does not start in one millisecond); once it has been
  // welcomed, or failed once, the agent is on its own loop.
  void gate([...agents.values()], m.dialConcurrency, (a) => new Promise<void>((resolve) => start(a, resolve))).then((dialled) =>
    send({ type: "started", dialled }),
  );
}

// ---------------------------------------------------------------- MQTT clients

function runMqtt(m: Extract<ClientRequest, { type: "mqtt" }>): void {
  const clients: MqttClient[] = [];
  stoppers.push(async () => {
    await Promise.all(clients.map((c) => new Promise<void>((resolve) => c.end(true, {}, () => resolve()))));
  });
  void gate(
    m.ids,
    m.dialConcurrency,
    (i) =>
      new Promise<void>((resolve) => {
        const c = new MqttClient(() => net.createConnection({ host: "127.0.0.1", port: m.port, noDelay: true }), {
          clientId: `scale-${i}`,
          clean: false,
          protocolVersion: 4,
          keepalive: m.keepaliveS,
          reconnectPeriod: 0,
          connectTimeout: 60_000,
        });
        clients.push(c);
        c.once("connect", () => {
          c.subscribe(`fleet/${i}/cmd`, { qos: 1 }, () => {
            up.push([i, Date.now()]);
            resolve();
          });
        });
        c.once("error", (err) => {
          failed[err.message.slice(0, 80)] = (failed[err.message.slice(0, 80)] ?? 0) + 1;
          resolve();
        });
        c.on("close", () => down.push([i, Date.now()]));
      }),
  ).then((dialled) => send({ type: "started", dialled }));
}

process.on("message", async (r: ClientRequest) => {
  if (r.type === "agents") runAgents(r);
  else if (r.type === "mqtt") runMqtt(r);
  else if (r.type === "halt") halted = true;
  else if (r.type === "stop") {
    halted = true;
    await Promise.all(stoppers.map((s) => s()));
    flush();
    clearInterval(flushTimer);
    send({ type: "stopped" });
    process.exit(0);
  }
});
process.on("disconnect", () => process.exit(0));
