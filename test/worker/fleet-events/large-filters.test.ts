import { evictDurableObject, runInDurableObject } from "cloudflare:test";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { EventFilterLimits, type FleetEventInput } from "../../../schemas/index.ts";
import type { SubscriberAttachment } from "../../../worker/fleet-events/context.ts";
import { SubscriberIndex } from "../../../worker/fleet-events/subscriber-index.ts";
import { matches } from "../../../worker/fleet-events/subscribers.ts";
import { type EventStream, fleetStub, hostEvent, inStore, publish, requestStream, streamOpener, sync } from "./stream-client.ts";

const stream = streamOpener();

const uuid = () => crypto.randomUUID();
const uuids = (n: number) => Array.from({ length: n }, uuid);

function stateEvent(hostId: string, extra: Partial<FleetEventInput> = {}): FleetEventInput {
  return hostEvent(hostId, "command.state", { message_id: uuid(), state: "queued", ...extra });
}

/** Each subscriber's attachment, and the ids with a stored filter. */
function subscriberState(): Promise<{ attachments: SubscriberAttachment[]; stored: string[] }> {
  return runInDurableObject(fleetStub(), (_instance, state) => ({
    attachments: state.getWebSockets("subscriber").map((ws) => ws.deserializeAttachment() as SubscriberAttachment),
    stored: state.storage.sql
      .exec<{ id: string }>("SELECT id FROM subscriber_filters")
      .toArray()
      .map((r) => r.id),
  }));
}

describe("filters up to the raised limits", () => {
  it("follows 1,000 hosts: the filter goes to storage, not the attachment, and only those hosts' events arrive", async () => {
    expect(EventFilterLimits).toEqual({ hosts: 1000, jobs: 100, tags: 100 });
    const hosts = uuids(EventFilterLimits.hosts);
    const s = await stream(`hosts=${hosts.join(",")}`);
    const { attachments, stored } = await subscriberState();
    const mine = attachments.filter((a) => stored.includes(a.id));
    expect(mine).toHaveLength(1);
    expect(mine[0]!.filter).toBeUndefined();

    const outsider = stateEvent(uuid());
    const [first, last] = [stateEvent(hosts[0]!), stateEvent(hosts[999]!)];
    await publish(outsider, first, last);
    await s.next((f) => f.message_id === last.message_id);
    expect(s.events().map((f) => f.message_id)).toEqual([first.message_id, last.message_id]);
  });

  it("accepts 100 jobs and 100 tags, and refuses one more of each (and 1,001 hosts) with 400", async () => {
    const jobs = uuids(100);
    const tags = Array.from({ length: 100 }, (_, i) => `tag-${i}`);
    const byJob = await stream(`jobs=${jobs.join(",")}`);
    const byTag = await stream(`tags=${tags.join(",")}`);
    const host = uuid();
    const jobEvent = stateEvent(host, { job_id: jobs[99] });
    const tagEvent = stateEvent(host, { tags: ["elsewhere", "tag-99"] });
    await publish(stateEvent(host, { job_id: uuid(), tags: ["elsewhere"] }), jobEvent, tagEvent);
    await byJob.next((f) => f.message_id === jobEvent.message_id);
    await byTag.next((f) => f.message_id === tagEvent.message_id);
    expect(byJob.events().map((f) => f.message_id)).toEqual([jobEvent.message_id]);
    expect(byTag.events().map((f) => f.message_id)).toEqual([tagEvent.message_id]);

    for (const query of [`jobs=${uuids(101).join(",")}`, `tags=${[...tags, "tag-100"].join(",")}`, `hosts=${uuids(1001).join(",")}`]) {
      const res = await requestStream(query);
      expect(res.status).toBe(400);
      await res.body?.cancel();
    }
  });

  it("a stored filter is deleted when its subscriber goes", async () => {
    const s = await stream(`hosts=${uuids(200).join(",")}`);
    const id = (await subscriberState()).stored.find((x) => x !== undefined)!;
    expect(id).toBeDefined();
    s.close();
    await s.waitClose();
    const deadline = Date.now() + 5000;
    let stored = (await subscriberState()).stored;
    while (stored.includes(id) && Date.now() < deadline) stored = (await subscriberState()).stored;
    expect(stored).not.toContain(id);
  });
});

describe("the subscriber index after hibernation", () => {
  it("is rebuilt from attachments and stored filters: every kind of subscriber gets what it did before", async () => {
    const hosts = uuids(500);
    const job = uuid();
    const big = await stream(`hosts=${hosts.join(",")}&types=command.state`);
    const small = await stream(`hosts=${hosts[7]}`);
    const byJob = await stream(`jobs=${job}`);
    const byTag = await stream(`tags=rack-9`);
    const all = await stream("");

    await evictDurableObject(fleetStub());
    const events = [
      stateEvent(hosts[7]!, { job_id: job }),
      hostEvent(hosts[7]!, "host.offline"),
      stateEvent(hosts[499]!, { tags: ["rack-9"] }),
      stateEvent(uuid(), { tags: ["rack-1"] }),
    ];
    await publish(...events);
    const last = events.at(-1)!;
    await all.next((f) => f.message_id === last.message_id);
    const [m0, off, m2, m3] = events.map((e) => e.message_id ?? e.type);
    await sync(big, stateEvent(hosts[0]!));
    await sync(small, stateEvent(hosts[7]!));
    await sync(byJob, stateEvent(uuid(), { job_id: job }));
    await sync(byTag, stateEvent(uuid(), { tags: ["rack-9"] }));
    const ids = (s: EventStream) => s.events().map((f) => f.message_id ?? f.type);
    expect(ids(big).slice(0, 2)).toEqual([m0, m2]);
    expect(ids(small).slice(0, 2)).toEqual([m0, off]);
    expect(ids(byJob).slice(0, 1)).toEqual([m0]);
    expect(ids(byTag).slice(0, 1)).toEqual([m2]);
    expect(ids(all).slice(0, 4)).toEqual([m0, off, m2, m3]);
  });

  it("sweeps stored filters whose sockets went while the object slept", async () => {
    const ghost = uuid();
    await inStore((store) => store.saveFilter(ghost, { hosts: uuids(100) }));
    await evictDurableObject(fleetStub());
    // The next subscriber (or event) wakes it and builds the index.
    await stream(`hosts=${uuid()}`);
    expect((await subscriberState()).stored).not.toContain(ghost);
  });
});

describe("resume with a large filter", () => {
  it("replays only matching events after the offset, then ready; another epoch gets refetch", async () => {
    const hosts = uuids(800);
    const first = await stream(`hosts=${hosts.join(",")}`);
    const seen = stateEvent(hosts[1]!);
    await publish(seen);
    const got = await first.next((f) => f.message_id === seen.message_id);
    first.close();
    await first.waitClose();

    const missed = [stateEvent(hosts[2]!), stateEvent(uuid()), stateEvent(hosts[799]!)];
    await publish(...missed);
    const head = await inStore((store) => store.head());
    await evictDurableObject(fleetStub());
    const resumed = await stream(`hosts=${hosts.join(",")}&after=${got.offset}&epoch=${got.epoch}`);
    expect(resumed.types()).toEqual(["command.state", "command.state", "ready"]);
    expect(resumed.events().map((f) => f.message_id)).toEqual([missed[0]!.message_id, missed[2]!.message_id]);
    expect(resumed.control()).toEqual({ type: "ready", epoch: got.epoch, offset: head });

    const other = await stream(`hosts=${hosts.join(",")}&after=${got.offset}&epoch=not-this-one`);
    expect(other.control()).toEqual({ type: "refetch", epoch: got.epoch, offset: head, reason: "epoch_changed" });
  });
});

describe("SubscriberIndex", () => {
  it("finds exactly the subscribers whose filters match, each once (against the plain filter check)", () => {
    const hosts = uuids(4);
    const jobs = uuids(3);
    const tags = ["a", "b", "c"];
    const types = ["command.state", "host.online"] as const;
    const list = <T>(values: readonly T[]) => fc.option(fc.uniqueArray(fc.constantFrom(...values), { minLength: 1 }), { nil: undefined });
    const filter = fc.record({ hosts: list(hosts), jobs: list(jobs), tags: list(tags), types: list(types) });
    const event = fc.record({
      type: fc.constantFrom(...types),
      host_id: fc.option(fc.constantFrom(...hosts), { nil: undefined }),
      job_id: fc.option(fc.constantFrom(...jobs), { nil: undefined }),
      tags: fc.option(fc.uniqueArray(fc.constantFrom(...tags)), { nil: undefined }),
    });
    fc.assert(
      fc.property(fc.array(filter, { maxLength: 8 }), fc.array(event, { maxLength: 8 }), fc.nat(8), (filters, events, removeAt) => {
        const index = new SubscriberIndex();
        const ws = new WebSocketPair()[0];
        const clean = filters.map((f) => Object.fromEntries(Object.entries(f).filter(([, v]) => v !== undefined)));
        clean.forEach((f, i) => index.add(ws, String(i), f));
        index.remove(String(removeAt));
        for (const e of events) {
          const input = { at: "2026-01-01T00:00:00Z", ...Object.fromEntries(Object.entries(e).filter(([, v]) => v !== undefined)) };
          const got = index
            .matching(input as FleetEventInput)
            .map((s) => s.id)
            .sort();
          const want = clean
            .map((f, i) => [f, String(i)] as const)
            .filter(([f, id]) => id !== String(removeAt) && matches(f, input as FleetEventInput))
            .map(([, id]) => id)
            .sort();
          expect(got).toEqual(want);
        }
      }),
    );
  });
});
