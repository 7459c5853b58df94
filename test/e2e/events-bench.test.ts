/**
 * A reduced run of the live-events benchmark (bench/events.ts; its full run is `npm run bench:events`),
 * so the path does not rot: a fresh relay, 3 subscribers and one that never reads, two small rate
 * steps through the test-only publish route. Asserts what was delivered and how the slow subscriber
 * ended, never how fast.
 */
import { expect, it } from "vitest";
import { benchEvents } from "../../bench/events.ts";

it("delivers every published event to every reading subscriber; the one that never reads is closed (4008)", async () => {
  const f = await benchEvents({ subscribers: [3], rates: [50, 100], stepSeconds: 1, batch: 10 });
  expect(f.steps.length).toBeGreaterThanOrEqual(1);
  for (const s of f.steps) {
    expect(s.subscribers).toBe(3);
    expect(s.accepted).toBeGreaterThan(0);
    expect(s.complete).toBe(true);
    expect(s.latency.n).toBeGreaterThanOrEqual(s.accepted * 3);
  }
  expect(f.slowSubscriber[3]).toMatch(/^4008 /);
}, 120_000);

it("with host filters, every subscriber gets exactly the events of the hosts it follows", async () => {
  const f = await benchEvents({ subscribers: [3], rates: [100], stepSeconds: 1, batch: 10, filterHosts: 30 });
  const [s] = f.steps;
  expect(s!.filterHosts).toBe(30);
  expect(s!.complete).toBe(true);
  // 30 of 100 hosts, the events spread evenly over them: well under every event, well over none.
  expect(s!.deliveredMax).toBeLessThan(s!.published);
  expect(s!.deliveredMin).toBeGreaterThan(0);
}, 120_000);
