/**
 * FleetEvents' aggregation, driven through its RPC methods: exactly-once per (source, seq) apart
 * from the events' watermark, invalid deltas dropped, per-source gauges summed, the minute series
 * under an injected ManualClock (kept an hour, then pruned), job states from job.progress events,
 * and Analytics Engine writes when a dataset is bound.
 */
import { runInDurableObject } from "cloudflare:test";
import { afterEach, describe, expect, it } from "vitest";
import { nowRfc3339 } from "../../../schemas/index.ts";
import { type Clock, ManualClock, systemClock } from "../../../worker/clock.ts";
import type { MetricsContext } from "../../../worker/metrics/aggregate.ts";
import { M } from "../../../worker/metrics/catalogue.ts";
import { LATENCY_BUCKETS_S } from "../../../worker/metrics/contract.ts";
import { BUCKET_COUNT, DeltaWriter, MINUTE_MS } from "../../../worker/metrics/delta.ts";
import { seriesKey } from "../../../worker/metrics/series.ts";
import { counterOf, fleet, gaugeOf, snapshot } from "./metrics-helpers.ts";

type Internals = { ec: { clock: Clock; metrics: MetricsContext } };

function withFleet<R>(fn: (ec: Internals["ec"]) => R): Promise<R> {
  return runInDurableObject(fleet(), (instance) => fn((instance as unknown as Internals).ec));
}

afterEach(async () => {
  await withFleet((ec) => {
    ec.clock = systemClock;
    ec.metrics.analytics = undefined;
  });
});

const source = () => `test:${crypto.randomUUID()}`;

describe("exactly once per source", () => {
  it("a repeated or older number is dropped; the events' watermark is a separate one", async () => {
    const s = source();
    const before = counterOf(await snapshot(), M.RESENDS);
    const delta = new DeltaWriter().count(M.RESENDS, undefined, 2).delta;
    await fleet().recordMetrics(s, 5, delta);
    await fleet().recordMetrics(s, 5, delta);
    await fleet().recordMetrics(s, 4, delta);
    expect(counterOf(await snapshot(), M.RESENDS)).toBe(before + 2);
    // Events from the same source far ahead do not hold back its metrics.
    await fleet().publish([{ type: "host.online", at: nowRfc3339(), source: s, source_seq: 100 }]);
    await fleet().recordMetrics(s, 6, delta);
    expect(counterOf(await snapshot(), M.RESENDS)).toBe(before + 4);
  });

  it("metrics in a publish batch are applied with its events, once", async () => {
    const s = source();
    const before = counterOf(await snapshot(), M.EXPIRATIONS);
    const batch = {
      events: [{ type: "host.online" as const, at: nowRfc3339(), source: s, source_seq: 1 }],
      metrics: [{ source: s, seq: 2, delta: new DeltaWriter().count(M.EXPIRATIONS).delta }],
    };
    await fleet().publish(batch);
    await fleet().publish(batch);
    expect(counterOf(await snapshot(), M.EXPIRATIONS)).toBe(before + 1);
  });

  it("an invalid delta is dropped whole, without failing the call", async () => {
    const before = await snapshot();
    const bad = [
      { counters: { 'fleet_relay_x_total{a="1\n"}': 1 } },
      { counters: { "not a key": 1 } },
      { histograms: { [seriesKey(M.SEND_TO_ACK)]: { buckets: [1, 2], sum: 1 } } },
      { counters: { [seriesKey(M.RESENDS)]: -5 } },
      { counters: { [seriesKey(M.RESENDS)]: 1 }, extra: true },
    ];
    let seq = 0;
    for (const delta of bad) await fleet().recordMetrics(source(), ++seq, delta as never);
    const after = await snapshot();
    expect(after.counters).toEqual(before.counters);
    expect(after.histograms).toEqual(before.histograms);
  });
});

describe("gauges", () => {
  it("are kept per source and summed; a new value replaces the source's old one", async () => {
    const [a, b] = [source(), source()];
    const key = { state: "queued" };
    const base = gaugeOf(await snapshot(), M.QUEUE_DEPTH, key);
    await fleet().recordMetrics(a, 1, new DeltaWriter().gauge(M.QUEUE_DEPTH, key, 3).delta);
    await fleet().recordMetrics(b, 1, new DeltaWriter().gauge(M.QUEUE_DEPTH, key, 4).delta);
    expect(gaugeOf(await snapshot(), M.QUEUE_DEPTH, key)).toBe(base + 7);
    await fleet().recordMetrics(a, 2, new DeltaWriter().gauge(M.QUEUE_DEPTH, key, 1).delta);
    expect(gaugeOf(await snapshot(), M.QUEUE_DEPTH, key)).toBe(base + 5);
    await fleet().recordMetrics(a, 3, new DeltaWriter().gauge(M.QUEUE_DEPTH, key, 0).delta);
    await fleet().recordMetrics(b, 2, new DeltaWriter().gauge(M.QUEUE_DEPTH, key, 0).delta);
    expect(gaugeOf(await snapshot(), M.QUEUE_DEPTH, key)).toBe(base);
  });
});

describe("the minute series (ManualClock)", () => {
  it("spans the last hour and the current minute, carries online hosts over quiet minutes, and forgets what is older", async () => {
    // A whole minute far from now, so nothing else this file records lands in the minutes looked at.
    const t0 = Math.floor(Date.now() / MINUTE_MS) * MINUTE_MS + 1000 * MINUTE_MS;
    const clock = new ManualClock(t0 + 10_000);
    await withFleet((ec) => {
      ec.clock = clock;
    });
    const [a, b] = [source(), source()];
    const onlineBase = (await fleet().metricsSummary()).series.at(-1)!.online_hosts;

    const first = new DeltaWriter()
      .minuteState(t0 + 5_000, "queued")
      .minuteState(t0 + 6_000, "queued")
      .minuteState(t0 + 7_000, "succeeded")
      .minuteDelivery(t0 + 6_000, 0.02)
      .minuteDeadLetter(t0 + 8_000)
      .gauge(M.AGENTS_CONNECTED, undefined, 1);
    await fleet().recordMetrics(a, 1, first.delta);
    clock.advance(MINUTE_MS);
    await fleet().recordMetrics(b, 1, new DeltaWriter().gauge(M.AGENTS_CONNECTED, undefined, 1).delta);
    clock.advance(3 * MINUTE_MS);

    let summary = await fleet().metricsSummary();
    expect(summary.series).toHaveLength(61);
    expect(summary.series.at(-1)!.minute).toBe(t0 + 4 * MINUTE_MS);
    const at = (minute: number) => summary.series.find((p) => p.minute === minute)!;
    expect(at(t0).commands_by_state).toEqual({ queued: 2, succeeded: 1 });
    expect(at(t0).dead_letters_new).toBe(1);
    expect(at(t0).delivery_buckets).toHaveLength(BUCKET_COUNT);
    expect(at(t0).delivery_buckets[LATENCY_BUCKETS_S.indexOf(0.025)]).toBe(1);
    expect(at(t0 - MINUTE_MS).online_hosts).toBe(onlineBase);
    expect(at(t0).online_hosts).toBe(onlineBase + 1);
    expect(at(t0 + MINUTE_MS).online_hosts).toBe(onlineBase + 2);
    // Quiet minutes: no commands, the online count carried over.
    expect(at(t0 + 3 * MINUTE_MS)).toMatchObject({ commands_by_state: {}, dead_letters_new: 0, online_hosts: onlineBase + 2 });
    expect(summary.dead_letters_total).toBeGreaterThanOrEqual(0);

    // An hour and more later the minute has left the series, and its row is pruned at the next write.
    clock.advance(62 * MINUTE_MS);
    await fleet().recordMetrics(a, 2, new DeltaWriter().gauge(M.AGENTS_CONNECTED, undefined, 0).delta);
    summary = await fleet().metricsSummary();
    expect(summary.series.some((p) => p.minute === t0)).toBe(false);
    expect(summary.series.every((p) => Object.keys(p.commands_by_state).length === 0)).toBe(true);
    const kept = await runInDurableObject(
      fleet(),
      (_i, state) => state.storage.sql.exec<{ n: number }>("SELECT COUNT(*) AS n FROM metric_minutes WHERE minute = ?", t0).one().n,
    );
    expect(kept).toBe(0);
    await fleet().recordMetrics(b, 2, new DeltaWriter().gauge(M.AGENTS_CONNECTED, undefined, 0).delta);
  });
});

describe("jobs", () => {
  it("follows job.progress: jobs by state, a final state once, recent final jobs", async () => {
    const job = crypto.randomUUID();
    const progress = (state: string, seq: number) =>
      fleet().publish([{ type: "job.progress", at: nowRfc3339(), job_id: job, state, source: `JobCoordinator:${job}`, source_seq: seq }]);
    const before = await snapshot();
    await progress("running", 1);
    expect(gaugeOf(await snapshot(), M.JOBS, { state: "running" })).toBe(gaugeOf(before, M.JOBS, { state: "running" }) + 1);
    await progress("completed", 2);
    await progress("completed", 3);
    const after = await snapshot();
    expect(gaugeOf(after, M.JOBS, { state: "running" })).toBe(gaugeOf(before, M.JOBS, { state: "running" }));
    expect(gaugeOf(after, M.JOBS, { state: "completed" })).toBe(gaugeOf(before, M.JOBS, { state: "completed" }) + 1);
    expect(counterOf(after, M.JOBS_FINISHED, { state: "completed" }) - counterOf(before, M.JOBS_FINISHED, { state: "completed" })).toBe(1);
    const summary = await fleet().metricsSummary();
    expect(summary.recent_final_jobs.filter((j) => j.job_id === job)).toEqual([
      { job_id: job, state: "completed", at: expect.any(Number) },
    ]);
  });
});

describe("Analytics Engine", () => {
  it("receives every counter increment (metric name and labels as blobs, the increment as a double) when bound", async () => {
    await withFleet((ec) => {
      const points: AnalyticsEngineDataPoint[] = [];
      ec.metrics.analytics = { writeDataPoint: (p?: AnalyticsEngineDataPoint) => void points.push(p!) };
      (globalThis as { __points?: AnalyticsEngineDataPoint[] }).__points = points;
    });
    await fleet().recordMetrics(source(), 1, new DeltaWriter().count(M.COMMANDS_ENQUEUED, { command_type: "shell" }, 3).delta);
    const points = await withFleet(() => (globalThis as { __points?: AnalyticsEngineDataPoint[] }).__points ?? []);
    expect(points).toEqual([{ indexes: [M.COMMANDS_ENQUEUED], blobs: [M.COMMANDS_ENQUEUED, 'command_type="shell"'], doubles: [3] }]);
  });
});
