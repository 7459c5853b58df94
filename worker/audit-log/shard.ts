import type { AuditTarget } from "./contract.ts";

/**
 * Which shard a record goes to: FNV-1a (32 bit) of its target's host id, else its job id, else
 * "fleet", modulo the shard count. Stable across deployments and isolates, so a host's records
 * always form one ordered chain while different hosts' records spread over the shards.
 */
export function shardKey(target: AuditTarget): string {
  return target.host_id ?? target.job_id ?? "fleet";
}

export function shardFor(target: AuditTarget, shards: number): number {
  let h = 0x811c9dc5;
  const key = shardKey(target);
  for (let i = 0; i < key.length; i++) {
    h ^= key.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h % shards;
}
