import { runDurableObjectAlarm } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { canonicalJson, GENESIS_HASH, recordHash } from "../../../worker/audit-log/canonical.ts";
import { ManualClock } from "../../../worker/clock.ts";
import { exportText, input, inShard, shardStub, storedRecords, verify } from "./audit-helpers.ts";

const DAY = 86_400_000;

describe("AuditLog shard: the chain", () => {
  it("chains records from seq 1 with the genesis hash, each hash over the canonical JSON of the rest", async () => {
    const shard = 1;
    await shardStub(shard).append(shard, [input({ action: "a.one" }), input({ action: "a.two" })]);
    await shardStub(shard).append(shard, [input({ action: "a.three" })]);
    const records = await storedRecords(shard);
    const mine = records.slice(-3);
    expect(mine.map((r) => r.action)).toEqual(["a.one", "a.two", "a.three"]);
    expect(records[0]!.seq).toBe(1);
    expect(records[0]!.prev_hash).toBe(GENESIS_HASH);
    for (let i = 1; i < records.length; i++) {
      expect(records[i]!.seq).toBe(records[i - 1]!.seq + 1);
      expect(records[i]!.prev_hash).toBe(records[i - 1]!.hash);
    }
    for (const r of records) {
      const { hash, ...rest } = r;
      expect(await recordHash(r as unknown as Record<string, unknown>)).toBe(hash);
      // The documented encoding: sorted keys, no whitespace.
      const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(canonicalJson(rest)));
      expect([...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("")).toBe(hash);
      expect(r.schema_version).toBe(1);
      expect(r.shard).toBe(shard);
    }
    expect((await shardStub(shard).stats()).records).toBe(records.at(-1)!.seq);
  });

  it("concurrent appends never fork the chain", async () => {
    const shard = 2;
    await Promise.all(Array.from({ length: 20 }, (_, i) => shardStub(shard).append(shard, [input({ action: `c.n${i}` })])));
    const records = await storedRecords(shard);
    for (let i = 1; i < records.length; i++) expect(records[i]!.prev_hash).toBe(records[i - 1]!.hash);
    expect(new Set(records.map((r) => r.seq)).size).toBe(records.length);
  });

  it("writes a signed checkpoint every N records, and one by alarm after the interval", async () => {
    const shard = 3;
    const clock = new ManualClock(Date.now());
    await inShard(shard, (ac) => {
      ac.clock = clock;
      ac.config.checkpointEvery = 3;
    });
    await shardStub(shard).append(shard, [input(), input(), input()]);
    const afterCount = await inShard(shard, (ac) => ac.store.checkpoints().map((c) => JSON.parse(c)));
    expect(afterCount.at(-1)).toMatchObject({ kind: "interval", shard, seq: (await storedRecords(shard)).at(-1)!.seq });
    expect(afterCount.at(-1).signature).toMatch(/^[A-Za-z0-9_-]{86}$/);

    await shardStub(shard).append(shard, [input()]);
    clock.advance(3_600_000 + 1);
    expect(await runDurableObjectAlarm(shardStub(shard))).toBe(true);
    const cps = await inShard(shard, (ac) => ac.store.checkpoints().map((c) => JSON.parse(c)));
    expect(cps.at(-1).seq).toBe((await storedRecords(shard)).at(-1)!.seq);
    expect(cps.length).toBe(afterCount.length + 1);
  });

  it("an export verifies; a checkpoint with a changed field does not", async () => {
    await shardStub(0).append(0, [input({ target: {} })]);
    const text = await exportText();
    const ok = await verify(text);
    expect(ok.ok, JSON.stringify(ok)).toBe(true);
    const lines = text.trimEnd().split("\n");
    const i = lines.findIndex((l) => l.includes('"type":"checkpoint"') && l.includes('"kind":"export"'));
    lines[i] = lines[i]!.replace('"kind":"export"', '"kind":"interval"');
    const bad = await verify(`${lines.join("\n")}\n`);
    expect(bad.ok).toBe(false);
    if (!bad.ok) expect(bad.reason).toMatch(/bad signature/);
  });
});

describe("canonical JSON", () => {
  it("sorts keys at every depth and keeps a __proto__ key as data", () => {
    expect(canonicalJson({ b: 1, a: { d: [{ z: 1, y: 2 }], c: null } })).toBe('{"a":{"c":null,"d":[{"y":2,"z":1}]},"b":1}');
    expect(canonicalJson(JSON.parse('{"__proto__":[1],"a":1}'))).toBe('{"__proto__":[1],"a":1}');
  });
});

describe("AuditLog shard: pending entries and retention", () => {
  it("a pending entry whose completion never arrives is chained by the alarm with outcome unknown", async () => {
    const shard = 1;
    const clock = new ManualClock(Date.now());
    await inShard(shard, (ac) => {
      ac.clock = clock;
    });
    const id = crypto.randomUUID();
    await shardStub(shard).begin(shard, id, input({ action: "p.lost" }));
    expect((await storedRecords(shard)).some((r) => r.id === id)).toBe(false);
    clock.advance(60_001);
    await runDurableObjectAlarm(shardStub(shard));
    const record = (await storedRecords(shard)).find((r) => r.id === id);
    expect(record?.outcome).toMatchObject({ status: null, code: "unknown" });
    // A completion arriving afterwards changes nothing.
    const before = (await storedRecords(shard)).length;
    await shardStub(shard).complete(shard, id, { actor: input().actor, outcome: { status: 200, code: null } });
    expect((await storedRecords(shard)).length).toBe(before);
  });

  it("retention prunes a prefix behind a signed prune checkpoint, and the rest still verifies", async () => {
    const shard = 2;
    const clock = new ManualClock(Date.now());
    await inShard(shard, (ac) => {
      ac.clock = clock;
    });
    await shardStub(shard).append(shard, [input({ action: "r.old" })]);
    const oldHead = (await storedRecords(shard)).at(-1)!;
    clock.advance(200 * DAY);
    await shardStub(shard).append(shard, [input({ action: "r.young" })]);
    clock.advance(166 * DAY);
    await runDurableObjectAlarm(shardStub(shard));
    const kept = await storedRecords(shard);
    expect(kept.map((r) => r.action)).toEqual(["r.young"]);
    expect(kept[0]!.seq).toBe(oldHead.seq + 1);
    const prune = await inShard(shard, (ac) =>
      ac.store
        .checkpoints()
        .map((c) => JSON.parse(c))
        .find((c) => c.kind === "prune"),
    );
    expect(prune).toMatchObject({ seq: oldHead.seq, hash: oldHead.hash, pruned_through: oldHead.seq });
    const result = await verify(await exportText());
    expect(result.ok, JSON.stringify(result)).toBe(true);
    if (result.ok) expect(result.shards.find((s) => s.shard === shard)?.first_seq).toBe(oldHead.seq + 1);
  });
});

describe("AuditLog shard: ingest from outboxes", () => {
  it("drops items a source already delivered (a batch re-sent after a lost answer)", async () => {
    const shard = 3;
    const source = `host:${crypto.randomUUID()}`;
    const a = input({ action: "i.first" });
    const b = input({ action: "i.second" });
    await shardStub(shard).ingest(shard, source, [{ source_seq: 5, input: a }]);
    await shardStub(shard).ingest(shard, source, [
      { source_seq: 5, input: a },
      { source_seq: 6, input: b },
    ]);
    const actions = (await storedRecords(shard)).map((r) => r.action).filter((x) => x.startsWith("i."));
    expect(actions).toEqual(["i.first", "i.second"]);
  });

  it("refuses an oversized input without storing anything", async () => {
    const shard = 0;
    const before = (await storedRecords(shard)).length;
    const err = await shardStub(shard)
      .append(shard, [input({ request: "x".repeat(20_000) })])
      .then(
        () => null,
        (e: unknown) => e,
      );
    expect(String(err)).toMatch(/over 16384 bytes/);
    expect((await storedRecords(shard)).length).toBe(before);
  });
});
