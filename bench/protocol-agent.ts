/**
 * The protocol-only agent: a bare `ws` client with an enrolled client certificate that speaks just
 * enough of wire protocol v1 to isolate the relay: hello → welcome, then for every command an
 * immediate ack and a `success` response, and the relay's ack of that response counts as "stored".
 * No journal, no executor. Heartbeats like a real agent so idle connections are not closed as stale.
 */
import WebSocket from "ws";
import type { Tracker } from "./tracker.ts";

export interface ProtocolAgentOptions {
  /** `wss://127.0.0.1:<edge>/agent/connect` */
  url: string;
  ca: string;
  cert: string;
  key: string;
  hostname: string;
  /** Where received/stored times go; omitted for idle connections (memory test). */
  tracker?: Tracker;
  /** Send heartbeats every welcome.heartbeat_interval. Default true. */
  heartbeat?: boolean;
  timeoutMs?: number;
}

const now = () => performance.now();
const iso = () => new Date().toISOString();

export class ProtocolAgent {
  readonly ws: WebSocket;
  readonly hostId: string;
  #heartbeat: NodeJS.Timeout | null = null;
  /** response frame id → command id, until the relay acks it. */
  readonly #pending = new Map<string, string>();

  private constructor(ws: WebSocket, hostId: string) {
    this.ws = ws;
    this.hostId = hostId;
  }

  /** Opens the socket through the edge and resolves once `welcome` arrived. */
  static connect(o: ProtocolAgentOptions): Promise<ProtocolAgent> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(o.url, {
        ca: o.ca,
        cert: o.cert,
        key: o.key,
        minVersion: "TLSv1.3",
        perMessageDeflate: false,
        servername: "localhost",
      } as WebSocket.ClientOptions);
      let agent: ProtocolAgent | null = null;
      const timer = setTimeout(() => {
        ws.terminate();
        reject(new Error(`${o.hostname}: no welcome within ${o.timeoutMs ?? 30_000} ms`));
      }, o.timeoutMs ?? 30_000);
      // ws already calls setNoDelay() on the socket it upgrades; said again here so it is explicit.
      ws.on("upgrade", (res) => res.socket.setNoDelay(true));
      ws.on("unexpected-response", (_req, res) => {
        clearTimeout(timer);
        reject(new Error(`${o.hostname}: upgrade refused with HTTP ${res.statusCode}`));
        ws.terminate();
      });
      ws.on("error", (err) => {
        clearTimeout(timer);
        reject(err);
      });
      ws.on("open", () =>
        ws.send(
          JSON.stringify({
            message_id: crypto.randomUUID(),
            timestamp: iso(),
            message_type: "hello",
            agent_version: "bench-protocol-agent",
            protocol_version: 1,
            hostname: o.hostname,
            os: { name: "linux" },
            supported_commands: ["system_info", "package_operation", "shell"],
          }),
        ),
      );
      ws.on("message", (data) => {
        const t = now();
        const text = String(data);
        if (text === "pong" || text === "ping") return;
        const frame = JSON.parse(text) as {
          message_type: string;
          message_id: string;
          original_message_id?: string;
          host_id?: string;
          heartbeat_interval?: number;
        };
        if (agent === null) {
          if (frame.message_type !== "welcome") return;
          clearTimeout(timer);
          agent = new ProtocolAgent(ws, frame.host_id!);
          if (o.heartbeat !== false) {
            const every = (frame.heartbeat_interval ?? 30) * 1000;
            agent.#heartbeat = setInterval(() => ws.readyState === WebSocket.OPEN && ws.send("ping"), every);
            agent.#heartbeat.unref();
          }
          resolve(agent);
          return;
        }
        agent.#onFrame(frame, t, o.tracker);
      });
      ws.on("close", () => {
        // biome-ignore lint/complexity/useOptionalChain: an optional chain cannot reach a private field
        if (agent && agent.#heartbeat) clearInterval(agent.#heartbeat);
      });
    });
  }

  #onFrame(
    frame: { message_type: string; message_id: string; original_message_id?: string },
    t: number,
    tracker: Tracker | undefined,
  ): void {
    if (frame.message_type === "command") {
      tracker?.onReceived(frame.message_id, t);
      const ts = iso();
      this.ws.send(
        JSON.stringify({ message_id: crypto.randomUUID(), timestamp: ts, message_type: "ack", original_message_id: frame.message_id }),
      );
      const responseId = crypto.randomUUID();
      this.#pending.set(responseId, frame.message_id);
      this.ws.send(
        JSON.stringify({
          message_id: responseId,
          timestamp: ts,
          message_type: "response",
          original_message_id: frame.message_id,
          status: "success",
          result: { output: "ok\n", exit_code: 0, execution_time: 0 },
        }),
      );
    } else if (frame.message_type === "ack" && frame.original_message_id) {
      const commandId = this.#pending.get(frame.original_message_id);
      if (commandId !== undefined) {
        this.#pending.delete(frame.original_message_id);
        tracker?.onStored(commandId, t);
      }
    }
  }

  close(): Promise<void> {
    if (this.#heartbeat) clearInterval(this.#heartbeat);
    if (this.ws.readyState === WebSocket.CLOSED) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.ws.terminate();
        resolve();
      }, 5000);
      this.ws.once("close", () => {
        clearTimeout(timer);
        resolve();
      });
      this.ws.close(1000, "bench done");
    });
  }
}
