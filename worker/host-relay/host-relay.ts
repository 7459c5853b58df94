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
import { attachNotifier, flushOutbox } from "./notify.ts";
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
    this.rc = {
      ctx,
      env,
      store,
      config: relayConfig(env),
      alarmAt: undefined,
      registryChain: Promise.resolve(),
      outboxDirty: false,
      flushing: false,
      flushAgain: false,
    };
    ctx.blockConcurrencyWhile(async () => store.migrate());
    attachNotifier(this.rc);
    // Answered by the runtime, so a heartbeat never wakes a hibernating object.
    ctx.setWebSocketAutoResponse(new WebSocketRequestResponsePair(HEARTBEAT_PING, HEARTBEAT_PONG));
  }

  /** Only the Worker reaches this, after it has verified the agent's certificate. */
  override async fetch(request: Request): Promise<Response> {
    const hostId = request.headers.get(INTERNAL_HOST_HEADER);
    if (!hostId || request.headers.get("upgrade")?.toLowerCase() !== "websocket") {
      return problemResponse(new RelayError(ErrorCode.UPGRADE_REQUIRED));
    }
    const host = await ops.ensureHost(this.rc, hostId);
    if (!host.ok) {
      const code = host.code === ErrorCode.HOST_REVOKED ? ErrorCode.AGENT_REVOKED : host.code;
      return problemResponse(new RelayError(code, host.detail));
    }
    const response = acceptAgent(this.rc, hostId, Date.now());
    flushOutbox(this.rc);
    return response;
  }

  override async webSocketMessage(ws: WebSocket, message: string | ArrayBuffer): Promise<void> {
    handleAgentFrame(this.rc, ws, message, Date.now());
    flushOutbox(this.rc);
  }

  override async webSocketClose(ws: WebSocket, code: number, reason: string): Promise<void> {
    onAgentGone(this.rc, ws, Date.now());
    flushOutbox(this.rc);
    try {
      ws.close(code === 1005 ? 1000 : code, reason);
    } catch {
      // The runtime already completed the close.
    }
  }

  override async webSocketError(ws: WebSocket): Promise<void> {
    onAgentGone(this.rc, ws, Date.now());
    flushOutbox(this.rc);
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
    flushOutbox(rc);
    scheduleAlarm(rc);
  }

  // ---- RPC, called by the Worker's routes ----

  async enqueue(input: ops.EnqueueInput) {
    return this.settled(await ops.enqueue(this.rc, input, Date.now()));
  }

  getCommand(hostId: string, messageId: string) {
    return ops.getCommand(this.rc, hostId, messageId);
  }

  listCommands(hostId: string, opts: { states?: CommandState[] | undefined; limit: number; cursor?: string | undefined }) {
    return ops.listCommands(this.rc, hostId, opts);
  }

  cancel(hostId: string, messageId: string) {
    return this.settled(ops.cancel(this.rc, hostId, messageId, Date.now()));
  }

  listDeadLetters(hostId: string, opts: { limit: number; cursor?: string | undefined }) {
    return ops.listDeadLetters(this.rc, hostId, opts);
  }

  async requeue(hostId: string, messageId: string, opts: RequeueRequest) {
    return this.settled(await ops.requeue(this.rc, hostId, messageId, opts, Date.now()));
  }

  revoke(hostId: string, revokedAt: string) {
    return this.settled(ops.revoke(this.rc, hostId, revokedAt, Date.now()));
  }

  /** The host's tags changed in the registry; events carry them from now on. */
  setTags(hostId: string, tags: string[]) {
    return ops.setTags(this.rc, hostId, tags);
  }

  /** Hands notifications made by a call to the outbox flusher before answering it. */
  private settled<T>(result: T): T {
    flushOutbox(this.rc);
    return result;
  }

  stats() {
    return ops.stats(this.rc);
  }

  /** Invalid frames recorded from this host's agent, oldest first (bounded). */
  frameErrors() {
    return this.rc.store.frameErrors();
  }
}
