import { AUDIT_SCHEMA_VERSION, type AuditCheckpoint, type AuditRecord, nowRfc3339 } from "../../schemas/index.ts";
import { log } from "../log.ts";
import { canonicalJson, recordHash } from "./canonical.ts";
import type { AuditContext } from "./context.ts";
import type { AuditInput } from "./contract.ts";
import { importAuditKey, keyId, signObject } from "./signing.ts";

/**
 * The shard's hash chain. Every write runs under the context's lock: hashes are computed first
 * (asynchronously), then every row of the step is written in one synchronous block, so the stored
 * chain is never half-updated and never forks.
 */

/** An input stamped with its record id (the pending entry's id when it had one). */
export interface Stamped extends AuditInput {
  id: string;
}

/** Pending entries the alarm chains per round; more wait for the next. */
const PENDING_BATCH = 500;

export function signingKeys(ac: AuditContext): Promise<(Awaited<ReturnType<typeof importAuditKey>> & { keyId: string }) | null> {
  ac.keys ??= (async () => {
    const pem = ac.env.AUDIT_SIGNING_KEY;
    if (!pem) return null;
    const keys = await importAuditKey(pem);
    return { ...keys, keyId: await keyId(keys.publicKey) };
  })().catch((err: unknown) => {
    ac.keyBroken = true;
    log.error("AUDIT_SIGNING_KEY is not a PKCS#8 P-256 key; checkpoints are not signed", { error: String(err) });
    return null;
  });
  return ac.keys;
}

/** The records for `inputs`, continuing the head; nothing is stored yet. */
async function link(ac: AuditContext, shard: number, inputs: Stamped[]): Promise<{ record: AuditRecord; body: string; at: number }[]> {
  let { seq, hash } = ac.store.head();
  const out: { record: AuditRecord; body: string; at: number }[] = [];
  for (const input of inputs) {
    seq += 1;
    const unhashed = {
      type: "record" as const,
      id: input.id,
      seq,
      shard,
      time: nowRfc3339(input.time),
      actor: input.actor,
      action: input.action,
      target: input.target,
      request: input.request ?? null,
      outcome: input.outcome,
      request_id: input.request_id,
      schema_version: AUDIT_SCHEMA_VERSION,
      prev_hash: hash,
    };
    // Through JSON once, so what is hashed is exactly what a reader parses back (no undefined, no -0).
    const plain = JSON.parse(JSON.stringify(unhashed)) as Omit<AuditRecord, "hash">;
    hash = await recordHash(plain);
    const record = { ...plain, hash } as AuditRecord;
    out.push({ record, body: canonicalJson(record), at: input.time });
  }
  return out;
}

/**
 * Chains `inputs` in order. `beforeWrite` runs in the same synchronous block as the inserts
 * (it removes pending entries, marks sources), and returns false to write nothing.
 */
export async function chain(ac: AuditContext, shard: number, inputs: Stamped[], beforeWrite?: () => boolean): Promise<number> {
  if (inputs.length === 0) return 0;
  const linked = await link(ac, shard, inputs);
  if (beforeWrite && !beforeWrite()) return 0;
  const now = ac.clock.now();
  for (const { record, body, at } of linked) ac.store.insert(record, body, at, now);
  if (ac.store.head().seq - ac.store.lastCheckpoint().seq >= ac.config.checkpointEvery) await checkpoint(ac, shard, "interval");
  return linked.length;
}

/** A signed checkpoint at the head (or `at`), stored unless it closes an export. Null without a key. */
export async function checkpoint(
  ac: AuditContext,
  shard: number,
  kind: AuditCheckpoint["kind"],
  opts: { seq?: number; hash?: string; prunedThrough?: number; exportId?: string; shards?: number } = {},
): Promise<AuditCheckpoint | null> {
  const keys = await signingKeys(ac);
  if (!keys) {
    log.warn("audit checkpoint skipped: AUDIT_SIGNING_KEY is not set", { shard, kind });
    return null;
  }
  const head = ac.store.head();
  const seq = opts.seq ?? head.seq;
  const prunedThrough = opts.prunedThrough ?? ac.store.prunedThrough();
  const now = ac.clock.now();
  const unsigned = {
    type: "checkpoint" as const,
    kind,
    shard,
    seq,
    hash: opts.hash ?? head.hash,
    count: Math.max(0, seq - prunedThrough),
    pruned_through: prunedThrough,
    time: nowRfc3339(now),
    key_id: keys.keyId,
    ...(opts.exportId !== undefined ? { export_id: opts.exportId, shards: opts.shards } : {}),
  };
  const cp: AuditCheckpoint = { ...unsigned, signature: await signObject(keys.privateKey, unsigned) };
  if (kind !== "export") ac.store.addCheckpoint(seq, kind, now, JSON.stringify(cp));
  return cp;
}

/** Chains pending entries older than the timeout with outcome "unknown": their completion never came. */
export async function chainStalePending(ac: AuditContext, shard: number, now: number): Promise<number> {
  const due = ac.store.duePending(now - ac.config.pendingTimeoutMs, PENDING_BATCH);
  if (due.length === 0) return 0;
  const inputs = due.map(({ id, body }) => {
    const input = JSON.parse(body) as AuditInput;
    return { ...input, id, outcome: { status: null, code: "unknown", detail: "the request's outcome never reached the audit log" } };
  });
  return chain(ac, shard, inputs, () => {
    for (const { id } of due) ac.store.takePending(id);
    return true;
  });
}

/**
 * Retention: removes the prefix of the chain stored before the cutoff, after a signed prune
 * checkpoint at its last seq, so what remains starts from a signed hash. Without a signing key
 * nothing is pruned (the rest would not be verifiable).
 */
export async function pruneExpired(ac: AuditContext, shard: number, now: number): Promise<number> {
  const cutoff = now - ac.config.retentionDays * 86_400_000;
  const through = ac.store.prunableThrough(cutoff);
  if (through <= ac.store.prunedThrough()) return 0;
  const hash = ac.store.hashAt(through);
  if (hash === null) return 0;
  const cp = await checkpoint(ac, shard, "prune", { seq: through, hash, prunedThrough: through });
  if (!cp) return 0;
  return ac.store.prune(through, now);
}

/** When the alarm must next run: a pending timeout, an interval checkpoint, or retention. */
export function nextDue(ac: AuditContext): number | null {
  const candidates: number[] = [];
  const pending = ac.store.oldestPendingAt();
  if (pending !== null) candidates.push(pending + ac.config.pendingTimeoutMs);
  // Checkpoints and pruning need the key; without one the alarm has nothing to wait for there.
  if (ac.env.AUDIT_SIGNING_KEY && !ac.keyBroken) {
    const cp = ac.store.lastCheckpoint();
    if (ac.store.head().seq > cp.seq) candidates.push(cp.at + ac.config.checkpointIntervalMs);
    const oldest = ac.store.oldestStoredAt();
    if (oldest !== null) candidates.push(oldest + ac.config.retentionDays * 86_400_000 + 1);
  }
  return candidates.length ? Math.min(...candidates) : null;
}

export function scheduleAlarm(ac: AuditContext): void {
  const next = nextDue(ac);
  if (next === null) {
    if (ac.alarmAt !== null) void ac.ctx.storage.deleteAlarm();
    ac.alarmAt = null;
    return;
  }
  if (ac.alarmAt === next) return;
  void ac.ctx.storage.setAlarm(Math.max(next, ac.clock.now()));
  ac.alarmAt = next;
}
