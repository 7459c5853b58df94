import { z } from "zod";
import { LATENCY_BUCKETS_S, type Labels } from "./contract.ts";
import { SERIES_KEY, seriesKey } from "./series.ts";

/**
 * What a publisher hands FleetEvents: metric changes since its last delta, keyed by series key
 * (series.ts). Counters and histograms are increments; `gauges` are the publisher's absolute
 * values (FleetEvents keeps them per source and sums them); `minutes` are contributions to the
 * per-minute points (contract.ts MinutePoint), keyed by the minute's start in epoch ms, so a delta
 * that arrives late still lands in the minute its changes happened.
 */
export interface MetricsDelta {
  counters?: Record<string, number>;
  histograms?: Record<string, HistogramDelta>;
  gauges?: Record<string, number>;
  minutes?: Record<string, MinuteDelta>;
}

export interface HistogramDelta {
  /** One count per LATENCY_BUCKETS_S bound plus +Inf, not cumulative. */
  buckets: number[];
  /** Sum of the observed values (seconds). */
  sum: number;
}

export interface MinuteDelta {
  /** Commands that entered each state. */
  states?: Record<string, number>;
  /** send → ack observations, in LATENCY_BUCKETS_S buckets plus +Inf. */
  delivery?: number[];
  dead_letters_new?: number;
}

/** A delta as it travels with a publish: numbered per source, so a retried one is applied once. */
export interface SourcedDelta {
  source: string;
  seq: number;
  delta: MetricsDelta;
}

export const BUCKET_COUNT = LATENCY_BUCKETS_S.length + 1;
export const MINUTE_MS = 60_000;

/** Series one delta may carry; a publisher's own series are a few dozen (types × states, routes × statuses). */
export const MAX_DELTA_SERIES = 1000;

const Key = z.string().max(600).regex(SERIES_KEY);
const Count = z.number().finite().min(0);
const Buckets = z.array(Count).length(BUCKET_COUNT);
const bounded = <T extends z.ZodType>(value: T) =>
  z.record(Key, value).refine((r) => Object.keys(r).length <= MAX_DELTA_SERIES, { message: `at most ${MAX_DELTA_SERIES} series` });

export const MetricsDeltaSchema = z.strictObject({
  counters: bounded(Count).optional(),
  histograms: bounded(z.strictObject({ buckets: Buckets, sum: Count })).optional(),
  gauges: bounded(z.number().finite()).optional(),
  minutes: z
    .record(
      z.string().regex(/^\d{1,15}$/),
      z.strictObject({
        states: z.record(z.string().max(32), Count).optional(),
        delivery: Buckets.optional(),
        dead_letters_new: Count.optional(),
      }),
    )
    .refine((r) => Object.keys(r).length <= 120, { message: "at most 120 minutes" })
    .optional(),
});

export const SourcedDeltaSchema = z.strictObject({
  source: z.string().min(1).max(200),
  seq: z.int().min(0),
  delta: MetricsDeltaSchema,
});

/** The bucket index of an observation of `seconds`. */
export function bucketOf(seconds: number): number {
  const i = LATENCY_BUCKETS_S.findIndex((le) => seconds <= le);
  return i < 0 ? LATENCY_BUCKETS_S.length : i;
}

export function minuteOf(ms: number): number {
  return Math.floor(ms / MINUTE_MS) * MINUTE_MS;
}

function zeros(): number[] {
  return new Array<number>(BUCKET_COUNT).fill(0);
}

/** `record[key]`, created by `make` when absent. */
function entry<T>(record: Record<string, T>, key: string, make: () => T): T {
  let value = record[key];
  if (value === undefined) {
    value = make();
    record[key] = value;
  }
  return value;
}

function addInto(target: number[], source: readonly number[]): void {
  source.forEach((n, i) => {
    target[i] = (target[i] ?? 0) + n;
  });
}

/** Adds to a delta in place; the writers (HostRelay, the Worker's recorder) build theirs with it. */
export class DeltaWriter {
  readonly delta: MetricsDelta;

  constructor(delta: MetricsDelta = {}) {
    this.delta = delta;
  }

  #counters(): Record<string, number> {
    if (!this.delta.counters) this.delta.counters = {};
    return this.delta.counters;
  }

  #histograms(): Record<string, HistogramDelta> {
    if (!this.delta.histograms) this.delta.histograms = {};
    return this.delta.histograms;
  }

  #gauges(): Record<string, number> {
    if (!this.delta.gauges) this.delta.gauges = {};
    return this.delta.gauges;
  }

  #minute(key: string): MinuteDelta {
    if (!this.delta.minutes) this.delta.minutes = {};
    return entry(this.delta.minutes, key, () => ({}));
  }

  count(name: string, labels?: Labels, by = 1): this {
    const counters = this.#counters();
    const key = seriesKey(name, labels);
    counters[key] = (counters[key] ?? 0) + by;
    return this;
  }

  observe(name: string, labels: Labels | undefined, seconds: number): this {
    const h = entry(this.#histograms(), seriesKey(name, labels), () => ({ buckets: zeros(), sum: 0 }));
    const s = Math.max(0, seconds);
    h.buckets[bucketOf(s)]! += 1;
    h.sum += s;
    return this;
  }

  gauge(name: string, labels: Labels | undefined, value: number): this {
    this.#gauges()[seriesKey(name, labels)] = value;
    return this;
  }

  minuteState(at: number, state: string): this {
    const m = this.#minute(String(minuteOf(at)));
    if (!m.states) m.states = {};
    m.states[state] = (m.states[state] ?? 0) + 1;
    return this;
  }

  minuteDelivery(at: number, seconds: number): this {
    const m = this.#minute(String(minuteOf(at)));
    if (!m.delivery) m.delivery = zeros();
    m.delivery[bucketOf(Math.max(0, seconds))]! += 1;
    return this;
  }

  minuteDeadLetter(at: number): this {
    const m = this.#minute(String(minuteOf(at)));
    m.dead_letters_new = (m.dead_letters_new ?? 0) + 1;
    return this;
  }

  /** Adds every change of `other` (its gauges replace ours: they are absolute). */
  merge(other: MetricsDelta): this {
    for (const [k, v] of Object.entries(other.counters ?? {})) {
      const counters = this.#counters();
      counters[k] = (counters[k] ?? 0) + v;
    }
    for (const [k, v] of Object.entries(other.histograms ?? {})) {
      const h = entry(this.#histograms(), k, () => ({ buckets: zeros(), sum: 0 }));
      addInto(h.buckets, v.buckets);
      h.sum += v.sum;
    }
    for (const [k, v] of Object.entries(other.gauges ?? {})) this.#gauges()[k] = v;
    for (const [minute, v] of Object.entries(other.minutes ?? {})) {
      const m = this.#minute(minute);
      for (const [s, n] of Object.entries(v.states ?? {})) {
        if (!m.states) m.states = {};
        m.states[s] = (m.states[s] ?? 0) + n;
      }
      if (v.delivery) {
        if (!m.delivery) m.delivery = zeros();
        addInto(m.delivery, v.delivery);
      }
      if (v.dead_letters_new) m.dead_letters_new = (m.dead_letters_new ?? 0) + v.dead_letters_new;
    }
    return this;
  }

  isEmpty(): boolean {
    const d = this.delta;
    return !d.counters && !d.histograms && !d.gauges && !d.minutes;
  }
}
