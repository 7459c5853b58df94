import type { Context, MiddlewareHandler } from "hono";
import { auditConfig } from "../config.ts";
import { PROBLEM_CONTENT_TYPE } from "../errors.ts";
import type { AppEnv } from "../routes/common.ts";
import { auditLog } from "../stubs.ts";
import { isMutation, targetFrom } from "./actions.ts";
import type { AuditInput, AuditTarget } from "./contract.ts";
import { boundedText } from "./redact.ts";
import { type AuditSession, actorOf, countAuditWriteError, inputOf, routeTemplate, sessionFor } from "./session.ts";
import { shardFor } from "./shard.ts";

/**
 * Records REST mutations and refused requests. Mutations (POST/PUT/PATCH/DELETE under /api and
 * /agent) get a session; once authorized, `auditGate` writes the first stage (fail-closed), and
 * here, after the handler, the outcome completes it (off the response path, via waitUntil). A route
 * whose Durable Object writes the record in the change's own transaction (`auditInTransaction`, e.g.
 * queuing a command) skips both: only its failures, which changed nothing, are recorded here.
 * A 401/403 that never reached a gate is a refusal: recorded best-effort and rate-limited per
 * isolate, so a flood of bad tokens costs at most a bounded number of audit writes per second.
 * Mutations refused before authentication for another reason (malformed body, unknown route)
 * changed nothing and are not recorded.
 */
export const auditTrail: MiddlewareHandler<AppEnv> = async (c, next) => {
  const session = isMutation(c.req.method, c.req.path) ? sessionFor(c) : undefined;
  c.set("audit", session);
  await next();
  const status = c.res.status;
  if (session?.authorized) {
    if (session.recorded) return;
    if (session.began || session.inTransaction || session.config.mode === "best-effort") {
      background(c, finish(c, session, status, await outcomeOf(c, status)));
    }
    return;
  }
  if (status === 401 || status === 403) {
    background(c, refusal(c, status, await outcomeOf(c, status)));
    return;
  }
  if (session && status < 400) {
    // A mutation route that never called the gate: it ran unrecorded beforehand. Record it now.
    c.get("log")?.error("mutation ran without an audit gate", { method: c.req.method, path: c.req.path });
    background(c, finish(c, session, status, await outcomeOf(c, status)));
  }
};

type Outcome = { code: string | null; created: AuditTarget };

function background(c: Context<AppEnv>, work: Promise<void>): void {
  try {
    c.executionCtx.waitUntil(work);
  } catch {
    // No execution context (a direct app.request in a test): the promise runs on its own.
    void work;
  }
}

/**
 * The response's error code (problem+json `code`), and ids it created (message_id, job_id, host_id).
 * Read from a copy before the response goes out; only small JSON bodies are looked at.
 */
async function outcomeOf(c: Context<AppEnv>, status: number): Promise<Outcome> {
  const type = c.res.headers.get("content-type") ?? "";
  const length = Number(c.res.headers.get("content-length") ?? "0");
  if (!type.startsWith(PROBLEM_CONTENT_TYPE) && !type.startsWith("application/json")) return { code: null, created: {} };
  if (length > 64 * 1024) return { code: null, created: {} };
  try {
    const body = (await c.res.clone().json()) as Record<string, unknown>;
    if (status >= 400) return { code: typeof body.code === "string" ? body.code.slice(0, 64) : null, created: {} };
    const created: AuditTarget = {};
    for (const key of ["host_id", "message_id", "job_id", "rule_id", "receiver_id"] as const) {
      const v = body[key] ?? (body.command as Record<string, unknown> | undefined)?.[key];
      if (typeof v === "string") created[key] = v.slice(0, 128);
    }
    return { code: null, created };
  } catch {
    return { code: null, created: {} };
  }
}

async function finish(c: Context<AppEnv>, s: AuditSession, status: number, { code, created }: Outcome): Promise<void> {
  try {
    // Ids the response names complete the target (a new command's message_id); the shard stays the gate's.
    Object.assign(s.target, { ...created, ...s.target });
    const outcome = { status, code };
    const stub = auditLog(c.env, s.shard);
    if (s.began) {
      await stub.complete(s.shard, s.id, { actor: await actorOf(c, s.actorExtra), outcome, target: s.target });
    } else {
      await stub.append(s.shard, [{ ...(await inputOf(c, s, outcome)), id: s.id }]);
    }
  } catch (err) {
    // Fail-closed: the pending entry is chained by the shard's alarm with outcome "unknown".
    countAuditWriteError(c.env, s.began ? "complete" : "append", err);
  }
}

/** Token bucket per isolate for refusals; what it drops is counted into the next recorded one. */
const refusals = { tokens: Number.NaN, at: 0, suppressed: 0 };

export function takeRefusalToken(ratePerS: number, burst: number, now: number): boolean {
  if (Number.isNaN(refusals.tokens)) refusals.tokens = burst;
  refusals.tokens = Math.min(burst, refusals.tokens + ((now - refusals.at) / 1000) * ratePerS);
  refusals.at = now;
  if (refusals.tokens < 1) {
    refusals.suppressed += 1;
    return false;
  }
  refusals.tokens -= 1;
  return true;
}

async function refusal(c: Context<AppEnv>, status: number, { code }: Outcome): Promise<void> {
  const config = auditConfig(c.env);
  if (!takeRefusalToken(config.refusalsPerS, config.refusalBurst, Date.now())) return;
  const suppressed = refusals.suppressed;
  refusals.suppressed = 0;
  try {
    const template = routeTemplate(c);
    const target = template ? targetFrom(template, c.req.path) : {};
    const input: AuditInput = {
      action: "auth.refused",
      time: Date.now(),
      actor: await actorOf(c),
      target,
      request: { method: c.req.method, path: boundedText(c.req.path, 512), ...(suppressed > 0 ? { suppressed_before: suppressed } : {}) },
      outcome: { status, code },
      request_id: c.get("requestId") ?? null,
    };
    const shard = shardFor(target, config.shards);
    await auditLog(c.env, shard).append(shard, [{ ...input, id: crypto.randomUUID() }]);
  } catch (err) {
    countAuditWriteError(c.env, "refusal", err);
  }
}
