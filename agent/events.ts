import type { ResponseStatus } from "../schemas/index.ts";

/**
 * Events an agent emits (`agent.events`), for tests, benchmarks and embedding programs.
 * Each mirrors a log line; listeners must not throw.
 */
export interface AgentEventMap {
  /** A connection attempt begins. */
  connecting: [{ url: string; attempt: number }];
  /** TLS and WebSocket are up and `hello` was sent. */
  connected: [{ url: string }];
  /**
   * The relay answered `hello`; the outbox has just been resent. `clock_offset_ms`: the relay's
   * clock minus this host's, measured from `welcome.server_time`.
   */
  welcome: [{ host_id: string; heartbeat_interval_ms: number; resent: number; clock_offset_ms: number }];
  /** The measured clock offset exceeds the bound (MAX_CLOCK_SKEW_MS); the relay's clock is used anyway. */
  clock_skew: [{ clock_offset_ms: number; bound_ms: number }];
  /** The connection ended (code 1006 when it was dropped or never opened). */
  disconnected: [{ code: number; reason: string; error: string | null; up_ms: number; http_status: number | null }];
  /** Waiting this long before the next attempt. */
  reconnect_scheduled: [{ delay_ms: number; attempt: number }];
  /** A valid command frame arrived (redelivery: its message_id was already journaled). */
  command: [{ message_id: string; command_type: string; redelivery: boolean }];
  /** The command was journaled and its ack handed to the socket. */
  ack_sent: [{ message_id: string }];
  /** An execution began (never twice for one message_id). */
  execution_started: [{ message_id: string; execution_id: number }];
  /**
   * A `cancel` frame was handled (and acked): the command had not started (answered cancelled),
   * is being killed (its cancelled response follows), was already being killed, had been answered
   * (stored response resent) or was unknown (tombstoned and answered cancelled).
   */
  cancel: [
    { message_id: string; command_id: string; outcome: "not_started" | "killing" | "already_cancelling" | "answered" | "tombstoned" },
  ];
  /** A response was stored (replay: resent from the journal for a redelivery). */
  response: [{ message_id: string; status: ResponseStatus; replay: boolean }];
  /** The relay acked a frame from the outbox. */
  outbox_acked: [{ frame_id: string; remaining: number }];
  /** An incoming frame failed to parse; an `error` frame went back. */
  frame_invalid: [{ code: string; detail: string }];
  /** The certificate was renewed; the next connection uses it. */
  renewed: [{ not_after: string }];
  /**
   * Renewal was due but failed; the current certificate stays in use. Transient failures (relay
   * unreachable, 5xx, 429) are retried after `retry_in_ms` (backoff); others at the next check.
   */
  renewal_failed: [{ error: string; transient: boolean; retry_in_ms: number | null }];
  /** The certificate has expired (by the relay's clock, or the relay refused it so): the agent stops with exit code 4. */
  cert_expired: [{ not_after: string; reason: string }];
  /**
   * The journal could not be written (disk full, read-only): the frame `message_id` names was
   * neither acked nor acted on, and an ERR_AGENT_STORAGE error frame went to the relay.
   */
  storage_fault: [{ operation: string; message_id: string | null; error: string }];
  /** The journal is writable again after a storage fault. */
  storage_recovered: [{ operation: string }];
  /** The relay says this host is revoked; the agent stops for good. */
  revoked: [{ reason: string }];
  /** The agent has stopped; nothing runs any more. */
  stopped: [{ exit_code: number; reason: string }];
}
