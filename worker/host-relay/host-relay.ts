import { DurableObject } from "cloudflare:workers";
import type { CommandState, RequeueRequest } from "../../schemas/index.ts";
import { HEARTBEAT_PING, HEARTBEAT_PONG } from "../../schemas/index.ts";
import { systemClock } from "../clock.ts";
import { relayConfig } from "../config.ts";
import { DurableEntry } from "../durable-entry.ts";
import type { Env } from "../env.ts";
import { ErrorCode, problemResponse, RelayError, type RpcFailure, type RpcResult } from "../errors.ts";
import { M } from "../metrics/catalogue.ts";
import { TestFaults } from "../test-faults.ts";
import { handleAgentFrame } from "./agent-frames.ts";
import { acceptAgent, closeStale, INTERNAL_HOST_HEADER, onAgentGone } from "./connection.ts";
import { liveSockets, type RelayContext } from "./context.ts";
import type { CancelOptions, CancelResult, EnqueueInput } from "./contract.ts";
import {
  INTERNAL_ADDRESS_HEADER,
  INTERNAL_FINGERPRINT_HEADER,
  INTERNAL_REGISTRATION_HEADER,
  INTERNAL_REQUEST_ID_HEADER,
  registrationFromHeader,
} from "./contract.ts";
import { cancelsDue, deadlinesDue, expireDue, pump, retryDue, scheduleAlarm } from "./delivery.ts";
import { addMetrics } from "./metrics-outbox.ts";
import { flushOutbox } from "./notify.ts";
import * as ops from "./operations.ts";
import { HostRelayStorage } from "./storage.ts";

/**
 * One per managed host: holds the agent's WebSocket and the host's persistent command queue.
 * Every hook and RPC method runs through `entry` (DurableEntry), which afterwards flushes the
 * outbox and recomputes the alarm, and logs what a handler threw; the handlers live in this folder.
 */
export class HostRelay extends DurableObject<Env> {
  private readonly rc: RelayContext;
  private readonly entry: DurableEntry;
  /** Test-only failure injection (worker/test-faults.ts): inert unless TEST_FAULTS is set. */
  readonly faults: TestFaults;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    const store = new HostRelayStorage(ctx.storage);
    this.faults = new TestFaults(env);
    const rc: RelayContext = {
      faults: this.faults,
      ctx,
      env,
      store,
      config: relayConfig(env),
      clock: systemClock,
      alarmAt: undefined,
      registryChain: Promise.resolve(),
      flushing: false,
      flushAgain: false,
      settleAlarm: () => scheduleAlarm(rc),
      frameBudgets: new WeakMap(),
      attachments: new WeakMap(),
      sentGauges: new Map(),
      openMetrics: undefined,
      gaugeCounts: null,
    };
    this.rc = rc;
    this.entry = new DurableEntry("HostRelay", () => {
      // An object that was only asked about an unknown host has no tables, and needs neither.
      if (!store.initialized) return;
      flushOutbox(rc);
      scheduleAlarm(rc);
    });
    ctx.blockConcurrencyWhile(async () => {
      store.open();
    });
    // Answered by the runtime, so a heartbeat never wakes a hibernating object.
    ctx.setWebSocketAutoResponse(new WebSocketRequestResponsePair(HEARTBEAT_PING, HEARTBEAT_PONG));
  }

  private now(): number {
    return this.rc.clock.now();
  }

  /** Only the Worker reaches this, after it has verified the agent's certificate. */
  override fetch(request: Request): Promise<Response> {
    return this.entry.run(
      "fetch",
      async () => {
        const hostId = request.headers.get(INTERNAL_HOST_HEADER);
        if (!hostId || request.headers.get("upgrade")?.toLowerCase() !== "websocket") {
          return problemResponse(new RelayError(ErrorCode.UPGRADE_REQUIRED));
        }
        const host = await ops.ensureHost(
          this.rc,
          hostId,
          this.now(),
          registrationFromHeader(request.headers.get(INTERNAL_REGISTRATION_HEADER)),
        );
        if (!host.ok) {
          const code = host.code === ErrorCode.HOST_REVOKED ? ErrorCode.AGENT_REVOKED : host.code;
          // An object that never served this host has no storage to count in; the Worker found the host in the registry anyway.
          if (this.rc.store.initialized) addMetrics(this.rc, this.now(), (w) => w.count(M.CONNECTIONS_REFUSED, { reason: code }));
          return problemResponse(new RelayError(code, host.detail));
        }
        return acceptAgent(this.rc, hostId, this.now(), {
          fingerprint: request.headers.get(INTERNAL_FINGERPRINT_HEADER) || null,
          address: request.headers.get(INTERNAL_ADDRESS_HEADER) || null,
          requestId: request.headers.get(INTERNAL_REQUEST_ID_HEADER) || null,
        });
      },
      () => problemResponse(new RelayError(ErrorCode.INTERNAL)),
    );
  }

  override webSocketMessage(ws: WebSocket, message: string | ArrayBuffer): Promise<void> {
    return this.entry.hook("webSocketMessage", () => handleAgentFrame(this.rc, ws, message, this.now()));
  }

  override webSocketClose(ws: WebSocket, code: number, reason: string): Promise<void> {
    return this.entry.hook("webSocketClose", () => {
      onAgentGone(this.rc, ws, this.now(), { code, reason, by: "agent" });
      try {
        ws.close(code === 1005 ? 1000 : code, reason);
      } catch {
        // The runtime already completed the close.
      }
    });
  }

  override webSocketError(ws: WebSocket): Promise<void> {
    return this.entry.hook("webSocketError", () =>
      onAgentGone(this.rc, ws, this.now(), { code: 1006, reason: "socket error", by: "agent" }),
    );
  }

  override alarm(): Promise<void> {
    return this.entry.hook("alarm", async () => {
      const rc = this.rc;
      rc.alarmAt = null;
      let now = this.now();
      const hostId = rc.store.getMeta("host_id");
      if (hostId && liveSockets(rc).length > 0 && ops.registryCheckDue(rc, now)) {
        await ops.refreshRegistration(rc, hostId, now);
        now = this.now();
      }
      // Most wakes of a connected host are its stale-connection check: the command sweeps run only when
      // the time they schedule the alarm for (nextDue: retries, expiries, deadlines, cancel acks, pruning) has come.
      const due = rc.store.commands.nextDue(rc.config.retentionDays * 86_400_000, rc.config.ackTimeoutMs);
      const commandsDue = due !== null && due <= now;
      if (commandsDue) expireDue(rc, now);
      // Close dead connections first, so a due retry is not spent on a socket nobody reads.
      closeStale(rc, now);
      if (commandsDue) {
        retryDue(rc, now);
        deadlinesDue(rc, now);
      }
      cancelsDue(rc, now);
      // Pruning may remove dead letters: an (empty) metrics row makes the host report its gauges again.
      if (commandsDue && rc.store.commands.prune(now, rc.config.retentionDays * 86_400_000) > 0) {
        rc.gaugeCounts = null;
        addMetrics(rc, now, () => {});
      }
      pump(rc, now);
    });
  }

  // ---- RPC, called by the Worker's routes and the JobCoordinator (types in contract.ts) ----

  enqueue(input: EnqueueInput) {
    return this.entry.rpc("enqueue", () => ops.enqueue(this.rc, input, this.now()));
  }

  getCommand(hostId: string, messageId: string) {
    return this.entry.rpc("getCommand", async () => (await this.ready(hostId)) ?? ops.getCommand(this.rc, hostId, messageId));
  }

  listCommands(hostId: string, opts: { states?: CommandState[] | undefined; limit: number; cursor?: string | undefined }) {
    return this.entry.rpc("listCommands", async () => (await this.ready(hostId)) ?? ops.listCommands(this.rc, hostId, opts));
  }

  cancel(hostId: string, messageId: string, opts?: CancelOptions): Promise<RpcResult<CancelResult>> {
    return this.entry.rpc(
      "cancel",
      async () => (await this.ready(hostId)) ?? ops.cancel(this.rc, hostId, messageId, opts ?? {}, this.now()),
    );
  }

  listDeadLetters(hostId: string, opts: { limit: number; cursor?: string | undefined }) {
    return this.entry.rpc("listDeadLetters", async () => (await this.ready(hostId)) ?? ops.listDeadLetters(this.rc, hostId, opts));
  }

  /** Null when this object serves `hostId` (asking the registry only the first time), else the refusal. */
  private async ready(hostId: string): Promise<RpcFailure | null> {
    const known = await ops.knownHost(this.rc, hostId, this.now());
    return known.ok ? null : known;
  }

  requeue(hostId: string, messageId: string, opts: RequeueRequest) {
    return this.entry.rpc("requeue", () => ops.requeue(this.rc, hostId, messageId, opts, this.now()));
  }

  /** Throws (rather than answering data) when a fault is injected, as a failed RPC would. */
  async revoke(hostId: string, revokedAt: string) {
    this.faults.check("relay.revoke");
    return this.entry.rpc("revoke", async () => (await this.ready(hostId)) ?? ops.revoke(this.rc, hostId, revokedAt, this.now()));
  }

  /** The host's tags changed in the registry; events carry them from now on. */
  setTags(hostId: string, tags: string[]) {
    return this.entry.rpc("setTags", () => ops.setTags(this.rc, hostId, tags));
  }

  stats() {
    return this.entry.run("stats", () => (this.rc.store.initialized ? ops.stats(this.rc) : { queue_depth: 0, connected: false }));
  }

  /** Invalid frames recorded from this host's agent, oldest first (bounded). */
  frameErrors() {
    return this.entry.run("frameErrors", () => (this.rc.store.initialized ? this.rc.store.frameErrors.list() : []));
  }
}
