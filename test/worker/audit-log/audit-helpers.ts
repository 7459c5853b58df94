/** Helpers for the audit tests: shard stubs, exports through the real route, the test key. */
import { runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { expect } from "vitest";
import type { AuditRecord } from "../../../schemas/index.ts";
import type { AuditLog } from "../../../worker/audit-log/audit-log.ts";
import type { AuditContext } from "../../../worker/audit-log/context.ts";
import type { AuditInput } from "../../../worker/audit-log/contract.ts";
import { shardFor } from "../../../worker/audit-log/shard.ts";
import { importPublicKey } from "../../../worker/audit-log/signing.ts";
import { type VerifyResult, verifyExport } from "../../../worker/audit-log/verify.ts";
import { api } from "../helpers.ts";

export const SHARDS = 4;

export function shardStub(shard: number) {
  return env.AUDIT_LOG.get(env.AUDIT_LOG.idFromName(`audit-${shard}`));
}

export function shardOfHost(hostId: string): number {
  return shardFor({ host_id: hostId }, SHARDS);
}

/** Runs `fn` with the shard's context (store, clock, config) inside the object. */
export function inShard<T>(shard: number, fn: (ac: AuditContext, instance: AuditLog) => T | Promise<T>): Promise<T> {
  return runInDurableObject(shardStub(shard), (instance: AuditLog) => fn((instance as unknown as { ac: AuditContext }).ac, instance));
}

export function input(overrides: Partial<AuditInput> = {}): AuditInput & { id: string } {
  return {
    id: crypto.randomUUID(),
    action: "test.thing",
    time: Date.now(),
    actor: { kind: "user", sub: "tester", role: "admin", jti: null, ip: null, user_agent: null },
    target: { host_id: crypto.randomUUID() },
    request: { n: 1 },
    outcome: { status: 200, code: null },
    request_id: null,
    ...overrides,
  };
}

export async function exportText(): Promise<string> {
  const res = await api("/api/audit/export", { role: "admin" });
  expect(res.status, await res.clone().text()).toBe(200);
  expect(res.headers.get("content-type")).toBe("application/x-ndjson");
  return new TextDecoder().decode(await res.arrayBuffer());
}

export async function publicKey() {
  const pk = await shardStub(0).publicKey();
  expect(pk).not.toBeNull();
  return importPublicKey(pk!.public_key);
}

export async function verify(text: string): Promise<VerifyResult> {
  return verifyExport(text, await publicKey());
}

/** Records of `shard` as stored, in seq order. */
export function storedRecords(shard: number): Promise<AuditRecord[]> {
  return inShard(shard, (ac) =>
    ac.ctx.storage.sql
      .exec<{ body: string }>("SELECT body FROM records ORDER BY seq")
      .toArray()
      .map((r) => JSON.parse(r.body) as AuditRecord),
  );
}

/** Records matching the query, through GET /api/audit. */
export async function listed(query: string): Promise<AuditRecord[]> {
  const res = await api(`/api/audit?${query}`, { role: "admin" });
  expect(res.status, await res.clone().text()).toBe(200);
  return ((await res.json()) as { items: AuditRecord[] }).items;
}

/** Polls `probe` until it returns a value (not undefined), within `timeoutMs`. */
export async function eventually<T>(probe: () => Promise<T | undefined>, timeoutMs = 5000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 20));
  }
}
