import { runInDurableObject } from "cloudflare:test";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { OutboxStore } from "../../../worker/host-relay/outbox-store.ts";
import { HostRelayStorage, type OutboxRow } from "../../../worker/host-relay/storage.ts";
import { relayStub } from "../helpers.ts";
import { countingSql } from "./relay-helpers.ts";

/**
 * OutboxStore answers its due questions and picks what to lease from an in-memory copy of its rows.
 * These runs check that copy against the table after random sequences of every write: each answer is
 * recomputed here from `SELECT * FROM outbox` and the leases the run has taken.
 */

type Op =
  | { op: "add"; kind: string; target: string; coalesce: { key: string; windowMs: number } | null }
  | { op: "takeOpen"; key: string; kind: string }
  | { op: "lease"; limit: number }
  | { op: "settle"; pick: number; outcome: "delete" | "defer" }
  | { op: "replaceBody"; pick: number }
  | { op: "tick"; ms: number }
  | { op: "evict" };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 5,
    arbitrary: fc.record({
      op: fc.constant("add" as const),
      kind: fc.constantFrom("event", "audit"),
      target: fc.constantFrom("fleet", "job-1"),
      coalesce: fc.option(fc.record({ key: fc.constantFrom("metrics", "progress"), windowMs: fc.integer({ min: 1, max: 400 }) })),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      op: fc.constant("takeOpen" as const),
      key: fc.constantFrom("metrics", "progress"),
      kind: fc.constantFrom("event", "audit"),
    }),
  },
  { weight: 3, arbitrary: fc.record({ op: fc.constant("lease" as const), limit: fc.integer({ min: 1, max: 4 }) }) },
  {
    weight: 3,
    arbitrary: fc.record({
      op: fc.constant("settle" as const),
      pick: fc.nat(),
      outcome: fc.constantFrom("delete" as const, "defer" as const),
    }),
  },
  { weight: 1, arbitrary: fc.record({ op: fc.constant("replaceBody" as const), pick: fc.nat() }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant("tick" as const), ms: fc.integer({ min: 0, max: 500 }) }) },
  { weight: 1, arbitrary: fc.constant({ op: "evict" as const }) },
);

const LEASE_MS = 5_000;
const BACKUP_MS = 1_000;

/** What the store must answer, computed from the table and the run's leases. */
function expected(rows: OutboxRow[], leased: Map<number, number>, now: number) {
  const free = rows.filter((r) => !leased.has(r.id));
  const dues = [...free.map((r) => r.next_at), ...leased.values()];
  return {
    count: rows.length,
    nextDue: dues.length === 0 ? null : Math.min(...dues),
    hasDeliverable: free.some((r) => (r.backoff_until === null || r.backoff_until <= now) && r.not_before <= now),
  };
}

/** The first `limit` rows that may go, first in, first out per kind and target. */
function expectedLease(rows: OutboxRow[], leased: Map<number, number>, now: number, limit: number): number[] {
  const blocked = new Set<string>();
  const ids: number[] = [];
  for (const r of rows) {
    const key = `${r.kind}/${r.target}`;
    if (blocked.has(key)) continue;
    if (leased.has(r.id) || (r.backoff_until !== null && r.backoff_until > now) || r.not_before > now) {
      blocked.add(key);
      continue;
    }
    ids.push(r.id);
    if (ids.length >= limit) break;
  }
  return ids;
}

describe("OutboxStore's in-memory copy", () => {
  it("answers as the table does after any sequence of writes, evictions and clock moves", async () => {
    await runInDurableObject(relayStub(crypto.randomUUID()), (_instance, state) => {
      const storage = new HostRelayStorage(state.storage);
      storage.initialize();
      const sql = state.storage.sql;
      const table = () => sql.exec<OutboxRow>("SELECT * FROM outbox ORDER BY id").toArray();
      let runs = 0;
      fc.assert(
        fc.property(fc.array(opArb, { minLength: 1, maxLength: 40 }), (ops) => {
          runs++;
          sql.exec("DELETE FROM outbox");
          let store = new OutboxStore(sql);
          const leased = new Map<number, number>();
          let now = 1_000_000;
          let bodies = 0;
          for (const op of ops) {
            switch (op.op) {
              case "add":
                store.add(
                  op.kind,
                  op.target,
                  { n: bodies++ },
                  now + BACKUP_MS,
                  op.coalesce ? { key: op.coalesce.key, notBefore: now + op.coalesce.windowMs } : undefined,
                );
                break;
              case "takeOpen":
                for (const r of store.takeOpenCoalesced(op.key, op.kind, now, now + LEASE_MS)) {
                  expect(leased.has(r.id), `row ${r.id} leased twice`).toBe(false);
                  leased.set(r.id, now + LEASE_MS);
                }
                break;
              case "lease": {
                const before = table();
                const want = expectedLease(before, leased, now, op.limit);
                const got = store.lease(now, now + LEASE_MS, op.limit);
                expect(got.map((r) => r.id)).toEqual(want);
                // Bodies and every column come from the table as it is now.
                expect(got).toEqual(before.filter((r) => want.includes(r.id)));
                for (const id of want) leased.set(id, now + LEASE_MS);
                break;
              }
              case "settle": {
                const ids = [...leased.keys()];
                if (ids.length === 0) break;
                const chosen = ids.filter((_, i) => (op.pick >> i) & 1 || i === op.pick % ids.length);
                if (op.outcome === "delete") store.delete(chosen);
                else store.defer(chosen, (attempts) => now + 100 * attempts);
                for (const id of chosen) leased.delete(id);
                break;
              }
              case "replaceBody": {
                const rows = table();
                if (rows.length > 0) store.replaceBody(rows[op.pick % rows.length]!.id, { replaced: op.pick });
                break;
              }
              case "tick":
                now += op.ms;
                break;
              case "evict":
                // A new instance reads the table afresh and owns no flush, so it holds no lease.
                store = new OutboxStore(sql);
                leased.clear();
                break;
            }
            const rows = table();
            const want = expected(rows, leased, now);
            expect(store.count()).toBe(want.count);
            expect(store.nextDue()).toBe(want.nextDue);
            expect(store.hasDeliverable(now)).toBe(want.hasDeliverable);
            for (const key of ["metrics", "progress"]) {
              const open = rows.filter((r) => r.coalesce_key === key && r.not_before > now && !leased.has(r.id)).at(-1);
              expect(store.openCoalesced(key, now)?.id ?? null).toBe(open?.id ?? null);
            }
          }
        }),
        { numRuns: 60 },
      );
      expect(runs).toBe(60);
    });
  });

  it("a lease with nothing deliverable runs no statement", async () => {
    await runInDurableObject(relayStub(crypto.randomUUID()), (_instance, state) => {
      new HostRelayStorage(state.storage).initialize();
      const now = 1_000_000;
      new OutboxStore(state.storage.sql).add("event", "fleet", { n: 1 }, now + BACKUP_MS, { key: "metrics", notBefore: now + 100 });
      const counting = countingSql(state.storage.sql);
      const counted = new OutboxStore(counting.sql);
      expect(counted.count()).toBe(1);
      const loaded = counting.statements();
      expect(counted.lease(now, now + LEASE_MS, 10)).toEqual([]);
      expect(counted.hasDeliverable(now)).toBe(false);
      expect(counted.nextDue()).toBe(now + 100);
      expect(counting.statements()).toBe(loaded);
      expect(counted.lease(now + 100, now + LEASE_MS, 10).map((r) => r.body)).toEqual([JSON.stringify({ n: 1 })]);
      expect(counting.statements()).toBe(loaded + 1);
    });
  });
});
