/** Wire protocol version spoken by this relay and agent. */
export const PROTOCOL_VERSION = 1;

/** Heartbeat frames, answered by the runtime without waking the host's Durable Object. */
export const HEARTBEAT_PING = "ping";
export const HEARTBEAT_PONG = "pong";

/**
 * WebSocket close codes (4000–4999 is the range RFC 6455 leaves to applications).
 * Agents decide whether to reconnect from these.
 */
export const CloseCode = {
  /** Normal shutdown by either side. */
  NORMAL: 1000,
  /** The relay is going away (deploy, restart); reconnect with backoff. */
  GOING_AWAY: 1001,
  /** A newer connection from the same host replaced this one; do not fight it. */
  REPLACED: 4001,
  /** No frame or heartbeat within the stale deadline. */
  STALE: 4002,
  /** The host's certificate was revoked; do not reconnect. */
  REVOKED: 4003,
  /** The first frame was not a valid `hello`, or it came too late. */
  HELLO_REQUIRED: 4004,
  /** The agent speaks a protocol version this relay does not. */
  UNSUPPORTED_PROTOCOL: 4005,
  /** The agent kept sending frames past its rate limit; reconnect with backoff. */
  RATE_LIMITED: 4006,
} as const;
export type CloseCode = (typeof CloseCode)[keyof typeof CloseCode];

/** Limits shared by relay and agent. */
export const Limits = {
  /** Largest WebSocket text frame either side accepts, in bytes. */
  MAX_FRAME_BYTES: 1024 * 1024,
  /** Largest REST request body, in bytes. */
  MAX_BODY_BYTES: 64 * 1024,
  /** Longest `detail` of an `error` frame, in characters. */
  MAX_ERROR_DETAIL_CHARS: 4096,
  /** Largest `output` carried by one `status` chunk or one `response`, in characters. */
  MAX_OUTPUT_CHARS: 256 * 1024,
  /** Packages in one package operation. */
  MAX_PACKAGES: 200,
  /** Execution timeout bounds, seconds. */
  MIN_TIMEOUT_S: 1,
  MAX_TIMEOUT_S: 24 * 60 * 60,
  /** Delivery deadline bounds, seconds from acceptance. */
  MAX_EXPIRES_IN_S: 30 * 24 * 60 * 60,
  /** Delivery attempts bounds. */
  MAX_ATTEMPTS: 100,
  /** Shell script size, characters. */
  MAX_SCRIPT_CHARS: 64 * 1024,
  /** Hosts named explicitly in one job. */
  MAX_JOB_HOST_IDS: 10_000,
  /** Page size bounds for list endpoints. */
  MAX_PAGE_SIZE: 500,
} as const;

/** Defaults applied when a REST caller leaves a field out. */
export const Defaults = {
  TIMEOUT_S: 300,
  EXPIRES_IN_S: 24 * 60 * 60,
  MAX_ATTEMPTS: 10,
  PAGE_SIZE: 50,
} as const;
