/**
 * Metrics counted in the Worker itself (not in a Durable Object), buffered per isolate.
 *
 *   countWorker(name, labels?, by = 1)       add to a counter, e.g.
 *                                            countWorker(M.AUDIT_WRITE_ERRORS) or
 *                                            countWorker(M.CONNECTIONS_REFUSED, { reason: code })
 *   observeWorker(name, labels, seconds)     one histogram observation (LATENCY_BUCKETS_S buckets)
 *   flushWorkerMetrics(env, { force })       hands the buffer to FleetEvents.recordMetrics
 *
 * Use names from catalogue.ts (add a new metric there first, with its type and help), and labels
 * that are categories (codes, routes, states), never per host or per request. Counting is
 * synchronous and costs no I/O; the request middleware (http-metrics.ts) flushes at most about
 * once a second through `ctx.waitUntil`, and `/metrics` flushes before it reads. A flush is
 * numbered (source = this isolate, seq), and a failed one is resent with the same number, so
 * FleetEvents applies it once; what an isolate counted after its last flush is lost if it is evicted.
 * Code running in a Durable Object (no request middleware there) calls
 * `ctx.waitUntil(flushWorkerMetrics(env) ?? Promise.resolve())` after counting; an object with an
 * outbox of its own can instead send numbered deltas with FleetEvents.recordMetrics(source, seq, delta).
 */
import type { Env } from "../env.ts";
import { fleetEvents } from "../stubs.ts";
import type { Labels } from "./contract.ts";
import { DeltaWriter, type MetricsDelta } from "./delta.ts";

/** Least time between two background flushes of one isolate. */
export const WORKER_FLUSH_INTERVAL_MS = 1_000;

let buffer = new DeltaWriter();
let pending: { seq: number; delta: MetricsDelta } | null = null;
let inFlight: Promise<void> | null = null;
let lastFlushAt = 0;
let seq = 0;
// Made on first use: a Worker may not generate random values at global scope.
let source: string | null = null;

export function countWorker(name: string, labels?: Labels, by = 1): void {
  buffer.count(name, labels, by);
}

export function observeWorker(name: string, labels: Labels | undefined, seconds: number): void {
  buffer.observe(name, labels, seconds);
}

/**
 * Sends what this isolate counted, unless it flushed less than WORKER_FLUSH_INTERVAL_MS ago
 * (`force` sends anyway, after any flush already under way). Resolves when FleetEvents has it, or
 * at once (null) when there is nothing to do; never rejects.
 */
export function flushWorkerMetrics(env: Env, opts: { force?: boolean; now?: number } = {}): Promise<void> | null {
  const now = opts.now ?? Date.now();
  if (inFlight) return opts.force ? inFlight.then(() => flushWorkerMetrics(env, { force: true }) ?? undefined) : null;
  if (!opts.force && now - lastFlushAt < WORKER_FLUSH_INTERVAL_MS) return null;
  if (!pending) {
    if (buffer.isEmpty()) return null;
    pending = { seq: ++seq, delta: buffer.delta };
    buffer = new DeltaWriter();
  }
  lastFlushAt = now;
  source ??= `worker:${crypto.randomUUID()}`;
  const batch = pending;
  inFlight = fleetEvents(env)
    .recordMetrics(source, batch.seq, batch.delta)
    .then(
      () => {
        if (pending === batch) pending = null;
      },
      (err: unknown) => {
        // Kept (same number) for the next flush.
        console.error(JSON.stringify({ level: "warn", msg: "worker metrics flush failed; will retry", error: String(err) }));
      },
    )
    .finally(() => {
      inFlight = null;
    });
  return inFlight;
}
