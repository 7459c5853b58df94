/** Rows written by object, counted by SQLite itself, for the rows-per-… budget tests. */
import { runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { auditConfig } from "../../../worker/config.ts";
import { relayStub } from "../helpers.ts";

export type RowObject = "HostRelay" | "FleetEvents" | "AuditLog";

/** Rows written by the object's SQLite connection so far (`total_changes()`). */
export async function changes(stub: DurableObjectStub): Promise<number> {
  return runInDurableObject(stub, (_instance, state) => state.storage.sql.exec<{ n: number }>("SELECT total_changes() AS n").one().n);
}

export function auditShards(): DurableObjectStub[] {
  return Array.from({ length: auditConfig(env).shards }, (_, i) => env.AUDIT_LOG.get(env.AUDIT_LOG.idFromName(`audit-${i}`)));
}

/** Waits (bounded) until no AuditLog shard has a record pending. */
export async function auditSettled(timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const stats = await Promise.all(auditShards().map((s) => (s as any).stats() as Promise<{ pending: number }>));
    if (stats.every((s) => s.pending === 0)) return;
    if (Date.now() > deadline) throw new Error("audit records still pending");
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** SQLite rows written so far by the host's relay, the fleet's FleetEvents and every AuditLog shard. */
export async function rowTotals(hostId: string): Promise<Record<RowObject, number>> {
  const fleet = env.FLEET_EVENTS.get(env.FLEET_EVENTS.idFromName("fleet"));
  const audit = await Promise.all(auditShards().map(changes));
  return { HostRelay: await changes(relayStub(hostId)), FleetEvents: await changes(fleet), AuditLog: audit.reduce((a, b) => a + b, 0) };
}
