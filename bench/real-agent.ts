/**
 * The real agent (agent/index.ts) enrolled against the local relay and run in this process, with
 * its events feeding the tracker: `command` is "received"; the relay's ack of the response frame
 * (`outbox_acked` for that frame) is "stored". The response frame's id is read from the agent's
 * journal (a read-only SQLite connection beside the agent's own) when the agent reports the response.
 *
 * Times are those of the frame's arrival at the agent's WebSocket (the `message` dispatch), not of
 * the event: the agent journals an ack (a synchronous SQLite commit with fsync) before it emits
 * `outbox_acked`, and that is the agent's cost, not the relay's.
 */
import path from "node:path";
import { DatabaseSync, type StatementSync } from "node:sqlite";
import WebSocket from "ws";
import { type Agent, createLogger, enroll, JOURNAL_FILE, startAgent } from "../agent/index.ts";
import type { RestClient } from "./rest.ts";
import type { Tracker } from "./tracker.ts";

/** Arrival time of the frame being dispatched right now; the agent handles each frame synchronously. */
let frameArrivedAt = 0;
let stamped = false;
function stampFrameArrivals(): void {
  if (stamped) return;
  stamped = true;
  const proto = WebSocket.prototype as unknown as { emit(event: string | symbol, ...args: unknown[]): boolean };
  const emit = proto.emit;
  proto.emit = function (this: unknown, event: string | symbol, ...args: unknown[]): boolean {
    if (event === "message") frameArrivedAt = performance.now();
    return emit.call(this, event, ...args);
  };
}

export interface RealAgentHandle {
  agent: Agent;
  hostId: string;
  stop(): Promise<void>;
}

export async function startRealAgent(o: {
  rest: RestClient;
  adminToken: string;
  edgeUrl: string;
  caCertPath: string;
  stateDir: string;
  hostname: string;
  tracker: Tracker;
}): Promise<RealAgentHandle> {
  stampFrameArrivals();
  const { token } = await o.rest.json<{ token: string }>("POST", "/api/enrollment-tokens", {}, 201, o.adminToken);
  const enrolled = await enroll({ relay: o.edgeUrl, token, stateDir: o.stateDir, caFile: o.caCertPath, hostname: o.hostname });
  // Log lines are built (that is part of what a real agent does per command) and then dropped.
  const agent = await startAgent({ stateDir: o.stateDir, logger: createLogger("info", () => {}) });
  const welcomed = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${o.hostname}: real agent not welcomed within 30 s`)), 30_000);
    agent.events.once("welcome", () => {
      clearTimeout(timer);
      resolve();
    });
  });
  await welcomed;

  const db = new DatabaseSync(path.join(o.stateDir, JOURNAL_FILE), { readOnly: true });
  const responseFrameOf: StatementSync = db.prepare("SELECT frame_id FROM outbox WHERE command_id = ? AND kind = 'response'");
  /** response frame id → command id, until the relay acks it. */
  const pending = new Map<string, string>();
  agent.events.on("command", (e) => {
    if (!e.redelivery) o.tracker.onReceived(e.message_id, frameArrivedAt);
  });
  agent.events.on("response", (e) => {
    const row = responseFrameOf.get(e.message_id) as { frame_id: string } | undefined;
    if (row) pending.set(row.frame_id, e.message_id);
  });
  agent.events.on("outbox_acked", (e) => {
    const t = frameArrivedAt;
    const commandId = pending.get(e.frame_id);
    if (commandId === undefined) return;
    pending.delete(e.frame_id);
    o.tracker.onStored(commandId, t);
  });
  return {
    agent,
    hostId: enrolled.hostId,
    stop: async () => {
      await agent.stop("bench done");
      db.close();
    },
  };
}
