/**
 * Offline verification of an audit export (NDJSON from GET /api/audit/export). Web-standard APIs
 * only, so it runs in Node (scripts/audit-verify.ts), Deno or a Worker. Per shard it checks:
 *   - every record's `hash` is the SHA-256 of its canonical JSON, and `prev_hash` the previous hash;
 *   - seqs are contiguous, starting at 1 with the genesis prev_hash, or right after a signed prune
 *     checkpoint whose hash is the first record's prev_hash;
 *   - every checkpoint's signature verifies with the public key, and one inside the exported range
 *     names the hash the chain has at its seq;
 *   - the shard ends with this export's checkpoint, whose seq, hash and count are the chain's head
 *     (a removed tail record fails here);
 * and that every shard the header announces is present. The first failure is reported.
 */
import { canonicalJson, GENESIS_HASH, recordHash } from "./canonical.ts";
import { type Key, verifyObject } from "./signing.ts";

export interface ShardSummary {
  shard: number;
  records: number;
  checkpoints: number;
  first_seq: number | null;
  head_seq: number;
}

export type VerifyResult =
  | { ok: true; export_id: string; shards: ShardSummary[] }
  | { ok: false; shard: number | null; seq: number | null; line: number; reason: string };

interface Rec {
  type: "record";
  seq: number;
  shard: number;
  prev_hash: string;
  hash: string;
  [key: string]: unknown;
}

interface Cp {
  type: "checkpoint";
  kind: string;
  shard: number;
  seq: number;
  hash: string;
  count: number;
  pruned_through: number;
  export_id?: string;
  shards?: number;
  signature: string;
  [key: string]: unknown;
}

interface ShardState {
  expectSeq: number | null;
  prevHash: string | null;
  records: number;
  firstSeq: number | null;
  checkpoints: number;
  prunes: Map<number, string>;
  /** Checkpoints waiting for the record at their seq. */
  waiting: Map<number, { hash: string; line: number }[]>;
  hashes: Map<number, string>;
  closed: boolean;
}

const isInt = (v: unknown): v is number => typeof v === "number" && Number.isInteger(v) && v >= 0;

export async function verifyExport(text: string, publicKey: Key): Promise<VerifyResult> {
  const lines = text.split("\n");
  if (lines.at(-1) === "") lines.pop();
  const fail = (line: number, reason: string, shard: number | null = null, seq: number | null = null): VerifyResult => ({
    ok: false,
    shard,
    seq,
    line,
    reason,
  });
  let header: { export_id: string; shards: number } | null = null;
  const shards = new Map<number, ShardState>();
  let last: { shard: number | null; seq: number | null } = { shard: null, seq: null };

  const stateOf = (k: number): ShardState => {
    let s = shards.get(k);
    if (!s) {
      s = {
        expectSeq: null,
        prevHash: null,
        records: 0,
        firstSeq: null,
        checkpoints: 0,
        prunes: new Map(),
        waiting: new Map(),
        hashes: new Map(),
        closed: false,
      };
      shards.set(k, s);
    }
    return s;
  };

  for (let i = 0; i < lines.length; i++) {
    const n = i + 1;
    let obj: Record<string, unknown>;
    try {
      obj = JSON.parse(lines[i]!) as Record<string, unknown>;
    } catch {
      return fail(
        n,
        `line ${n} is not JSON${last.seq !== null ? ` (after shard ${last.shard} seq ${last.seq})` : ""}`,
        last.shard,
        last.seq === null ? null : last.seq + 1,
      );
    }
    if (obj === null || typeof obj !== "object") return fail(n, `line ${n} is not an object`);
    if (i === 0) {
      if (obj.type !== "export" || typeof obj.export_id !== "string" || !isInt(obj.shards) || obj.shards < 1) {
        return fail(n, "the first line is not an export header");
      }
      header = { export_id: obj.export_id, shards: obj.shards };
      continue;
    }
    if (!header) return fail(n, "no export header");
    if (obj.type === "record") {
      const r = obj as Rec;
      if (!isInt(r.shard) || !isInt(r.seq) || typeof r.prev_hash !== "string" || typeof r.hash !== "string") {
        return fail(n, "record without shard, seq, prev_hash or hash", isInt(r.shard) ? r.shard : last.shard, isInt(r.seq) ? r.seq : null);
      }
      last = { shard: r.shard, seq: r.seq };
      if (r.shard >= header.shards) return fail(n, `shard ${r.shard} is outside the export's ${header.shards} shards`, r.shard, r.seq);
      const s = stateOf(r.shard);
      if (s.closed) return fail(n, "record after the shard's export checkpoint", r.shard, r.seq);
      if (s.expectSeq === null) {
        // The chain's start: genesis, or right after a signed prune checkpoint.
        if (r.seq === 1) {
          if (r.prev_hash !== GENESIS_HASH) return fail(n, "seq 1 does not start from the genesis hash", r.shard, r.seq);
        } else {
          const anchor = s.prunes.get(r.seq - 1);
          if (anchor === undefined)
            return fail(n, `chain starts at seq ${r.seq} without a signed prune checkpoint at seq ${r.seq - 1}`, r.shard, r.seq);
          if (anchor !== r.prev_hash) return fail(n, "prev_hash does not match the prune checkpoint's hash", r.shard, r.seq);
        }
        s.firstSeq = r.seq;
      } else {
        if (r.seq !== s.expectSeq)
          return fail(n, `expected seq ${s.expectSeq}, found ${r.seq} (a record is missing or out of order)`, r.shard, s.expectSeq);
        if (r.prev_hash !== s.prevHash) return fail(n, "prev_hash does not match the previous record's hash", r.shard, r.seq);
      }
      const computed = await recordHash(r);
      if (computed !== r.hash) return fail(n, "hash does not match the record's content (it was altered)", r.shard, r.seq);
      if (canonicalJson(r) !== lines[i]) {
        // Same content, other bytes (reordered keys, spaces): harmless to the hash, but not what the relay exported.
        return fail(n, "record is not in canonical form (it was re-encoded)", r.shard, r.seq);
      }
      for (const cp of s.waiting.get(r.seq) ?? []) {
        if (cp.hash !== r.hash) return fail(cp.line, `checkpoint at seq ${r.seq} names another hash than the chain's`, r.shard, r.seq);
      }
      s.waiting.delete(r.seq);
      s.hashes.set(r.seq, r.hash);
      s.expectSeq = r.seq + 1;
      s.prevHash = r.hash;
      s.records += 1;
      continue;
    }
    if (obj.type === "checkpoint") {
      const cp = obj as Cp;
      if (!isInt(cp.shard) || !isInt(cp.seq) || typeof cp.hash !== "string" || !isInt(cp.count) || !isInt(cp.pruned_through)) {
        return fail(n, "malformed checkpoint", isInt(cp.shard) ? cp.shard : null, isInt(cp.seq) ? cp.seq : null);
      }
      if (!(await verifyObject(publicKey, cp))) return fail(n, `checkpoint at seq ${cp.seq} has a bad signature`, cp.shard, cp.seq);
      if (cp.shard >= header.shards) return fail(n, `shard ${cp.shard} is outside the export's ${header.shards} shards`, cp.shard, cp.seq);
      const s = stateOf(cp.shard);
      s.checkpoints += 1;
      if (cp.kind === "prune") {
        if (cp.pruned_through !== cp.seq) return fail(n, "prune checkpoint's pruned_through is not its seq", cp.shard, cp.seq);
        s.prunes.set(cp.seq, cp.hash);
      }
      if (cp.kind === "export") {
        if (cp.export_id !== header.export_id || cp.shards !== header.shards) {
          return fail(n, "export checkpoint belongs to another export", cp.shard, cp.seq);
        }
        const headSeq = s.expectSeq === null ? cp.pruned_through : s.expectSeq - 1;
        const headHash = s.prevHash ?? (cp.seq === 0 ? GENESIS_HASH : s.prunes.get(cp.seq));
        if (cp.seq !== headSeq) {
          return fail(
            n,
            `the export checkpoint is at seq ${cp.seq} but the chain ends at seq ${headSeq} (records were removed from the end)`,
            cp.shard,
            headSeq + 1,
          );
        }
        if (cp.hash !== headHash) return fail(n, "the export checkpoint's hash is not the chain's head", cp.shard, cp.seq);
        if (cp.count !== s.records)
          return fail(n, `the export checkpoint counts ${cp.count} records, the export holds ${s.records}`, cp.shard, cp.seq);
        s.closed = true;
        continue;
      }
      // A checkpoint inside the exported range must match the record at its seq, seen or still to come.
      const seen = s.hashes.get(cp.seq);
      if (seen !== undefined && seen !== cp.hash)
        return fail(n, `checkpoint at seq ${cp.seq} names another hash than the chain's`, cp.shard, cp.seq);
      if (seen === undefined && cp.kind !== "prune") {
        const list = s.waiting.get(cp.seq) ?? [];
        list.push({ hash: cp.hash, line: n });
        s.waiting.set(cp.seq, list);
      }
      continue;
    }
    return fail(n, `line ${n} has an unknown type`);
  }
  if (!header) return fail(0, "empty export");
  for (let k = 0; k < header.shards; k++) {
    const s = shards.get(k);
    if (!s?.closed) return fail(lines.length, `shard ${k} has no export checkpoint (the export was cut short)`, k, null);
    // Interval checkpoints before the first kept record are from before a prune; later ones must have been matched.
    for (const [seq] of s.waiting) {
      if (s.firstSeq !== null && seq >= s.firstSeq) return fail(lines.length, `checkpoint at seq ${seq} has no record`, k, seq);
    }
  }
  return {
    ok: true,
    export_id: header.export_id,
    shards: [...shards.entries()]
      .sort(([a], [b]) => a - b)
      .map(([shard, s]) => ({
        shard,
        records: s.records,
        checkpoints: s.checkpoints,
        first_seq: s.firstSeq,
        head_seq: s.expectSeq === null ? 0 : s.expectSeq - 1,
      })),
  };
}
