import type { CommandAccepted, CommandState, CommandSummary, CommandView, DeadLetter } from "../../schemas/index.ts";
import { CloseCode, Defaults } from "../../schemas/index.ts";
import { Cursor, type Page } from "../cursor.ts";
import { ErrorCode, type RpcResult, rpcError } from "../errors.ts";
import { hostRegistration } from "../registry.ts";
import { cancelOutcome, decide } from "./command-states.ts";
import { factsOf } from "./command-store.ts";
import { closeAgent } from "./connection.ts";
import { liveSockets, type RelayContext, readySocket } from "./context.ts";
import type { CancelOptions, CancelResult, EnqueueInput, HostRegistration, HostStats } from "./contract.ts";
import { pump, sendCancel } from "./delivery.ts";
import { apply, executionDeadline } from "./lifecycle.ts";
import { recordAudit, recordTransition } from "./notify.ts";

/**
 * Makes sure this object belongs to a registered, non-revoked host. The registry (D1) is the
 * authority: it is asked on first use, and again when the last look is older than `registryCheckMs` (config),
 * so a revocation whose call to this object failed still takes effect within that bound. A caller that
 * has just read the host's row (`given`) spares this object the read.
 */
export async function ensureHost(rc: RelayContext, hostId: string, now: number, given?: HostRegistration): Promise<RpcResult<null>> {
  const known = await knownHost(rc, hostId, now, given);
  if (!known.ok) return known;
  if (registryCheckDue(rc, now)) await refreshRegistration(rc, hostId, now, given);
  const revoked = rc.store.getMeta("revoked_at");
  if (revoked) return rpcError(ErrorCode.HOST_REVOKED, `host ${hostId} was revoked at ${revoked}`);
  return { ok: true, value: null };
}

/**
 * This object serves `hostId`. The registry is asked only when the object has never served a host;
 * an unknown id is refused before anything is written, so made-up ids create no storage.
 */
export async function knownHost(rc: RelayContext, hostId: string, now: number, given?: HostRegistration): Promise<RpcResult<null>> {
  const known = rc.store.getMeta("host_id");
  if (known === hostId) return { ok: true, value: null };
  if (known !== null) return rpcError(ErrorCode.INTERNAL, "host relay addressed with a different host id");
  const reg = given ?? (await hostRegistration(rc.env.DB, hostId));
  if (!reg) return rpcError(ErrorCode.HOST_NOT_FOUND, `host ${hostId} is not registered`);
  if (!rc.store.initialized) rc.store.initialize();
  if (rc.store.getMeta("host_id") === null) {
    rc.store.setMeta("host_id", hostId);
    rc.store.setMeta("tags", JSON.stringify(reg.tags));
    rc.store.setMeta("registry_checked_at", String(now));
    if (reg.revoked_at) revokeHere(rc, hostId, reg.revoked_at, now);
  }
  return { ok: true, value: null };
}

export function registryCheckDue(rc: RelayContext, now: number): boolean {
  if (rc.store.getMeta("revoked_at")) return false;
  const at = Number(rc.store.getMeta("registry_checked_at") ?? 0);
  return now - at >= rc.config.registryCheckMs;
}

/** When the alarm must re-read the registry: only while an agent is connected (it could receive commands). */
export function nextRegistryCheck(rc: RelayContext): number | null {
  const checked = rc.store.getMeta("registry_checked_at");
  if (checked === null || rc.store.getMeta("revoked_at")) return null;
  return Number(checked) + rc.config.registryCheckMs;
}

/** Reads the host's registration and applies a revocation found there. */
export async function refreshRegistration(
  rc: RelayContext,
  hostId: string,
  now: number,
  given?: HostRegistration,
): Promise<"ok" | "unknown" | "revoked"> {
  const reg = given ?? (await hostRegistration(rc.env.DB, hostId));
  if (!reg) return "unknown";
  rc.store.setMeta("registry_checked_at", String(now));
  if (reg.revoked_at) {
    revokeHere(rc, hostId, reg.revoked_at, now);
    return "revoked";
  }
  return "ok";
}

export async function enqueue(rc: RelayContext, input: EnqueueInput, now: number): Promise<RpcResult<CommandAccepted>> {
  const host = await ensureHost(rc, input.host_id, now, input.registration);
  if (!host.ok) return host;
  if (input.idempotency_key) {
    const existing = rc.store.commands.byIdempotencyKey(input.idempotency_key);
    if (existing) {
      if (existing.request_hash !== (input.request_hash ?? null)) {
        return rpcError(ErrorCode.IDEMPOTENCY_CONFLICT, "this Idempotency-Key was used for a different request");
      }
      auditAccepted(rc, input, existing.message_id, now);
      return { ok: true, value: { message_id: existing.message_id, status: existing.state } };
    }
  }
  const expiresAt = input.expires_at ? Date.parse(input.expires_at) : now + (input.expires_in ?? Defaults.EXPIRES_IN_S) * 1000;
  if (!(expiresAt > now)) {
    return rpcError(ErrorCode.DEADLINE_IN_PAST, `expires_at ${new Date(expiresAt).toISOString()} is not in the future`);
  }
  const { row, transition } = rc.store.commands.insert(
    {
      message_id: crypto.randomUUID(),
      command_type: input.command_type,
      parameters: input.parameters,
      timeout_s: input.timeout ?? Defaults.TIMEOUT_S,
      max_attempts: input.max_attempts ?? Defaults.MAX_ATTEMPTS,
      expires_at: expiresAt,
      idempotency_key: input.idempotency_key ?? null,
      request_hash: input.request_hash ?? null,
      job_id: input.job_id ?? null,
    },
    now,
  );
  recordTransition(rc, row, transition, now);
  auditAccepted(rc, input, row.message_id, now);
  pump(rc, now);
  return { ok: true, value: { message_id: row.message_id, status: "queued" } };
}

/** The caller's audit record of an accepted enqueue, in the same synchronous step (one transaction) as the command. */
function auditAccepted(rc: RelayContext, input: EnqueueInput, messageId: string, now: number): void {
  if (input.audit) recordAudit(rc, { ...input.audit, target: { ...input.audit.target, message_id: messageId } }, now);
}

function belongs(rc: RelayContext, hostId: string): boolean {
  return rc.store.getMeta("host_id") === hostId;
}

export function getCommand(rc: RelayContext, hostId: string, messageId: string): RpcResult<CommandView> {
  const row = belongs(rc, hostId) ? rc.store.commands.get(messageId) : null;
  if (!row) return rpcError(ErrorCode.COMMAND_NOT_FOUND, `no command ${messageId} on host ${hostId}`);
  return { ok: true, value: rc.store.views.view(hostId, row) };
}

export function listCommands(
  rc: RelayContext,
  hostId: string,
  opts: { states?: CommandState[] | undefined; limit: number; cursor?: string | undefined },
): RpcResult<Page<CommandSummary>> {
  const before = Cursor.decodeNumber("c", opts.cursor);
  if (before === "invalid") return Cursor.rpcInvalid();
  if (!belongs(rc, hostId)) return { ok: true, value: { items: [], next_cursor: null } };
  const page = rc.store.views.list(hostId, opts.states, opts.limit, before);
  return { ok: true, value: { items: page.items, next_cursor: Cursor.encode("c", page.lastSeq) } };
}

/**
 * Cancels a command. One never sent is cancelled at once. One the agent may hold becomes
 * `cancelling`: the cancel frame goes now (or on the next connection) and the agent's response
 * decides how it ends. A final command cannot be cancelled.
 */
export function cancel(rc: RelayContext, hostId: string, messageId: string, opts: CancelOptions, now: number): RpcResult<CancelResult> {
  const found = getCommand(rc, hostId, messageId);
  if (!found.ok) return found;
  const row = rc.store.commands.get(messageId)!;
  const decision = decide(factsOf(row), { kind: "cancel" });
  const outcome = cancelOutcome(decision, row.state);
  if (outcome === "refused") {
    return rpcError(ErrorCode.COMMAND_NOT_CANCELLABLE, `command ${messageId} cannot be cancelled: it is ${row.state}`);
  }
  if (opts.unsentOnly && outcome !== "cancelled") {
    return rpcError(ErrorCode.COMMAND_NOT_CANCELLABLE, `command ${messageId} was sent to the agent; it runs to its end`);
  }
  if (decision.move) {
    // The wait for the agent's answer: at least as long as the command could still run.
    const deadline = Math.max(row.deadline_at ?? 0, executionDeadline(rc, row, now));
    apply(rc, row, { kind: "cancel" }, now, { deadline_at: deadline });
    const ws = readySocket(rc);
    if (row.state === "cancelling" && ws) sendCancel(rc, ws, row, now);
  }
  return { ok: true, value: { outcome, command: rc.store.views.view(hostId, row) } };
}

export function listDeadLetters(
  rc: RelayContext,
  hostId: string,
  opts: { limit: number; cursor?: string | undefined },
): RpcResult<Page<DeadLetter>> {
  const before = Cursor.decodeNumber("c", opts.cursor);
  if (before === "invalid") return Cursor.rpcInvalid();
  if (!belongs(rc, hostId)) return { ok: true, value: { items: [], next_cursor: null } };
  const page = rc.store.deadLetters.list(opts.limit, before);
  return { ok: true, value: { items: page.items, next_cursor: Cursor.encode("c", page.lastSeq) } };
}

/**
 * Puts a dead-lettered command back in the queue under its original message_id, so an agent
 * that did receive it earlier answers from its journal instead of running it twice.
 */
export async function requeue(
  rc: RelayContext,
  hostId: string,
  messageId: string,
  opts: { expires_at?: string | undefined; expires_in?: number | undefined; max_attempts?: number | undefined },
  now: number,
): Promise<RpcResult<CommandAccepted>> {
  const host = await ensureHost(rc, hostId, now);
  if (!host.ok) return host;
  const row = rc.store.commands.get(messageId);
  if (!row) return rpcError(ErrorCode.COMMAND_NOT_FOUND, `no command ${messageId} on host ${hostId}`);
  if (row.state !== "dead_lettered") {
    return rpcError(ErrorCode.COMMAND_NOT_DEAD_LETTERED, `command ${messageId} is ${row.state}, not dead_lettered`);
  }
  const expiresAt = opts.expires_at
    ? Date.parse(opts.expires_at)
    : opts.expires_in !== undefined
      ? now + opts.expires_in * 1000
      : row.expires_at;
  if (!(expiresAt > now)) {
    return rpcError(ErrorCode.COMMAND_DEADLINE_PASSED, "the command's delivery deadline has passed; give a new expires_at or expires_in");
  }
  rc.store.commands.setLimits(row, expiresAt, opts.max_attempts ?? row.max_attempts);
  apply(rc, row, { kind: "requeue" }, now);
  pump(rc, now);
  return { ok: true, value: { message_id: messageId, status: "queued" } };
}

/** Revocation, as told by the Worker after it wrote the registry. */
export function revoke(rc: RelayContext, hostId: string, revokedAt: string, now: number): RpcResult<{ cancelled: number }> {
  return { ok: true, value: { cancelled: revokeHere(rc, hostId, revokedAt, now) } };
}

/** Refuse the host from now on, disconnect it, and cancel what it never received. Idempotent. */
function revokeHere(rc: RelayContext, _hostId: string, revokedAt: string, now: number): number {
  if (!rc.store.getMeta("revoked_at")) rc.store.setMeta("revoked_at", revokedAt);
  for (const ws of liveSockets(rc)) closeAgent(rc, ws, CloseCode.REVOKED, "host certificate revoked", now);
  let cancelled = 0;
  for (const row of rc.store.commands.queued()) {
    if (apply(rc, row, { kind: "revoke" }, now)) cancelled++;
  }
  return cancelled;
}

export function stats(rc: RelayContext): HostStats {
  return { queue_depth: rc.store.commands.queueDepth(), connected: liveSockets(rc).some((ws) => ws.readyState === WebSocket.OPEN) };
}

export function setTags(rc: RelayContext, hostId: string, tags: string[]): RpcResult<null> {
  if (!rc.store.initialized) return { ok: true, value: null };
  const known = rc.store.getMeta("host_id");
  if (known !== null && known !== hostId) return rpcError(ErrorCode.INTERNAL, "host relay addressed with a different host id");
  // Before the object knows its host it reads tags from the registry on first use.
  if (known !== null) rc.store.setMeta("tags", JSON.stringify([...tags].sort()));
  return { ok: true, value: null };
}
