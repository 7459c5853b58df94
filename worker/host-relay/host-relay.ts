import { DurableObject } from "cloudflare:workers";
import type { CommandState, RequeueRequest } from "../../schemas/index.ts";
import { HEARTBEAT_PING, HEARTBEAT_PONG } from "../../schemas/index.ts";
import { relayConfig } from "../config.ts";
import type { Env } from "../env.ts";
import { ErrorCode, RelayError, problemResponse } from "../errors.ts";
import { handleAgentFrame } from "./agent-frames.ts";
import { INTERNAL_HOST_HEADER, acceptAgent, closeStale, onAgentGone } from "./connection.ts";
import type { RelayContext } from "./context.ts";
import { expireDue, pump, retryDue, scheduleAlarm } from "./delivery.ts";
import * as ops from "./operations.ts";
import { HostRelayStorage } from "./storage.ts";

/**
 * One per managed host: holds the agent's WebSocket and the host's persistent command queue.
 * Hooks and RPC methods only hand off to the named handlers in this folder.
 */
export class HostRelay extends DurableObject<Env> {
  private readonly rc: RelayContext;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    const store = new HostRelayStorage(ctx.storage);
    this.rc = { ctx, env, store, config: relayConfig(env), alarmAt: undefined, registryChain: Promise.resolve() };
    ctx.blockConcurrencyWhile(async () => store.migrate());
    // Answered by the runtime, so a heartbeat never wakes a hibernating object.
    ctx.setWebSocketAutoResponse(new WebSocketRequestResponsePair(HEARTBEAT_PING, HEARTBEAT_PONG));
  }

  /** Only the Worker reaches this, after it has verified the agent's certificate. */
  override async fetch(request: Request): Promise<Response> {
    const hostId = request.headers.get(INTERNAL_HOST_HEADER);
    if (!hostId || request.headers.get("upgrade")?.toLowerCase() !== "websocket") {
      return problemResponse(new RelayError(ErrorCode.UPGRADE_REQUIRED, 426));
    }
    const host = await ops.ensureHost(this.rc, hostId);
    if (!host.ok) {
      const code = host.code === ErrorCode.HOST_REVOKED ? ErrorCode.AGENT_REVOKED : host.code;
      return problemResponse(new RelayError(code, host.status === 409 ? 403 : host.status, host.detail));
    }
    return acceptAgent(this.rc, hostId, Date.now());
  }

  override async webSocketMessage(ws: WebSocket, message: string | ArrayBuffer): Promise<void> {
    handleAgentFrame(this.rc, ws, message, Date.now());
  }

  override async webSocketClose(ws: WebSocket, code: number, reason: string): Promise<void> {
    onAgentGone(this.rc, ws, Date.now());
    try {
      ws.close(code === 1005 ? 1000 : code, reason);
    } catch {
      // The runtime already completed the close.
    }
  }

  override async webSocketError(ws: WebSocket): Promise<void> {
    onAgentGone(this.rc, ws, Date.now());
  }

  override async alarm(): Promise<void> {
    const now = Date.now();
    const rc = this.rc;
    rc.alarmAt = null;
    expireDue(rc, now);
    // Close dead connections first, so a due retry is not spent on a socket nobody reads.
    closeStale(rc, now);
    retryDue(rc, now);
    rc.store.prune(now, rc.config.retentionDays * 86_400_000);
    pump(rc, now);
    scheduleAlarm(rc);
  }

  // ---- RPC, called by the Worker's routes ----

  enqueue(input: ops.EnqueueInput) {
    return ops.enqueue(this.rc, input, Date.now());
  }

  getCommand(hostId: string, messageId: string) {
    return ops.getCommand(this.rc, hostId, messageId);
  }

  listCommands(hostId: string, opts: { states?: CommandState[] | undefined; limit: number; cursor?: string | undefined }) {
    return ops.listCommands(this.rc, hostId, opts);
  }

  cancel(hostId: string, messageId: string) {
    return ops.cancel(this.rc, hostId, messageId, Date.now());
  }

  listDeadLetters(hostId: string, opts: { limit: number; cursor?: string | undefined }) {
    return ops.listDeadLetters(this.rc, hostId, opts);
  }

  requeue(hostId: string, messageId: string, opts: RequeueRequest) {
    return ops.requeue(this.rc, hostId, messageId, opts, Date.now());
  }

  revoke(hostId: string, revokedAt: string) {
    return ops.revoke(this.rc, hostId, revokedAt, Date.now());
  }

  stats() {
    return ops.stats(this.rc);
  }

  /** Invalid frames recorded from this host's agent, oldest first (bounded). */
  frameErrors() {
    return this.rc.store.frameErrors();
  }
}
