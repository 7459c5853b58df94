import type { Env } from "./env.ts";

export interface RelayConfig {
  /** Wait for an agent's ack before resending a command. Default 10 000 ms. */
  ackTimeoutMs: number;
  /** First backoff step after a missed ack; doubles per attempt with full jitter. Default 1 000 ms. */
  retryBaseMs: number;
  /** Backoff ceiling. Default 300 000 ms (5 min). */
  retryCapMs: number;
  /** Commands sent to one agent and not yet acked. Default 64. */
  maxInFlight: number;
  /** Heartbeat interval told to agents in `welcome`. Default 30 s. */
  heartbeatIntervalS: number;
  /** A connection silent (no frame, no ping) this long is closed as stale. Default 90 s. */
  staleAfterS: number;
  /** Terminal commands are kept this long, then pruned. Default 30 days. */
  retentionDays: number;
  /**
   * Extra wait past a command's `timeout` before the relay gives up on its response: it sends
   * `cancel` if the agent is connected, or ends the command `timed_out` if not. Default 60 000 ms.
   */
  executionGraceMs: number;
  /** Frames per second one agent connection may send, sustained. Default 200. */
  frameRatePerS: number;
  /** Frames one connection may send in a burst above the rate. Default 1 000. */
  frameBurst: number;
  /**
   * How often a connected host's relay re-reads its registration, so a revocation written to the
   * registry by other means (not through the revoke route) still disconnects the agent. Default 300 000 ms.
   */
  registryCheckMs: number;
  /** Enrolment attempts allowed per source address per window. Default 10. */
  enrollRateLimit: number;
  /** The enrolment rate window. Default 60 000 ms. */
  enrollRateWindowMs: number;
}

function num(value: string | undefined, fallback: number, min: number): number {
  if (value === undefined || value === "") return fallback;
  const n = Number(value);
  return Number.isFinite(n) && n >= min ? n : fallback;
}

export function relayConfig(env: Env): RelayConfig {
  return {
    ackTimeoutMs: num(env.ACK_TIMEOUT_MS, 10_000, 1),
    retryBaseMs: num(env.RETRY_BASE_MS, 1_000, 1),
    retryCapMs: num(env.RETRY_CAP_MS, 300_000, 1),
    maxInFlight: num(env.MAX_IN_FLIGHT, 64, 1),
    heartbeatIntervalS: num(env.HEARTBEAT_INTERVAL_S, 30, 1),
    staleAfterS: num(env.STALE_AFTER_S, 90, 1),
    retentionDays: num(env.RETENTION_DAYS, 30, 0),
    executionGraceMs: num(env.EXECUTION_GRACE_S, 60, 0) * 1000,
    frameRatePerS: num(env.FRAME_RATE_PER_S, 200, 1),
    frameBurst: num(env.FRAME_BURST, 1_000, 1),
    registryCheckMs: num(env.REGISTRY_CHECK_S, 300, 1) * 1000,
    enrollRateLimit: num(env.ENROLL_RATE_LIMIT, 10, 1),
    enrollRateWindowMs: num(env.ENROLL_RATE_WINDOW_S, 60, 1) * 1000,
  };
}

/** Settings of the Alerting object (worker/alerting/). */
export interface AlertConfig {
  /** How often enabled rules are evaluated, from the object's alarm. Default 15 s. */
  evalIntervalMs: number;
  /** A notification not delivered this long after it was made is recorded as failed. Default 86 400 s (24 h). */
  notifyMaxAgeMs: number;
  /** One webhook POST may take this long before it counts as failed. Default 10 s. */
  notifyTimeoutMs: number;
  /**
   * Receivers may use plain http:// to a loopback address (127.0.0.0/8, ::1, localhost). Off by
   * default ("0"); the local relay (`npm start`, the e2e tests) and vitest set "1".
   */
  allowHttpLoopback: boolean;
  /** The payloads' externalURL and the base of generatorURL; default "" (then the origin of the latest rule change). */
  externalUrl: string;
}

export function alertConfig(env: Env): AlertConfig {
  return {
    evalIntervalMs: num(env.ALERT_EVAL_INTERVAL_S, 15, 0.05) * 1000,
    notifyMaxAgeMs: num(env.ALERT_NOTIFY_MAX_AGE_S, 86_400, 1) * 1000,
    notifyTimeoutMs: num(env.ALERT_NOTIFY_TIMEOUT_S, 10, 0.1) * 1000,
    allowHttpLoopback: env.ALERT_ALLOW_HTTP_LOOPBACK === "1",
    externalUrl: (env.ALERT_EXTERNAL_URL ?? "").replace(/\/+$/, ""),
  };
}
/** What to do with a mutation whose audit record cannot be written. */
export type AuditMode = "fail-closed" | "best-effort";

export interface AuditConfig {
  /**
   * AuditLog instances ("audit-<n>") records are spread over, by a stable hash of their target, so
   * commands for many hosts do not queue on one object. Default 4, at most 64. Changing it sends a
   * target's new records to another shard; every shard's chain stays verifiable.
   */
  shards: number;
  /**
   * `fail-closed` (default): a mutation whose audit record cannot be written is refused (503
   * ERR_AUDIT_UNAVAILABLE) before it takes effect. `best-effort`: it proceeds and the failure is counted.
   */
  mode: AuditMode;
  /** Records older than this are pruned by each shard's alarm, behind a signed checkpoint. Default 365 days. */
  retentionDays: number;
  /** A signed checkpoint after this many new records. Default 1 000. */
  checkpointEvery: number;
  /** ...or this long after the last one, when records were added since. Default 3 600 s. */
  checkpointIntervalMs: number;
  /** A mutation's pending record whose outcome never arrived is chained with outcome "unknown" after this. Default 60 s. */
  pendingTimeoutMs: number;
  /** Refused requests (401/403) recorded per second per Worker isolate, sustained; the rest are counted. Default 10. */
  refusalsPerS: number;
  /** ...and in a burst above that rate. Default 100. */
  refusalBurst: number;
}

export const MAX_AUDIT_SHARDS = 64;

export function auditConfig(env: Env): AuditConfig {
  return {
    shards: Math.min(MAX_AUDIT_SHARDS, Math.floor(num(env.AUDIT_SHARDS, 4, 1))),
    mode: env.AUDIT_MODE === "best-effort" ? "best-effort" : "fail-closed",
    retentionDays: num(env.AUDIT_RETENTION_DAYS, 365, 1),
    checkpointEvery: Math.floor(num(env.AUDIT_CHECKPOINT_EVERY, 1_000, 1)),
    checkpointIntervalMs: num(env.AUDIT_CHECKPOINT_INTERVAL_S, 3_600, 1) * 1000,
    pendingTimeoutMs: num(env.AUDIT_PENDING_TIMEOUT_S, 60, 1) * 1000,
    refusalsPerS: num(env.AUDIT_REFUSALS_PER_S, 10, 0),
    refusalBurst: num(env.AUDIT_REFUSAL_BURST, 100, 1),
  };
}

/** One JSON line per request (worker/request-id.ts) unless REQUEST_LOGS is "0". Default on. */
export function requestLogsEnabled(env: Env): boolean {
  return env.REQUEST_LOGS !== "0";
}
