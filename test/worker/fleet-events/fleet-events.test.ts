import { evictDurableObject, runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { EventStreamControl, FleetEvent, MAX_EVENT_OUTPUT_CHARS } from "../../../schemas/index.ts";
import { OffsetClock, systemClock } from "../../../worker/clock.ts";
import { DEFAULT_HISTORY, type SubscriberAttachment } from "../../../worker/fleet-events/context.ts";
import type { FleetEvents } from "../../../worker/fleet-events/fleet-events.ts";
import { waitFor } from "../helpers.ts";
import { type EventStream, fleetStub, hostEvent, inStore, publish, requestStream, streamOpener, sync } from "./stream-client.ts";

const stream = streamOpener();

const uuid = () => crypto.randomUUID();

/** A command.state event with its own message_id, so each one is recognisable. */
function stateEvent(hostId: string, extra: Record<string, unknown> = {}) {
  return hostEvent(hostId, "command.state", { message_id: uuid(), state: "queued", ...extra });
}

/** Subscribers currently attached to the object, by attachment. */
function subscribers(): Promise<SubscriberAttachment[]> {
  return runInDurableObject(fleetStub(), (_instance, state) =>
    state.getWebSockets("subscriber").map((ws) => ws.deserializeAttachment() as SubscriberAttachment),
  );
}

describe("subscribing", () => {
  it("a new subscriber gets ready with the epoch and newest offset, then live events only", async () => {
    const host = uuid();
    const before = stateEvent(host);
    await publish(before);
    const s = await stream(`hosts=${host}`);
    const ready = s.control();
    expect(EventStreamControl.parse(ready)).toEqual({ type: "ready", epoch: expect.any(String), offset: expect.any(Number) });
    const head = await inStore((store) => ({ epoch: store.epoch(), head: store.head() }));
    expect(ready).toEqual({ type: "ready", epoch: head.epoch, offset: head.head });

    const live = stateEvent(host, { state: "delivered", attempt: 1, detail: null, tags: ["web"] });
    await publish(live);
    const got = await s.next((f) => f.message_id === live.message_id);
    expect(FleetEvent.parse(got)).toEqual(got);
    expect(got).toEqual({ ...live, offset: ready.offset + 1, epoch: ready.epoch });
    // The event published before it connected was not replayed: a new subscriber starts live.
    expect(s.frames.map((f) => f.message_id ?? f.type)).toEqual(["ready", live.message_id]);
  });

  it("stamps offsets one apart, in the order the batch was published", async () => {
    const host = uuid();
    const s = await stream(`hosts=${host}`);
    const batch = [stateEvent(host), hostEvent(host, "host.offline"), stateEvent(host, { state: "running" })];
    await publish(...batch);
    await s.next((f) => f.message_id === batch[2]!.message_id);
    const events = s.events();
    expect(events.map((e) => e.type)).toEqual(["command.state", "host.offline", "command.state"]);
    const first = s.control().offset + 1;
    expect(events.map((e) => e.offset)).toEqual([first, first + 1, first + 2]);
  });

  it("skips invalid events in a batch and stores the valid ones", async () => {
    const host = uuid();
    const s = await stream(`hosts=${host}`);
    const good = stateEvent(host);
    const bad = [
      { ...stateEvent(host), type: "host.rebooted" },
      { ...stateEvent(host), at: "yesterday" },
      { ...stateEvent(host), message_id: "not-a-uuid" },
    ];
    await fleetStub().publish([...bad, good] as never);
    const got = await s.next((f) => f.message_id === good.message_id);
    expect(got.offset).toBe(s.control().offset + 1);
    expect(s.events()).toHaveLength(1);
  });

  it("cuts command output longer than MAX_EVENT_OUTPUT_CHARS and says so", async () => {
    const host = uuid();
    const s = await stream(`hosts=${host}`);
    const long = hostEvent(host, "command.output", { message_id: uuid(), output: "x".repeat(MAX_EVENT_OUTPUT_CHARS + 10), seq: 3 });
    const short = hostEvent(host, "command.output", { message_id: uuid(), output: "ok\n", seq: 4 });
    await publish(long, short);
    const cut = await s.next((f) => f.message_id === long.message_id);
    expect(cut.output).toHaveLength(MAX_EVENT_OUTPUT_CHARS);
    expect(cut.output_truncated).toBe(true);
    const whole = await s.next((f) => f.message_id === short.message_id);
    expect(whole.output).toBe("ok\n");
    expect(whole).not.toHaveProperty("output_truncated");
  });

  it("answers ping with pong and ignores anything else a subscriber sends", async () => {
    const host = uuid();
    const s = await stream(`hosts=${host}`);
    s.ws.send("ping");
    await s.next((f) => f === "pong");
    s.ws.send(JSON.stringify({ type: "subscribe", hosts: [] }));
    s.ws.send("hello?");
    const marker = await sync(s, stateEvent(host));
    expect(s.closed).toBeNull();
    expect(s.frames).toEqual([s.control(), "pong", marker]);
  });
});

describe("filters", () => {
  it("hosts, types, tags and jobs each narrow the stream; lists combine with AND, values with OR", async () => {
    const [h1, h2, h3] = [uuid(), uuid(), uuid()];
    const [j1, j2] = [uuid(), uuid()];
    const streams = {
      hosts: await stream(`hosts=${h1},${h2.toUpperCase()}`),
      types: await stream(`types=host.offline,command.output&hosts=${[h1, h2, h3].join(",")}`),
      tags: await stream(`tags=web,edge&hosts=${[h1, h2, h3].join(",")}`),
      jobs: await stream(`jobs=${j1}`),
      all: await stream(`hosts=${[h1, h2, h3].join(",")}`),
    };
    const e = {
      h1State: stateEvent(h1, { tags: ["web", "db"], job_id: j1 }),
      h2Offline: hostEvent(h2, "host.offline", { message_id: uuid(), tags: ["db"] }),
      h3Output: hostEvent(h3, "command.output", { message_id: uuid(), tags: ["edge"], output: "hi", seq: 0, job_id: j2 }),
      h3Untagged: stateEvent(h3, { job_id: j1 }),
      jobProgress: {
        type: "job.progress" as const,
        at: new Date().toISOString(),
        job_id: j1,
        message_id: uuid(),
        state: "running",
        counts: { running: 1 },
        errors: 0,
        completion: 0.5,
      },
      otherHost: stateEvent(uuid(), { tags: ["web"], job_id: j2 }),
    };
    await publish(...Object.values(e));
    // A last event every stream matches: once it arrives, everything before it has too.
    const marker = { ...stateEvent(h1, { tags: ["web"], job_id: j1 }), type: "host.offline" as const };
    for (const s of Object.values(streams)) await sync(s, marker);

    const got = (s: EventStream) => s.events((f) => f.type !== "host.offline" || f.host_id !== h1).map((f) => f.message_id);
    expect(got(streams.hosts)).toEqual([e.h1State.message_id, e.h2Offline.message_id]);
    expect(got(streams.types)).toEqual([e.h2Offline.message_id, e.h3Output.message_id]);
    expect(got(streams.tags)).toEqual([e.h1State.message_id, e.h3Output.message_id]);
    expect(got(streams.jobs)).toEqual([e.h1State.message_id, e.h3Untagged.message_id, e.jobProgress.message_id]);
    expect(got(streams.all)).toEqual([e.h1State, e.h2Offline, e.h3Output, e.h3Untagged].map((x) => x.message_id));
  });

  it("keeps each subscriber's filters in its socket attachment", async () => {
    const host = uuid();
    await stream(`hosts=${host}&types=command.state&tags=web`);
    const mine = (await subscribers()).filter((a) => a.filter?.hosts?.includes(host));
    expect(mine).toHaveLength(1);
    expect(mine[0]).toMatchObject({
      id: expect.any(String),
      connectedAt: expect.any(Number),
      filter: { hosts: [host], types: ["command.state"], tags: ["web"] },
    });
    expect(mine[0]!.filter).not.toHaveProperty("jobs");
  });
});

describe("resuming", () => {
  it("after a disconnect, gets exactly the missed events matching its filters, in order, then ready, then live", async () => {
    const [host, other] = [uuid(), uuid()];
    const first = await stream(`hosts=${host}`);
    const seen = [stateEvent(host), stateEvent(host, { state: "delivered" })];
    await publish(...seen);
    const last = await first.next((f) => f.message_id === seen[1]!.message_id);
    const { epoch } = first.control();
    first.close();
    await first.waitClose();

    const missed = [
      stateEvent(host, { state: "running" }),
      stateEvent(other),
      hostEvent(host, "command.output", { message_id: uuid(), output: "a", seq: 0 }),
    ];
    await publish(...missed);
    await publish(stateEvent(host, { state: "succeeded" }));

    const again = await stream(`hosts=${host}&after=${last.offset}&epoch=${epoch}`);
    const head = await inStore((store) => store.head());
    const replay = again.frames.slice(0, 4);
    expect(replay.map((f) => f.type)).toEqual(["command.state", "command.output", "command.state", "ready"]);
    expect(replay.slice(0, 2).map((f) => f.message_id)).toEqual([missed[0]!.message_id, missed[2]!.message_id]);
    expect(replay[2].state).toBe("succeeded");
    expect(replay[3]).toEqual({ type: "ready", epoch, offset: head });
    const offsets = replay.slice(0, 3).map((f) => f.offset);
    expect(offsets).toEqual([...offsets].sort((a, b) => a - b));
    expect(offsets[0]).toBeGreaterThan(last.offset);

    const live = stateEvent(host, { state: "cancelled" });
    await publish(live);
    const got = await again.next((f) => f.message_id === live.message_id);
    expect(got.offset).toBe(head + 1);
    expect(again.frames.indexOf(got)).toBe(4);
  });

  it("resuming at the newest offset replays nothing", async () => {
    const host = uuid();
    await publish(stateEvent(host));
    const { epoch, head } = await inStore((store) => ({ epoch: store.epoch(), head: store.head() }));
    const s = await stream(`hosts=${host}&after=${head}&epoch=${epoch}`);
    expect(s.frames).toEqual([{ type: "ready", epoch, offset: head }]);
  });

  it("a resume older than the retained history is told to refetch, then gets live events", async () => {
    const host = uuid();
    const s = await stream(`hosts=${host}`);
    const events = [stateEvent(host), stateEvent(host), stateEvent(host)];
    await publish(...events);
    const got = await Promise.all(events.map((e) => s.next((f) => f.message_id === e.message_id)));
    const { epoch } = s.control();
    s.close();
    const newest = stateEvent(host, { state: "running" });
    await publish(newest);

    // Shrink the history to its newest event: the three above are pruned.
    const prunedThrough = await inStore((store) => {
      store.prune(Date.now(), { maxEvents: 1, maxAgeMs: DEFAULT_HISTORY.maxAgeMs });
      return store.prunedThrough();
    });
    expect(prunedThrough).toBe(got[2].offset);

    const late = await stream(`hosts=${host}&after=${got[0].offset}&epoch=${epoch}`);
    expect(late.frames).toEqual([{ type: "refetch", epoch, offset: prunedThrough + 1, reason: "history_pruned" }]);
    const live = stateEvent(host);
    await publish(live);
    await late.next((f) => f.message_id === live.message_id);
    expect(late.events().map((f) => f.message_id)).toEqual([live.message_id]);

    // Exactly at the pruned boundary the history still covers it.
    const edge = await stream(`hosts=${host}&after=${prunedThrough}&epoch=${epoch}`);
    expect(edge.types()).toEqual(["command.state", "command.state", "ready"]);
    expect(edge.frames.slice(0, 2).map((f) => f.message_id)).toEqual([newest.message_id, live.message_id]);
  });

  it("a resume from another epoch is told to refetch", async () => {
    const host = uuid();
    await publish(stateEvent(host));
    const { epoch, head } = await inStore((store) => ({ epoch: store.epoch(), head: store.head() }));
    const s = await stream(`hosts=${host}&after=1&epoch=${uuid()}`);
    expect(s.frames).toEqual([{ type: "refetch", epoch, offset: head, reason: "epoch_changed" }]);
    const live = stateEvent(host);
    await publish(live);
    await s.next((f) => f.message_id === live.message_id);
  });

  it("a resume from past the newest offset is told to refetch", async () => {
    const { epoch, head } = await inStore((store) => ({ epoch: store.epoch(), head: store.head() }));
    const s = await stream(`after=${head + 5}&epoch=${epoch}`);
    expect(s.frames).toEqual([{ type: "refetch", epoch, offset: head, reason: "offset_ahead" }]);
  });
});

describe("history bounds", () => {
  it("prunes by count and by age, oldest first, keeping a contiguous run of offsets", async () => {
    const host = uuid();
    await publish(stateEvent(host), stateEvent(host), stateEvent(host), stateEvent(host));
    const result = await inStore((store, state) => {
      const head = store.head();
      store.prune(Date.now(), { maxEvents: 3, maxAgeMs: DEFAULT_HISTORY.maxAgeMs });
      const afterCount = {
        pruned: store.prunedThrough(),
        kept: state.storage.sql.exec<{ n: number }>("SELECT COUNT(*) AS n FROM events").one().n,
      };
      // Age: only the middle row is past the bound (its clock ran behind); the older one before it
      // goes too, so no hole opens in the offsets.
      const day = 86_400_000;
      state.storage.sql.exec('UPDATE events SET at = at - ? WHERE "offset" = ?', day + 3_600_000, head - 1);
      const removed = store.prune(Date.now(), { maxEvents: 3, maxAgeMs: day });
      const offsets = state.storage.sql
        .exec<{ offset: number }>('SELECT "offset" FROM events ORDER BY "offset"')
        .toArray()
        .map((r) => r.offset);
      return { head, afterCount, removed, offsets, prunedThrough: store.prunedThrough(), headAfter: store.head() };
    });
    expect(result.afterCount).toEqual({ pruned: result.head - 3, kept: 3 });
    expect(result.removed).toBe(2);
    expect(result.offsets).toEqual([result.head]);
    expect(result.prunedThrough).toBe(result.head - 1);
    expect(result.headAfter).toBe(result.head);
  });

  it("keeps handing out higher offsets after every row was pruned", async () => {
    const host = uuid();
    await publish(stateEvent(host));
    const head = await inStore((store) => {
      store.prune(Date.now() + 2 * DEFAULT_HISTORY.maxAgeMs, DEFAULT_HISTORY);
      return store.head();
    });
    const s = await stream(`hosts=${host}`);
    expect(s.control().offset).toBe(head);
    const next = stateEvent(host);
    await publish(next);
    expect((await s.next((f) => f.message_id === next.message_id)).offset).toBe(head + 1);
  });

  it("the alarm prunes events past the age bound even when nothing is published", async () => {
    const host = uuid();
    await publish(stateEvent(host));
    const { alarm, oldest } = await inStore(async (store, state) => ({ alarm: await state.storage.getAlarm(), oldest: store.oldestAt() }));
    expect(alarm).toBe(oldest! + DEFAULT_HISTORY.maxAgeMs);

    // Time moves through the object's injected clock, not by rewriting stored times.
    await runInDurableObject(fleetStub(), (instance: FleetEvents) => {
      const clock = new OffsetClock();
      clock.offsetMs = DEFAULT_HISTORY.maxAgeMs;
      (instance as unknown as { ec: { clock: OffsetClock } }).ec.clock = clock;
    });
    expect(await runDurableObjectAlarm(fleetStub())).toBe(true);
    const after = await inStore(async (store, state) => ({
      kept: state.storage.sql.exec<{ n: number }>("SELECT COUNT(*) AS n FROM events").one().n,
      pruned: store.prunedThrough(),
      head: store.head(),
      alarm: await state.storage.getAlarm(),
    }));
    expect(after.kept).toBe(0);
    expect(after.pruned).toBe(after.head);
    expect(after.alarm).toBeNull();
    // The one FleetEvents instance serves the rest of this file: give it real time back.
    await runInDurableObject(fleetStub(), (instance: FleetEvents) => {
      (instance as unknown as { ec: { clock: typeof systemClock } }).ec.clock = systemClock;
    });
  });

  it("has one epoch for the life of its storage, across evictions", async () => {
    const epoch = await inStore((store) => store.epoch());
    expect(epoch).toMatch(/^[0-9a-f-]{36}$/);
    await evictDurableObject(fleetStub());
    expect(await inStore((store) => store.epoch())).toBe(epoch);
  });
});

describe("subscribers", () => {
  it("keep receiving across hibernation, with their filters", async () => {
    const [host, other] = [uuid(), uuid()];
    const s = await stream(`hosts=${host}`);
    const before = stateEvent(host);
    await publish(before);
    await s.next((f) => f.message_id === before.message_id);

    await evictDurableObject(fleetStub());
    const ignored = stateEvent(other);
    const after = stateEvent(host, { state: "running" });
    await publish(ignored, after);
    const got = await s.next((f) => f.message_id === after.message_id);
    expect(got.offset).toBe(await inStore((store) => store.head()));
    expect(s.events().map((f) => f.message_id)).toEqual([before.message_id, after.message_id]);

    await evictDurableObject(fleetStub());
    s.ws.send("ping");
    await s.next((f) => f === "pong");
  });

  it("a subscriber that closes is dropped without affecting the others", async () => {
    const host = uuid();
    const [leaving, staying] = [await stream(`hosts=${host}`), await stream(`hosts=${host}`)];
    expect((await subscribers()).filter((a) => a.filter?.hosts?.includes(host))).toHaveLength(2);
    leaving.close();
    expect((await leaving.waitClose()).code).toBe(1000);
    await waitFor(subscribers, (subs) => subs.filter((a) => a.filter?.hosts?.includes(host)).length === 1);

    const next = stateEvent(host);
    await publish(next);
    await staying.next((f) => f.message_id === next.message_id);
    expect(leaving.events()).toEqual([]);
  });

  it("a subscriber whose socket errors is closed and the others keep receiving", async () => {
    const [h1, h2] = [uuid(), uuid()];
    const [broken, fine] = [await stream(`hosts=${h1}`), await stream(`hosts=${h2}`)];
    await runInDurableObject(fleetStub(), async (instance: FleetEvents, state) => {
      const ws = state
        .getWebSockets("subscriber")
        .find((w) => (w.deserializeAttachment() as SubscriberAttachment).filter?.hosts?.includes(h1));
      await instance.webSocketError(ws!);
    });
    expect((await broken.waitClose()).code).toBe(1011);
    const next = stateEvent(h2);
    await publish(next, stateEvent(h1));
    await fine.next((f) => f.message_id === next.message_id);
    expect(broken.events()).toEqual([]);
  });

  it("a subscriber that never reads does not hold back the others", async () => {
    const host = uuid();
    // Upgraded but never accepted on the client side: nothing sent to it is ever read.
    const stalled = await requestStream(`hosts=${host}`);
    expect(stalled.status).toBe(101);
    const reader = await stream(`hosts=${host}`);
    const batch = Array.from({ length: 200 }, () =>
      hostEvent(host, "command.output", { message_id: uuid(), output: "y".repeat(4096), seq: 0 }),
    );
    await publish(...batch);
    await reader.next((f) => f.message_id === batch[199]!.message_id);
    expect(reader.events().map((f) => f.message_id)).toEqual(batch.map((e) => e.message_id));
    stalled.webSocket!.accept();
    stalled.webSocket!.close(1000, "bye");
  });
});

describe("idempotent publishing", () => {
  it("a batch published twice with source keys is stored once, in order, and a subscriber sees each event once", async () => {
    const host = uuid();
    const source = `HostRelay:${host}`;
    const s = await stream(`hosts=${host}`);
    const events = [stateEvent(host), stateEvent(host, { state: "delivered" }), hostEvent(host, "host.offline")];
    const batch = events.map((e, i) => ({ ...e, source, source_seq: 10 + i }));
    const headBefore = await inStore((store) => store.head());

    await fleetStub().publish(batch);
    // The reply was lost: the publisher sends the same batch again, then a partly overlapping one.
    await fleetStub().publish(batch);
    const next = stateEvent(host, { state: "running" });
    await fleetStub().publish([batch[2]!, { ...next, source, source_seq: 13 }]);
    await s.next((f) => f.message_id === next.message_id);
    // Published last, so a sync point: everything before it has been fanned out.
    const marker = stateEvent(host, { state: "succeeded" });
    await publish(marker);
    await s.next((f) => f.message_id === marker.message_id);

    const seen = s.events();
    expect(seen.map((e) => e.message_id ?? e.type)).toEqual([...events, next, marker].map((e) => e.message_id ?? e.type));
    expect(seen.map((e) => e.offset)).toEqual([1, 2, 3, 4, 5].map((n) => headBefore + n));
    // Source keys are bookkeeping: neither stored in the event nor sent.
    for (const e of seen) expect(e).not.toHaveProperty("source");
    const stored = await inStore((store) => [...store.after(headBefore)]);
    expect(stored.map((e) => e.message_id ?? e.type)).toEqual(seen.map((e) => e.message_id ?? e.type));
    for (const e of stored) expect(e).not.toHaveProperty("source_seq");
  });

  it("sources are independent, and events without a source key are never deduplicated", async () => {
    const host = uuid();
    const s = await stream(`hosts=${host}`);
    const a = { ...stateEvent(host), source: `HostRelay:${host}`, source_seq: 1 };
    const b = { ...stateEvent(host), source: `JobCoordinator:${uuid()}`, source_seq: 1 };
    const plain = stateEvent(host);
    await fleetStub().publish([a, b, plain]);
    await fleetStub().publish([a, b, plain]);
    await s.next((f) => s.events().filter((e) => e.message_id === plain.message_id).length === 2 && f.message_id === plain.message_id);
    expect(s.events().map((e) => e.message_id)).toEqual([a.message_id, b.message_id, plain.message_id, plain.message_id]);
  });
});
