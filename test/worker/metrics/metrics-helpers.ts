/** Helpers for the metrics tests: read FleetEvents' aggregate, wait for a relay's outbox to drain, scrape /metrics. */
import { runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { expect } from "vitest";
import type { HostRelay } from "../../../worker/host-relay/host-relay.ts";
import type { MetricsSnapshot } from "../../../worker/metrics/aggregate.ts";
import type { Labels } from "../../../worker/metrics/contract.ts";
import { seriesKey } from "../../../worker/metrics/series.ts";
import type { FaultName } from "../../../worker/test-faults.ts";
import { api, relayStub } from "../helpers.ts";
import { sql } from "../host-relay/relay-helpers.ts";

export function fleet() {
  return env.FLEET_EVENTS.get(env.FLEET_EVENTS.idFromName("fleet"));
}

export function snapshot(): Promise<MetricsSnapshot> {
  return fleet().metricsSnapshot();
}

export function counterOf(s: MetricsSnapshot, name: string, labels?: Labels): number {
  return s.counters[seriesKey(name, labels)] ?? 0;
}

export function histogramCount(s: MetricsSnapshot, name: string, labels?: Labels): number {
  return s.histograms[seriesKey(name, labels)]?.count ?? 0;
}

export function gaugeOf(s: MetricsSnapshot, name: string, labels?: Labels): number {
  return s.gauges[seriesKey(name, labels)] ?? 0;
}

/** Waits (bounded) until the relay's outbox holds nothing: every event and metrics row was delivered. */
export async function drained(hostId: string, timeoutMs = 10_000): Promise<number> {
  const started = Date.now();
  while (((await sql(hostId, "SELECT COUNT(*) AS n FROM outbox"))[0]!.n as number) > 0) {
    if (Date.now() - started > timeoutMs) throw new Error("outbox not drained");
    await new Promise((r) => setTimeout(r, 10));
  }
  return Date.now() - started;
}

/** Polls the aggregate until `pred` holds (bounded). */
export async function waitForSnapshot(pred: (s: MetricsSnapshot) => boolean, timeoutMs = 10_000): Promise<MetricsSnapshot> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const s = await snapshot();
    if (pred(s)) return s;
    if (Date.now() > deadline) throw new Error(`metrics condition not met within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** `/metrics` as `role`; expects 200 and returns the text. */
export async function scrape(role = "metrics"): Promise<string> {
  const res = await api("/metrics", { role });
  const text = await res.text();
  expect(res.status, text).toBe(200);
  return text;
}

/** Whether the named fault was consumed (checked once more: a consumed one no longer throws). */
export function faultConsumed(hostId: string, name: FaultName): Promise<boolean> {
  return runInDurableObject(relayStub(hostId), (instance: HostRelay) => {
    try {
      instance.faults.check(name);
      return true;
    } catch {
      return false;
    }
  });
}
