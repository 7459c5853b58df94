import type { CommandAccepted, CommandState, CommandSummary, CommandView, DeadLetter } from "../../schemas/index.ts";
import { CloseCode, Defaults } from "../../schemas/index.ts";
import { ErrorCode, type RpcResult, rpcError } from "../errors.ts";
import { hostRegistration } from "../registry.ts";
import { type RelayContext, liveSockets } from "./context.ts";
import { closeAgent } from "./connection.ts";
import { pump, scheduleAlarm } from "./delivery.ts";

/** What the Worker hands a HostRelay to queue one command (already validated at the REST boundary). */
export interface EnqueueInput {
  host_id: string;
  command_type: string;
  parameters: unknown;
  timeout?: number | undefined;
  expires_at?: string | undefined;
  expires_in?: number | undefined;
  max_attempts?: number | undefined;
  idempotency_key?: string | undefined;
  /** Hash of the request, so a reused idempotency key with a different body is refused. */
  request_hash?: string | undefined;
  /** The job this command belongs to; its progress is reported to that job's coordinator. */
  job_id?: string | undefined;
}

export interface Page<T> {
  items: T[];
  next_cursor: string | null;
}

export interface HostStats {
  queue_depth: number;
  connected: boolean;
}

/**
 * Makes sure this object belongs to a registered host. The registry (D1) is asked once;
 * after that the object's own storage answers, including revocation.
 */
export async function ensureHost(rc: RelayContext, hostId: string): Promise<RpcResult<null>> {
  const known = rc.store.getMeta("host_id");
  if (known === null) {
    const reg = await hostRegistration(rc.env.DB, hostId);
    if (!reg) return rpcError(ErrorCode.HOST_NOT_FOUND, `host ${hostId} is not registered`);
    // Re-check after the await: another request may have registered it meanwhile.
    if (rc.store.getMeta("host_id") === null) {
      rc.store.setMeta("host_id", hostId);
      rc.store.setMeta("tags", JSON.stringify(reg.tags));
      if (reg.revoked_at) rc.store.setMeta("revoked_at", reg.revoked_at);
    }
  } else if (known !== hostId) {
    return rpcError(ErrorCode.INTERNAL, "host relay addressed with a different host id");
  }
  const revoked = rc.store.getMeta("revoked_at");
  if (revoked) return rpcError(ErrorCode.HOST_REVOKED, `host ${hostId} was revoked at ${revoked}`);
  return { ok: true, value: null };
}

export async function enqueue(rc: RelayContext, input: EnqueueInput, now: number): Promise<RpcResult<CommandAccepted>> {
  const host = await ensureHost(rc, input.host_id);
  if (!host.ok) return host;
  if (input.idempotency_key) {
    const existing = rc.store.getByIdempotencyKey(input.idempotency_key);
    if (existing) {
      if (existing.request_hash !== (input.request_hash ?? null)) {
        return rpcError(ErrorCode.IDEMPOTENCY_CONFLICT, "this Idempotency-Key was used for a different request");
      }
      return { ok: true, value: { message_id: existing.message_id, status: existing.state } };
    }
  }
  const expiresAt = input.expires_at
    ? Date.parse(input.expires_at)
    : now + (input.expires_in ?? Defaults.EXPIRES_IN_S) * 1000;
  if (!(expiresAt > now)) {
    return rpcError(ErrorCode.DEADLINE_IN_PAST, `expires_at ${new Date(expiresAt).toISOString()} is not in the future`);
  }
  const row = rc.store.insertCommand(
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
  pump(rc, now);
  scheduleAlarm(rc);
  return { ok: true, value: { message_id: row.message_id, status: "queued" } };
}

function known(rc: RelayContext, hostId: string): RpcResult<null> {
  if (rc.store.getMeta("host_id") !== hostId) return rpcError(ErrorCode.HOST_NOT_FOUND, `host ${hostId} has no commands`);
  return { ok: true, value: null };
}

export function getCommand(rc: RelayContext, hostId: string, messageId: string): RpcResult<CommandView> {
  const row = rc.store.getMeta("host_id") === hostId ? rc.store.getCommand(messageId) : null;
  if (!row) return rpcError(ErrorCode.COMMAND_NOT_FOUND, `no command ${messageId} on host ${hostId}`);
  return { ok: true, value: rc.store.view(hostId, row) };
}

export function decodeCursor(cursor: string | undefined): number | null | "invalid" {
  if (cursor === undefined) return null;
  const m = /^c(\d{1,15})$/.exec(cursor);
  return m ? Number(m[1]) : "invalid";
}

const encodeCursor = (seq: number | null): string | null => (seq === null ? null : `c${seq}`);

export function listCommands(
  rc: RelayContext,
  hostId: string,
  opts: { states?: CommandState[] | undefined; limit: number; cursor?: string | undefined },
): RpcResult<Page<CommandSummary>> {
  const before = decodeCursor(opts.cursor);
  if (before === "invalid") return rpcError(ErrorCode.VALIDATION, "cursor: not a cursor this API returned");
  if (!known(rc, hostId).ok) return { ok: true, value: { items: [], next_cursor: null } };
  const page = rc.store.listCommands(hostId, opts.states, opts.limit, before);
  return { ok: true, value: { items: page.items, next_cursor: encodeCursor(page.lastSeq) } };
}

/** Cancels a command the agent has not acknowledged. */
export function cancel(rc: RelayContext, hostId: string, messageId: string, now: number): RpcResult<CommandView> {
  const found = getCommand(rc, hostId, messageId);
  if (!found.ok) return found;
  const row = rc.store.getCommand(messageId)!;
  if (row.state !== "queued" || row.in_flight) {
    const why = row.in_flight ? "it is on its way to the agent" : `it is ${row.state}`;
    return rpcError(ErrorCode.COMMAND_NOT_CANCELLABLE, `command ${messageId} cannot be cancelled: ${why}`);
  }
  rc.store.transition(row, "cancelled", now, "cancelled through the API");
  scheduleAlarm(rc);
  return { ok: true, value: rc.store.view(hostId, row) };
}

export function listDeadLetters(
  rc: RelayContext,
  hostId: string,
  opts: { limit: number; cursor?: string | undefined },
): RpcResult<Page<DeadLetter>> {
  const before = decodeCursor(opts.cursor);
  if (before === "invalid") return rpcError(ErrorCode.VALIDATION, "cursor: not a cursor this API returned");
  if (!known(rc, hostId).ok) return { ok: true, value: { items: [], next_cursor: null } };
  const page = rc.store.listDeadLetters(opts.limit, before);
  return { ok: true, value: { items: page.items, next_cursor: encodeCursor(page.lastSeq) } };
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
  const host = await ensureHost(rc, hostId);
  if (!host.ok) return host;
  const row = rc.store.getCommand(messageId);
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
  rc.store.requeue(row, now, expiresAt, opts.max_attempts ?? row.max_attempts);
  pump(rc, now);
  scheduleAlarm(rc);
  return { ok: true, value: { message_id: messageId, status: "queued" } };
}

/** Revocation: refuse the host from now on, disconnect it, and cancel what it will never receive. */
export function revoke(rc: RelayContext, hostId: string, revokedAt: string, now: number): RpcResult<{ cancelled: number }> {
  rc.store.setMeta("host_id", rc.store.getMeta("host_id") ?? hostId);
  if (!rc.store.getMeta("revoked_at")) rc.store.setMeta("revoked_at", revokedAt);
  for (const ws of liveSockets(rc)) closeAgent(rc, ws, CloseCode.REVOKED, "host certificate revoked", now);
  let cancelled = 0;
  for (const row of rc.store.queuedCommands()) {
    if (rc.store.transition(row, "cancelled", now, "host revoked")) cancelled++;
  }
  scheduleAlarm(rc);
  return { ok: true, value: { cancelled } };
}

export function stats(rc: RelayContext): HostStats {
  return { queue_depth: rc.store.queueDepth(), connected: liveSockets(rc).some((ws) => ws.readyState === WebSocket.OPEN) };
}

export function setTags(rc: RelayContext, hostId: string, tags: string[]): RpcResult<null> {
  const known = rc.store.getMeta("host_id");
  if (known !== null && known !== hostId) return rpcError(ErrorCode.INTERNAL, "host relay addressed with a different host id");
  // Before the object knows its host it reads tags from the registry on first use.
  if (known !== null) rc.store.setMeta("tags", JSON.stringify([...tags].sort()));
  return { ok: true, value: null };
}
