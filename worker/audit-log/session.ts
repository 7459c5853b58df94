import type { Context } from "hono";
import { matchedRoutes } from "hono/route";
import type { Principal } from "../auth/jwt.ts";
import { sourceAddress, UNTRUSTED_SOURCE } from "../auth/source-address.ts";
import { type AuditConfig, auditConfig } from "../config.ts";
import type { Env } from "../env.ts";
import { ErrorCode, RelayError } from "../errors.ts";
import { log } from "../log.ts";
import { M } from "../metrics/catalogue.ts";
import { countWorker } from "../metrics/worker-recorder.ts";
import type { AppEnv } from "../routes/common.ts";
import { auditLog } from "../stubs.ts";
import { actionFor, targetFrom } from "./actions.ts";
import type { AuditActor, AuditInput, AuditTarget } from "./contract.ts";
import { boundedText, redactRequest } from "./redact.ts";
import { shardFor } from "./shard.ts";

/**
 * The Worker side of a REST request's audit record. A mutation gets a session when it arrives;
 * `auditGate` (called once the caller is authorized: requireRole, the agent routes) writes its
 * first stage to the shard in fail-closed mode, and the middleware completes it with the outcome.
 */
export class AuditSession {
  readonly id = crypto.randomUUID();
  readonly time = Date.now();
  readonly config: AuditConfig;
  readonly action: string;
  readonly target: AuditTarget;
  /** The gate was reached: the caller is authorized, the mutation may run. */
  authorized = false;
  /** The first stage is stored (fail-closed). */
  began = false;
  /**
   * The handler writes the record itself, in the same storage transaction as the change it records
   * (`auditInTransaction`): no first stage is written, and the middleware only records a request the
   * handler did not carry out (an error answer, which changed nothing).
   */
  inTransaction = false;
  /** The handler's transaction holds the record; nothing is left for the middleware. */
  recorded = false;
  /** Set by a handler that knows more than the path (an agent's certificate). */
  actorExtra: Partial<AuditActor> = {};

  constructor(config: AuditConfig, action: string, target: AuditTarget) {
    this.config = config;
    this.action = action;
    this.target = target;
  }

  #shard: number | undefined;

  /** Fixed on first use (the gate): ids a handler adds to the target later do not move the record. */
  get shard(): number {
    this.#shard ??= shardFor(this.target, this.config.shards);
    return this.#shard;
  }
}

/** The handler route's template (Hono `:param` form), or null when no route matched. */
export function routeTemplate(c: Context<AppEnv>): string | null {
  const routes = matchedRoutes(c);
  for (let i = routes.length - 1; i >= 0; i--) {
    const r = routes[i]!;
    if (r.method !== "ALL" && r.path !== "*" && r.path !== "/*") return r.path;
  }
  return null;
}

export function sessionFor(c: Context<AppEnv>): AuditSession {
  const template = routeTemplate(c) ?? c.req.path;
  return new AuditSession(auditConfig(c.env), actionFor(c.req.method, template), targetFrom(template, c.req.path));
}

export async function actorOf(c: Context<AppEnv>, extra: Partial<AuditActor> = {}): Promise<AuditActor> {
  const principal = c.get("principal") as Principal | undefined;
  const ip = await sourceAddress(c.req.raw, c.env);
  return {
    kind: principal ? "user" : (extra.kind ?? (c.req.path.startsWith("/agent/") ? "agent" : "user")),
    sub: principal?.sub ?? extra.sub ?? null,
    role: principal?.role ?? null,
    jti: principal?.jti ?? null,
    ip: ip === UNTRUSTED_SOURCE ? null : ip,
    user_agent: boundedText(c.req.header("user-agent")),
    ...(extra.cert_fingerprint ? { cert_fingerprint: extra.cert_fingerprint } : {}),
  };
}

/** The request body as the record keeps it: parsed (strict-body already read it), redacted, bounded. */
async function requestOf(c: Context<AppEnv>): Promise<unknown> {
  if (!["POST", "PUT", "PATCH"].includes(c.req.method)) return null;
  try {
    const text = await c.req.text();
    return text === "" ? null : redactRequest(JSON.parse(text));
  } catch {
    return { unreadable: true };
  }
}

export async function inputOf(c: Context<AppEnv>, s: AuditSession, outcome: AuditInput["outcome"]): Promise<AuditInput> {
  return {
    action: s.action,
    time: s.time,
    actor: await actorOf(c, s.actorExtra),
    target: s.target,
    request: await requestOf(c),
    outcome,
    request_id: c.get("requestId") ?? null,
  };
}

export interface AuditGateOptions {
  /**
   * The handler records the mutation in the same Durable Object transaction as the change, through
   * that object's audit outbox (see `auditInTransaction`), so there is no first stage to write: the
   * change and its record commit together or not at all, which is what fail-closed asks. Default false.
   */
  inTransaction?: boolean;
}

/**
 * For a handler whose route passed `{ inTransaction: true }` to the gate: the complete record of this
 * request, assuming it succeeds with `status`, to be written by the Durable Object in the transaction
 * that makes the change (and delivered from its outbox to the shard). Call `auditRecorded` once that
 * object answered; until then the middleware still records the request if it fails. Undefined when
 * the request is not audited.
 */
export async function auditInTransaction(c: Context<AppEnv>, status: number): Promise<AuditInput | undefined> {
  const s = c.get("audit");
  if (!s?.inTransaction) return undefined;
  return inputOf(c, s, { status, code: null });
}

/** The Durable Object stored the record from `auditInTransaction` with its change. */
export function auditRecorded(c: Context<AppEnv>): void {
  const s = c.get("audit");
  if (s?.inTransaction) s.recorded = true;
}

/**
 * Called once the caller may carry out the mutation. Fail-closed: stores the record's first stage
 * (one small RPC) and refuses with 503 ERR_AUDIT_UNAVAILABLE if that fails, before the handler
 * runs, so nothing takes effect unrecorded. Best-effort: nothing here; the record is written after.
 */
export async function auditGate(c: Context<AppEnv>, extra?: Partial<AuditActor>, opts: AuditGateOptions = {}): Promise<void> {
  const s = c.get("audit");
  if (!s || s.authorized) return;
  s.authorized = true;
  if (extra) s.actorExtra = { ...s.actorExtra, ...extra };
  if (opts.inTransaction) {
    s.inTransaction = true;
    return;
  }
  if (s.config.mode !== "fail-closed") return;
  try {
    const input = await inputOf(c, s, { status: null, code: "pending" });
    await auditLog(c.env, s.shard).begin(s.shard, s.id, input);
    s.began = true;
  } catch (err) {
    countAuditWriteError(c.env, "begin", err);
    throw new RelayError(ErrorCode.AUDIT_UNAVAILABLE, "the audit log could not record this request; nothing was changed: retry");
  }
}

/** A failed audit write: counted in fleet_relay_audit_write_errors_total and logged as one JSON line. */
export function countAuditWriteError(_env: Env, stage: string, err: unknown): void {
  countWorker(M.AUDIT_WRITE_ERRORS);
  log.error("audit write failed", { metric: "fleet_relay_audit_write_errors_total", stage, error: String(err) });
}
