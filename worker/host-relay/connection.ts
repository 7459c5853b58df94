import type { AgentInfo, HelloMessage } from "../../schemas/index.ts";
import { CloseCode, nowRfc3339, PROTOCOL_VERSION } from "../../schemas/index.ts";
import type { AuditActor } from "../audit-log/contract.ts";
import { M } from "../metrics/catalogue.ts";
import { jobsWaitingFor, markOffline, markOnline } from "../registry.ts";
import {
  AGENT_TAG,
  type AgentAttachment,
  attachment,
  enqueueRegistryWrite,
  liveSockets,
  type RelayContext,
  saveAttachment,
  sendFrame,
} from "./context.ts";
import { cancelsDue, pump, socketDeadline } from "./delivery.ts";
import { addMetrics } from "./metrics-outbox.ts";
import { recordAudit, recordPresence, recordWakes } from "./notify.ts";

export { INTERNAL_HOST_HEADER } from "./contract.ts";

/** What the Worker's connect route proved about the agent, passed on for the audit trail. */
export interface ConnectInfo {
  fingerprint: string | null;
  address: string | null;
  requestId: string | null;
}

function agentActor(hostId: string, a: Pick<AgentAttachment, "fingerprint" | "address">): AuditActor {
  return {
    kind: "agent",
    sub: hostId,
    role: null,
    jti: null,
    ip: a.address ?? null,
    user_agent: null,
    cert_fingerprint: a.fingerprint ?? null,
  };
}

/** Accepts an agent's WebSocket (identity already proven by the Worker) and supersedes any older one. */
export function acceptAgent(
  rc: RelayContext,
  hostId: string,
  now: number,
  info: ConnectInfo = { fingerprint: null, address: null, requestId: null },
): Response {
  for (const old of liveSockets(rc)) {
    closeAgent(rc, old, CloseCode.REPLACED, "replaced by a newer connection", now);
  }
  const pair = new WebSocketPair();
  const [client, server] = [pair[0], pair[1]];
  rc.ctx.acceptWebSocket(server, [AGENT_TAG]);
  const a: AgentAttachment = {
    connectionId: crypto.randomUUID(),
    hostId,
    connectedAt: now,
    lastFrameAt: now,
    helloAt: null,
    closed: false,
    fingerprint: info.fingerprint,
    address: info.address,
  };
  saveAttachment(rc, server, a);
  recordAudit(
    rc,
    {
      action: "agent.connect",
      time: now,
      actor: agentActor(hostId, a),
      request: { connection_id: a.connectionId },
      outcome: { status: 101, code: null },
      request_id: info.requestId,
    },
    now,
  );
  addMetrics(rc, now, (w) => w.count(M.CONNECTIONS_ACCEPTED));
  return new Response(null, { status: 101, webSocket: client });
}

export function onHello(rc: RelayContext, ws: WebSocket, hello: HelloMessage, now: number): void {
  if (hello.protocol_version !== PROTOCOL_VERSION) {
    closeAgent(
      rc,
      ws,
      CloseCode.UNSUPPORTED_PROTOCOL,
      `protocol ${hello.protocol_version} not supported; relay speaks ${PROTOCOL_VERSION}`,
      now,
    );
    return;
  }
  const a = attachment(rc, ws);
  a.helloAt = now;
  saveAttachment(rc, ws, a);
  const agent: AgentInfo = {
    agent_version: hello.agent_version,
    protocol_version: hello.protocol_version,
    hostname: hello.hostname,
    os: hello.os,
    supported_commands: hello.supported_commands,
  };
  rc.store.setMeta("agent", JSON.stringify(agent));
  sendFrame(ws, {
    message_id: crypto.randomUUID(),
    timestamp: nowRfc3339(now),
    message_type: "welcome",
    host_id: a.hostId,
    server_time: nowRfc3339(now),
    heartbeat_interval: rc.config.heartbeatIntervalS,
    protocol_version: PROTOCOL_VERSION,
  });
  const { hostId, connectionId } = a;
  enqueueRegistryWrite(rc, () => markOnline(rc.env.DB, hostId, connectionId, nowRfc3339(now), agent));
  // After `online` is written: a job parking this host reads `online` after listing its wait, so one side sees the other.
  enqueueRegistryWrite(rc, async () => recordWakes(rc, await jobsWaitingFor(rc.env.DB, hostId), rc.clock.now()));
  recordPresence(rc, true, now);
  // Cancels waiting for this agent go before new commands.
  cancelsDue(rc, now);
  pump(rc, now);
}

/** Closes a socket from the relay side and treats it as gone at once: a dead peer never answers the close. */
export function closeAgent(rc: RelayContext, ws: WebSocket, code: number, reason: string, now: number): void {
  onAgentGone(rc, ws, now, { code, reason, by: "relay" });
  try {
    ws.close(code, reason);
  } catch {
    // Already closed.
  }
}

/** Bookkeeping for a socket that is gone; safe to call more than once per socket. */
export function onAgentGone(
  rc: RelayContext,
  ws: WebSocket,
  now: number,
  close: { code: number | null; reason: string; by: "relay" | "agent" } = { code: null, reason: "socket error", by: "agent" },
): void {
  const a = attachment(rc, ws);
  if (a.closed) return;
  a.closed = true;
  saveAttachment(rc, ws, a);
  recordAudit(
    rc,
    {
      action: "agent.disconnect",
      time: now,
      actor: agentActor(a.hostId, a),
      request: { connection_id: a.connectionId, closed_by: close.by, connected_for_ms: now - a.connectedAt },
      outcome: { status: null, code: close.code === null ? null : String(close.code), detail: close.reason.slice(0, 123) },
    },
    now,
  );
  addMetrics(rc, now, (w) => w.count(M.DISCONNECTS, { code: close.code === null ? "none" : String(close.code) }));
  rc.frameBudgets.delete(ws);
  // Unacked commands were sent on this socket; the next connection resends them (spending attempts then).
  if (liveSockets(rc).length === 0) rc.store.commands.clearInFlight();
  if (a.helloAt !== null) {
    const { hostId, connectionId } = a;
    enqueueRegistryWrite(rc, () => markOffline(rc.env.DB, hostId, connectionId, nowRfc3339(now)));
    if (liveSockets(rc).every((other) => attachment(rc, other).helloAt === null)) recordPresence(rc, false, now);
  }
}

/** Closes sockets past their hello or heartbeat deadline. */
export function closeStale(rc: RelayContext, now: number): void {
  for (const ws of liveSockets(rc)) {
    if (socketDeadline(rc, ws) > now) continue;
    const greeted = attachment(rc, ws).helloAt !== null;
    closeAgent(
      rc,
      ws,
      greeted ? CloseCode.STALE : CloseCode.HELLO_REQUIRED,
      greeted ? "no heartbeat within the stale deadline" : "no hello within the deadline",
      now,
    );
  }
}

/** Notes a sign of life and returns the attachment; it is rewritten at most once a second to keep frames cheap. */
export function touch(rc: RelayContext, ws: WebSocket, now: number): AgentAttachment {
  const a = attachment(rc, ws);
  if (now - a.lastFrameAt < 1000) return a;
  a.lastFrameAt = now;
  saveAttachment(rc, ws, a);
  return a;
}
