import type { Clock } from "../clock.ts";
import type { AuditConfig } from "../config.ts";
import type { Env } from "../env.ts";
import type { TestFaults } from "../test-faults.ts";
import type { AuditKeys } from "./signing.ts";
import type { AuditLogStorage } from "./storage.ts";

/** Everything an AuditLog handler needs; rebuilt from storage after eviction. */
export interface AuditContext {
  ctx: DurableObjectState;
  env: Env;
  store: AuditLogStorage;
  config: AuditConfig;
  /** Time; tests swap in a ManualClock through runInDurableObject. */
  clock: Clock;
  /** Test-only failure injection, inert unless TEST_FAULTS is set. */
  faults: TestFaults;
  /**
   * Chain writes (records, checkpoints) run one after another: hashing and signing are
   * asynchronous, and two writers reading the same head would fork the chain.
   */
  lock: Promise<unknown>;
  /** The signing key, imported once per instance; null when AUDIT_SIGNING_KEY is not set. */
  keys: Promise<(AuditKeys & { keyId: string }) | null> | undefined;
  /** Set when AUDIT_SIGNING_KEY could not be imported: the alarm stops waiting to sign. */
  keyBroken: boolean;
  /** Last alarm time this instance set; undefined after a wake-up, when it is not known. */
  alarmAt: number | null | undefined;
}

/** Runs `fn` after every chain write queued before it; a failure is the caller's, not the queue's. */
export function withLock<T>(ac: AuditContext, fn: () => Promise<T>): Promise<T> {
  const run = ac.lock.then(fn, fn);
  ac.lock = run.catch(() => undefined);
  return run;
}
