import type { BackoffPolicy } from "../backoff.ts";
import type { Clock } from "../clock.ts";
import type { AlertConfig } from "../config.ts";
import type { Env } from "../env.ts";
import type { MetricsSummary } from "../metrics/contract.ts";
import type { TestFaults } from "../test-faults.ts";
import type { FleetSnapshot } from "./evaluate.ts";
import type { AlertingStorage } from "./storage.ts";

/**
 * Where a round's inputs come from. Production reads the registry (D1) and FleetEvents'
 * `metricsSummary()` (worker/alerting/inputs.ts); workerd tests swap in their own through
 * runInDurableObject, as they swap the clock. A source that cannot be read answers null: the
 * rules needing it are skipped for the round (their alerts stay as they were).
 */
export interface AlertInputs {
  fleet(): Promise<FleetSnapshot | null>;
  metrics(): Promise<MetricsSummary | null>;
}

/** How a webhook is POSTed: `fetch` in production; tests may put a receiver of their own here. */
export type WebhookTransport = (request: Request) => Promise<Response>;

/** Everything an Alerting handler needs; rebuilt from storage after eviction. */
export interface AlertingContext {
  ctx: DurableObjectState;
  env: Env;
  store: AlertingStorage;
  config: AlertConfig;
  /** Time and jitter; tests may swap in a ManualClock through runInDurableObject. */
  clock: Clock;
  inputs: AlertInputs;
  transport: WebhookTransport;
  /** Test-only fault hooks; inert unless TEST_FAULTS is set. */
  faults: TestFaults;
  /** Last alarm time this instance set; undefined after a wake-up, when it is not known. */
  alarmAt: number | null | undefined;
  /** Rounds run one after another (the runtime's alarm and a test's direct call may overlap). */
  rounds: Promise<void>;
}

/** Webhook retries: 1 s doubling to 5 min, full jitter, until ALERT_NOTIFY_MAX_AGE_S. */
export const NOTIFY_BACKOFF: BackoffPolicy = { baseMs: 1000, capMs: 300_000 };
/** Event publishes that failed: 1 s doubling to a minute. */
export const EVENT_BACKOFF: BackoffPolicy = { baseMs: 1000, capMs: 60_000 };
/** Webhook POSTs one round makes at most, and how many at once. */
export const DELIVERY_BUDGET = 50;
export const DELIVERY_PARALLELISM = 10;
/** Events one publish carries. */
export const EVENT_BATCH = 100;
/** The source name FleetEvents deduplicates our events by (with the outbox's seq). */
export const EVENT_SOURCE = "alerting";
