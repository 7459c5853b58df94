import { runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { AGE_PRUNE_EVERY_MS, FleetEventsStorage, type HistoryBounds } from "../../../worker/fleet-events/storage.ts";
import { countingSql } from "../host-relay/relay-helpers.ts";

/**
 * FleetEventsStorage keeps copies of what only it writes (meta, the oldest event's time, the number
 * of sources) and applies the age bound at most once a second on publish. These run against a
 * FleetEvents object of their own, so the fleet's stream in the other tests is untouched.
 */
function ownStore<R>(fn: (store: FleetEventsStorage, sql: SqlStorage) => R, maxSources?: number): Promise<R> {
  const stub = env.FLEET_EVENTS.get(env.FLEET_EVENTS.idFromName(`storage-test-${crypto.randomUUID()}`));
  return runInDurableObject(stub, (_instance, state) => {
    const store = new FleetEventsStorage(state.storage, maxSources);
    store.migrate();
    return fn(store, state.storage.sql);
  });
}

const event = (n: number) => ({
  type: "host.online" as const,
  at: new Date(0).toISOString(),
  host_id: crypto.randomUUID(),
  detail: `n${n}`,
});

type Op = { op: "append"; n: number } | { op: "prune" } | { op: "tick"; ms: number } | { op: "evict" };
const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 5, arbitrary: fc.record({ op: fc.constant("append" as const), n: fc.integer({ min: 1, max: 3 }) }) },
  { weight: 1, arbitrary: fc.constant({ op: "prune" as const }) },
  { weight: 3, arbitrary: fc.record({ op: fc.constant("tick" as const), ms: fc.integer({ min: 0, max: 1_500 }) }) },
  { weight: 1, arbitrary: fc.constant({ op: "evict" as const }) },
);

describe("FleetEventsStorage", () => {
  it("its kept copies (oldest event, head, pruned-through, epoch) answer as a fresh store reading the table does", async () => {
    const bounds: HistoryBounds = { maxEvents: 6, maxAgeMs: 2_000 };
    await ownStore((_first, sql) => {
      // One clock across runs: the tables carry over from run to run.
      let now = 1_000_000;
      fc.assert(
        fc.property(fc.array(opArb, { minLength: 1, maxLength: 40 }), (ops) => {
          // One writer at a time, as in the object: a run starts with a new instance, as after an eviction.
          let store = new FleetEventsStorage({ sql } as DurableObjectStorage);
          for (const op of ops) {
            if (op.op === "append") {
              let last = 0;
              for (let i = 0; i < op.n; i++) last = store.append(event(i), now).offset;
              store.pruneAfterAppend(last, now, bounds);
            } else if (op.op === "prune") store.prune(now, bounds);
            else if (op.op === "tick") now += op.ms;
            else store = new FleetEventsStorage({ sql } as DurableObjectStorage);
            const fresh = new FleetEventsStorage({ sql } as DurableObjectStorage);
            expect(store.oldestAt()).toBe(fresh.oldestAt());
            expect(store.head()).toBe(fresh.head());
            expect(store.prunedThrough()).toBe(fresh.prunedThrough());
            expect(store.epoch()).toBe(fresh.epoch());
            // The count bound holds after every publish, and the kept offsets are contiguous up to the head.
            const kept = sql.exec<{ n: number; lo: number | null }>('SELECT COUNT(*) AS n, MIN("offset") AS lo FROM events').one();
            expect(kept.n).toBeLessThanOrEqual(bounds.maxEvents);
            if (kept.n > 0) expect(kept.lo! + kept.n - 1).toBe(store.head());
          }
        }),
        { numRuns: 40 },
      );
    });
  });

  it("a publish applies the age bound at most once a second; the alarm's prune applies it always", async () => {
    const bounds: HistoryBounds = { maxEvents: 1_000, maxAgeMs: 5_000 };
    await ownStore((_store, sql) => {
      const counting = countingSql(sql);
      const store = new FleetEventsStorage({ sql: counting.sql } as DurableObjectStorage);
      const ageScans = () => counting.queries.filter((q) => q.includes("WHERE at <= ?")).length;
      const t0 = 10_000_000;
      store.pruneAfterAppend(store.append(event(0), t0).offset, t0, bounds);
      expect(ageScans()).toBeGreaterThan(0);
      const afterFirst = ageScans();
      // Within the second: no age scan, however many publishes.
      for (let i = 1; i < 5; i++) store.pruneAfterAppend(store.append(event(i), t0 + i * 100).offset, t0 + i * 100, bounds);
      expect(ageScans()).toBe(afterFirst);
      // Past the age bound and past the second: the publish removes the old events.
      const later = t0 + bounds.maxAgeMs + AGE_PRUNE_EVERY_MS;
      const newest = store.append(event(9), later).offset;
      store.pruneAfterAppend(newest, later, bounds);
      expect(ageScans()).toBeGreaterThan(afterFirst);
      expect(sql.exec<{ n: number }>("SELECT COUNT(*) AS n FROM events").one().n).toBe(1);
      expect(store.oldestAt()).toBe(later);
      // The alarm's prune is not throttled.
      const scans = ageScans();
      store.prune(later + 1, bounds);
      expect(ageScans()).toBeGreaterThan(scans);
    });
  });

  it("remembers at most maxSources sources, forgetting the longest idle, also after the age bound forgot some", async () => {
    const bounds: HistoryBounds = { maxEvents: 1_000, maxAgeMs: 10_000 };
    await ownStore((store, sql) => {
      const sources = () =>
        sql
          .exec<{ source: string }>("SELECT source FROM sources ORDER BY source")
          .toArray()
          .map((r) => r.source);
      let now = 1_000_000;
      for (let i = 0; i < 7; i++) expect(store.acceptFromSource(`s${i}`, 1, now++)).toBe(true);
      expect(sources()).toEqual(["s2", "s3", "s4", "s5", "s6"]);
      // A repeat is refused; a forgotten source is accepted again (its history is gone with it).
      expect(store.acceptFromSource("s6", 1, now++)).toBe(false);
      // The age bound forgets s2..s5 (s6 was just seen); the cap must count from what is left.
      now = 1_000_000 + 6 + bounds.maxAgeMs - 1;
      store.prune(now, bounds);
      expect(sources()).toEqual(["s6"]);
      for (let i = 10; i < 16; i++) store.acceptFromSource(`s${i}`, 1, now++);
      expect(sources()).toEqual(["s11", "s12", "s13", "s14", "s15"]);
    }, 5);
  });
});
