import type { HostRelay } from "./host-relay/host-relay.ts";

/** Bindings and settings; every setting is a string var with a default in `config.ts`. */
export interface Env {
  DB: D1Database;
  HOST_RELAY: DurableObjectNamespace<HostRelay>;
  /** HS256 shared secret for REST tokens. One of JWT_SECRET / JWT_JWKS_URL is required. */
  JWT_SECRET?: string;
  /** JWKS URL (e.g. Cloudflare Access certs) for asymmetric REST tokens. */
  JWT_JWKS_URL?: string;
  JWT_ISSUER?: string;
  JWT_AUDIENCE?: string;
  /** Comma-separated accepted algorithms for JWKS tokens. */
  JWT_ALGORITHMS?: string;
  ACK_TIMEOUT_MS?: string;
  RETRY_BASE_MS?: string;
  RETRY_CAP_MS?: string;
  MAX_IN_FLIGHT?: string;
  HEARTBEAT_INTERVAL_S?: string;
  STALE_AFTER_S?: string;
  RETENTION_DAYS?: string;
}
