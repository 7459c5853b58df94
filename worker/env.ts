import type { Alerting } from "./alerting/alerting.ts";
import type { AuditLog } from "./audit-log/audit-log.ts";
import type { FleetEvents } from "./fleet-events/fleet-events.ts";
import type { HostRelay } from "./host-relay/host-relay.ts";
import type { JobCoordinator } from "./job-coordinator/job-coordinator.ts";

/** Bindings and settings; every setting is a string var with a default in `config.ts`. */
export interface Env {
  DB: D1Database;
  HOST_RELAY: DurableObjectNamespace<HostRelay>;
  JOB_COORDINATOR: DurableObjectNamespace<JobCoordinator>;
  /** One instance, named "fleet": the live event stream and its bounded history. */
  FLEET_EVENTS: DurableObjectNamespace<FleetEvents>;
  /** The audit trail: AUDIT_SHARDS instances named "audit-<n>", each one hash chain. */
  AUDIT_LOG: DurableObjectNamespace<AuditLog>;
  /** One instance, named "fleet": alert rules, their evaluation, receivers and notification outbox. */
  ALERTING: DurableObjectNamespace<Alerting>;
  /** Optional Workers Analytics Engine dataset; when bound, metric counters are also written there. */
  ANALYTICS?: AnalyticsEngineDataset;
  /** HS256 shared secret for REST tokens. One of JWT_SECRET / JWT_JWKS_URL is required. */
  JWT_SECRET?: string;
  /** JWKS URL (e.g. Cloudflare Access certs) for asymmetric REST tokens. */
  JWT_JWKS_URL?: string;
  JWT_ISSUER?: string;
  JWT_AUDIENCE?: string;
  /** Comma-separated accepted algorithms for JWKS tokens. */
  JWT_ALGORITHMS?: string;
  /** Fleet CA certificate (PEM) that signs agent certificates at enrolment and renewal. */
  FLEET_CA_CERT?: string;
  /** Fleet CA private key, PKCS#8 PEM (secret). */
  FLEET_CA_KEY?: string;
  /**
   * Set only by the local stack: the secret its TLS edge adds to the requests it forwards, so
   * `request.cf.tlsClientAuth` is believed only when the edge set it.
   */
  LOCAL_EDGE_SECRET?: string;
  ACK_TIMEOUT_MS?: string;
  RETRY_BASE_MS?: string;
  RETRY_CAP_MS?: string;
  MAX_IN_FLIGHT?: string;
  HEARTBEAT_INTERVAL_S?: string;
  STALE_AFTER_S?: string;
  RETENTION_DAYS?: string;
  EXECUTION_GRACE_S?: string;
  FRAME_RATE_PER_S?: string;
  FRAME_BURST?: string;
  REGISTRY_CHECK_S?: string;
  ENROLL_RATE_LIMIT?: string;
  ENROLL_RATE_WINDOW_S?: string;
  ALERT_EVAL_INTERVAL_S?: string;
  ALERT_NOTIFY_MAX_AGE_S?: string;
  ALERT_NOTIFY_TIMEOUT_S?: string;
  ALERT_ALLOW_HTTP_LOOPBACK?: string;
  ALERT_EXTERNAL_URL?: string;
  /** Audit settings; defaults and meaning in config.ts `auditConfig`. */
  AUDIT_SHARDS?: string;
  AUDIT_MODE?: string;
  AUDIT_RETENTION_DAYS?: string;
  AUDIT_CHECKPOINT_EVERY?: string;
  AUDIT_CHECKPOINT_INTERVAL_S?: string;
  AUDIT_PENDING_TIMEOUT_S?: string;
  AUDIT_REFUSALS_PER_S?: string;
  AUDIT_REFUSAL_BURST?: string;
  /** ECDSA P-256 private key, PKCS#8 PEM (secret), that signs audit checkpoints. Locally made under `.relay/`. */
  AUDIT_SIGNING_KEY?: string;
  /** "0" turns off the one JSON line logged per request. Default on. */
  REQUEST_LOGS?: string;
  /** "1" only in the vitest miniflare config: enables the test fault hooks (worker/test-faults.ts). Never set in production. */
  TEST_FAULTS?: string;
}
