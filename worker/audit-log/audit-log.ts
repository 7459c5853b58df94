import { DurableObject } from "cloudflare:workers";
import type { AuditCheckpoint } from "../../schemas/index.ts";
import { systemClock } from "../clock.ts";
import { auditConfig } from "../config.ts";
import { DurableEntry } from "../durable-entry.ts";
import type { Env } from "../env.ts";
import { ErrorCode, RelayError } from "../errors.ts";
import { log } from "../log.ts";
import { TestFaults } from "../test-faults.ts";
import { chain, chainStalePending, checkpoint, pruneExpired, type Stamped, scheduleAlarm, signingKeys } from "./chain.ts";
import { type AuditContext, withLock } from "./context.ts";
import type { AuditInput } from "./contract.ts";
import { publicKeyPem } from "./signing.ts";
import { AuditLogStorage, type RecordFilter, type StoredRecord } from "./storage.ts";

/** A first-stage entry's JSON is refused above this (its request part is already bounded to 4 KiB). */
const MAX_INPUT_BYTES = 16 * 1024;
/** Items one append or ingest call may carry. */
export const MAX_BATCH = 500;

/** One item of an outbox delivery: its number at the source, for deduplication. */
export interface SourcedInput {
  source_seq: number;
  input: AuditInput;
}

export interface ExportHead {
  /** The signed checkpoint at the head, made now; the export ends the shard with it. */
  checkpoint: AuditCheckpoint;
  /** Stored checkpoints (JSON), from the last prune on. */
  checkpoints: string[];
  pruned_through: number;
}

function bounded(input: AuditInput): string {
  const json = JSON.stringify(input);
  if (json.length > MAX_INPUT_BYTES) throw new RelayError(ErrorCode.VALIDATION, `audit input over ${MAX_INPUT_BYTES} bytes`);
  return json;
}

/**
 * One shard of the audit trail (AUDIT_SHARDS of them, "audit-<n>"): a hash chain of records with
 * signed checkpoints, first-stage (pending) entries of mutations in flight, and retention by
 * alarm. Every method runs through the DurableEntry, whose settle recomputes the single alarm;
 * RPC failures reach the caller (the Worker decides what fail-closed means).
 */
export class AuditLog extends DurableObject<Env> {
  private readonly ac: AuditContext;
  private readonly entry: DurableEntry;
  /** Test-only failure injection (worker/test-faults.ts): inert unless TEST_FAULTS is set. */
  readonly faults: TestFaults;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    const store = new AuditLogStorage(ctx.storage);
    this.faults = new TestFaults(env);
    this.ac = {
      ctx,
      env,
      store,
      config: auditConfig(env),
      clock: systemClock,
      faults: this.faults,
      lock: Promise.resolve(),
      keys: undefined,
      keyBroken: false,
      alarmAt: undefined,
    };
    this.entry = new DurableEntry("AuditLog", () => scheduleAlarm(this.ac));
    ctx.blockConcurrencyWhile(async () => {
      store.migrate();
      // The interval clock starts with the shard, so the first checkpoint is not due at once.
      if (store.getMeta("checkpoint_at") === null) store.setMeta("checkpoint_at", this.ac.clock.now());
    });
  }

  private now(): number {
    return this.ac.clock.now();
  }

  /** The shard learns its number from its first call, for the alarm's checkpoints. */
  private shard(shard: number): number {
    if (this.ac.store.getMeta("shard") === null) this.ac.store.setMeta("shard", shard);
    return shard;
  }

  override alarm(): Promise<void> {
    return this.entry.hook("alarm", () =>
      withLock(this.ac, async () => {
        this.ac.alarmAt = null;
        const stored = this.ac.store.getMeta("shard");
        if (stored === null) return;
        const shard = Number(stored);
        const now = this.now();
        await chainStalePending(this.ac, shard, now);
        await pruneExpired(this.ac, shard, now);
        const cp = this.ac.store.lastCheckpoint();
        if (this.ac.store.head().seq > cp.seq && cp.at + this.ac.config.checkpointIntervalMs <= now) {
          if (!(await checkpoint(this.ac, shard, "interval"))) this.ac.store.setMeta("checkpoint_at", now);
        }
      }),
    );
  }

  // ---- RPC, called by the Worker's audit middleware, routes, and the HostRelay / JobCoordinator outboxes ----

  /**
   * First stage of a mutation's record (fail-closed): stored before the mutation runs, chained by
   * `complete`, or by the alarm with outcome "unknown" if the completion never comes.
   */
  begin(shard: number, id: string, input: AuditInput): Promise<void> {
    return this.entry.run("begin", () => {
      this.faults.check("audit.append");
      this.ac.store.addPending(id, this.now(), bounded(input));
      this.shard(shard);
    });
  }

  /** Second stage: the outcome (and the verified actor) of a begun mutation; its record joins the chain. */
  complete(shard: number, id: string, done: Pick<AuditInput, "actor" | "outcome"> & { target?: AuditInput["target"] }): Promise<void> {
    return this.entry.run("complete", () =>
      withLock(this.ac, async () => {
        const stored = this.ac.store.getPending(id);
        if (stored === null) {
          log.warn("audit completion for no pending entry (already chained as unknown)", { shard, id });
          return;
        }
        const input = JSON.parse(stored) as AuditInput;
        await chain(
          this.ac,
          this.shard(shard),
          [{ ...input, actor: done.actor, outcome: done.outcome, target: { ...input.target, ...done.target }, id }],
          () => {
            this.ac.store.takePending(id);
            return true;
          },
        );
      }),
    );
  }

  /** Chains records at once (refusals, best-effort mode). */
  append(shard: number, inputs: Stamped[]): Promise<void> {
    return this.entry.run("append", () => {
      this.faults.check("audit.append");
      if (inputs.length > MAX_BATCH) throw new RelayError(ErrorCode.VALIDATION, `at most ${MAX_BATCH} records per call`);
      for (const input of inputs) bounded(input);
      return withLock(this.ac, async () => {
        await chain(this.ac, this.shard(shard), inputs);
      });
    });
  }

  /**
   * Records from another object's outbox. Items numbered at or below the highest already chained
   * from `source` are dropped, so a batch re-delivered after a lost answer is not chained twice.
   */
  ingest(shard: number, source: string, items: SourcedInput[]): Promise<void> {
    return this.entry.run("ingest", () => {
      this.faults.check("audit.append");
      if (items.length > MAX_BATCH) throw new RelayError(ErrorCode.VALIDATION, `at most ${MAX_BATCH} records per call`);
      for (const item of items) bounded(item.input);
      return withLock(this.ac, async () => {
        const seen = this.ac.store.sourceSeq(source);
        const fresh = items.filter((item) => item.source_seq > seen).sort((a, b) => a.source_seq - b.source_seq);
        if (fresh.length === 0) return;
        const now = this.now();
        await chain(
          this.ac,
          this.shard(shard),
          fresh.map((item) => ({ ...item.input, id: crypto.randomUUID() })),
          () => this.ac.store.acceptFromSource(source, fresh.at(-1)!.source_seq, now),
        );
      });
    });
  }

  /** This shard's records matching `filter`, newest first, strictly before `before`. */
  query(filter: RecordFilter, before: { at: number; seq: number; inclusiveAt: boolean } | null, limit: number): Promise<StoredRecord[]> {
    return this.entry.run("query", () => this.ac.store.query(filter, before, Math.min(limit, MAX_BATCH)));
  }

  /** Starts an export of this shard: a fresh signed checkpoint at the head, and the stored ones. */
  exportHead(shard: number, exportId: string, shards: number): Promise<ExportHead | null> {
    return this.entry.run("exportHead", () =>
      withLock(this.ac, async () => {
        const cp = await checkpoint(this.ac, this.shard(shard), "export", { exportId, shards });
        if (!cp) return null;
        return { checkpoint: cp, checkpoints: this.ac.store.checkpoints(), pruned_through: this.ac.store.prunedThrough() };
      }),
    );
  }

  /** Stored records (canonical JSON) after `afterSeq` through `throughSeq`, in seq order. */
  exportPage(afterSeq: number, throughSeq: number, limit: number): Promise<string[]> {
    return this.entry.run("exportPage", () => this.ac.store.page(afterSeq, throughSeq, Math.min(limit, MAX_BATCH)).map((r) => r.body));
  }

  /** Records ever written in this shard (its head seq), for fleet_relay_audit_records_written_total. */
  stats(): Promise<{ records: number; pending: number }> {
    return this.entry.run("stats", () => ({ records: this.ac.store.head().seq, pending: this.ac.store.pendingCount() }));
  }

  /** The public half of the audit key (SPKI PEM) and its id; null when no key is set. */
  publicKey(): Promise<{ public_key: string; key_id: string } | null> {
    return this.entry.run("publicKey", async () => {
      const keys = await signingKeys(this.ac);
      return keys ? { public_key: await publicKeyPem(keys.publicKey), key_id: keys.keyId } : null;
    });
  }
}
