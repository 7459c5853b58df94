/**
 * Test-only fault injection. Inert unless the `TEST_FAULTS` binding is "1", which only the vitest
 * miniflare config sets (never wrangler.toml): `arm` then refuses and `check` returns at once, so
 * production code paths cannot be made to fail through this.
 */
export type FaultName =
  /** JobCoordinator.create: the job is stored (and registered), then the RPC throws to its caller. */
  | "job.create.after_store"
  /** JobCoordinator: the registry (D1) write of the job's row fails. */
  | "job.registry_write"
  /** HostRelay.revoke: the RPC throws before the relay has the revocation. */
  | "relay.revoke"
  /** HostRelay outbox: the publish RPC to FleetEvents fails. */
  | "relay.publish"
  /** HostRelay outbox: FleetEvents stored the batch, then the answer is lost. */
  | "relay.after_publish"
  /** Alerting event outbox: the publish RPC to FleetEvents fails. */
  | "alerting.publish"
  /** Alerting event outbox: FleetEvents stored the batch, then the answer is lost. */
  | "alerting.after_publish"
  /** AuditLog: begin / append / ingest throws before storing anything (the audit log is unavailable). */
  | "audit.append"
  /** HostRelay / JobCoordinator outbox: the AuditLog chained the batch, then the answer is lost. */
  | "audit.after_ingest";

export interface FaultSettings {
  TEST_FAULTS?: string;
}

export class TestFaults {
  readonly #enabled: boolean;
  readonly #armed = new Map<FaultName, number>();

  constructor(env: FaultSettings) {
    this.#enabled = env.TEST_FAULTS === "1";
  }

  /** Makes the next `times` checks of `name` throw. Tests only. */
  arm(name: FaultName, times = 1): void {
    if (!this.#enabled) throw new Error("test faults are disabled (TEST_FAULTS is not set)");
    this.#armed.set(name, times);
  }

  /** How many more checks of `name` will throw: 0 once an armed fault has fired. Tests only. */
  armed(name: FaultName): number {
    return this.#armed.get(name) ?? 0;
  }

  /** Throws if `name` is armed (and counts it down); a no-op unless TEST_FAULTS is set. */
  check(name: FaultName): void {
    if (!this.#enabled) return;
    const left = this.#armed.get(name) ?? 0;
    if (left <= 0) return;
    this.#armed.set(name, left - 1);
    throw new Error(`injected test fault: ${name}`);
  }
}
