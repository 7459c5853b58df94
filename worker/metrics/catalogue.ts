/**
 * Every metric the relay exposes, with its type and help text: the single list `/metrics` renders
 * `# HELP` / `# TYPE` from and the README documents. Names follow the Prometheus conventions
 * (prefix `fleet_relay_`, base units, `_total` on counters); no label is per host.
 */

export type MetricType = "counter" | "gauge" | "histogram";

export interface MetricInfo {
  type: MetricType;
  help: string;
  /** Label names the metric carries (documentation; the renderer takes labels from the series). */
  labels: readonly string[];
}

export const M = {
  HOSTS: "fleet_relay_hosts",
  AGENTS_CONNECTED: "fleet_relay_agents_connected",
  CONNECTIONS_ACCEPTED: "fleet_relay_agent_connections_accepted_total",
  CONNECTIONS_REFUSED: "fleet_relay_agent_connections_refused_total",
  DISCONNECTS: "fleet_relay_agent_disconnects_total",
  COMMANDS_ENQUEUED: "fleet_relay_commands_enqueued_total",
  COMMANDS_FINISHED: "fleet_relay_commands_finished_total",
  COMMAND_STATE_ENTRIES: "fleet_relay_command_state_entries_total",
  RESENDS: "fleet_relay_command_resends_total",
  DEAD_LETTERS_TOTAL: "fleet_relay_dead_letters_total",
  DEAD_LETTERS: "fleet_relay_dead_letters",
  EXPIRATIONS: "fleet_relay_command_expirations_total",
  QUEUE_DEPTH: "fleet_relay_queue_depth",
  SEND_TO_ACK: "fleet_relay_command_send_to_ack_seconds",
  ACCEPTED_TO_FINAL: "fleet_relay_command_accepted_to_final_seconds",
  HTTP_DURATION: "fleet_relay_http_request_duration_seconds",
  EVENT_SUBSCRIBERS: "fleet_relay_event_subscribers",
  EVENTS_PUBLISHED: "fleet_relay_events_published_total",
  EVENT_REFETCHES: "fleet_relay_event_refetches_total",
  JOBS: "fleet_relay_jobs",
  JOBS_FINISHED: "fleet_relay_jobs_finished_total",
  AUDIT_RECORDS: "fleet_relay_audit_records_written_total",
  AUDIT_WRITE_ERRORS: "fleet_relay_audit_write_errors_total",
  SERIES_DROPPED: "fleet_relay_metrics_series_dropped_total",
  PUBLISH_CALLS: "fleet_relay_event_publish_calls_total",
  METRICS_DELTAS: "fleet_relay_metrics_deltas_total",
  BUILD_INFO: "fleet_relay_build_info",
} as const;

export const CATALOGUE: Readonly<Record<string, MetricInfo>> = {
  [M.HOSTS]: { type: "gauge", help: "Registered hosts by status (online, offline, revoked), from the registry.", labels: ["status"] },
  [M.AGENTS_CONNECTED]: { type: "gauge", help: "Agents connected and greeted, as their relays last reported.", labels: [] },
  [M.CONNECTIONS_ACCEPTED]: { type: "counter", help: "Agent WebSocket connections accepted by a host relay.", labels: [] },
  [M.CONNECTIONS_REFUSED]: {
    type: "counter",
    help: "Agent connection attempts refused, by error code (at the Worker route or at the host relay).",
    labels: ["reason"],
  },
  [M.DISCONNECTS]: { type: "counter", help: "Agent connections that ended, by WebSocket close code.", labels: ["code"] },
  [M.COMMANDS_ENQUEUED]: { type: "counter", help: "Commands accepted into a host's queue.", labels: ["command_type"] },
  [M.COMMANDS_FINISHED]: {
    type: "counter",
    help: "Commands entering a final state (a relay give-up later overruled by the agent's answer counts both).",
    labels: ["command_type", "state"],
  },
  [M.COMMAND_STATE_ENTRIES]: { type: "counter", help: "Command state changes, by the state entered.", labels: ["state"] },
  [M.RESENDS]: { type: "counter", help: "Command frames sent again (attempt > 1) after a missed ack.", labels: [] },
  [M.DEAD_LETTERS_TOTAL]: { type: "counter", help: "Commands dead-lettered (attempts spent without an ack).", labels: [] },
  [M.DEAD_LETTERS]: { type: "gauge", help: "Commands currently dead-lettered.", labels: [] },
  [M.EXPIRATIONS]: { type: "counter", help: "Commands that expired before the agent acked them.", labels: [] },
  [M.QUEUE_DEPTH]: { type: "gauge", help: "Commands not yet in a final state, by state.", labels: ["state"] },
  [M.SEND_TO_ACK]: { type: "histogram", help: "Time from sending a command frame to the agent's ack.", labels: [] },
  [M.ACCEPTED_TO_FINAL]: { type: "histogram", help: "Time from accepting a command to its first final state.", labels: [] },
  [M.HTTP_DURATION]: {
    type: "histogram",
    help: "REST request duration in the Worker, by route template, method and status.",
    labels: ["route", "method", "status"],
  },
  [M.EVENT_SUBSCRIBERS]: { type: "gauge", help: "Open /api/events subscribers.", labels: [] },
  [M.EVENTS_PUBLISHED]: { type: "counter", help: "Fleet events stored and fanned out.", labels: [] },
  [M.EVENT_REFETCHES]: { type: "counter", help: "Resuming subscribers told to refetch, by reason.", labels: ["reason"] },
  [M.JOBS]: { type: "gauge", help: "Jobs by state (final ones for 24 hours after they ended).", labels: ["state"] },
  [M.JOBS_FINISHED]: { type: "counter", help: "Jobs entering a final state.", labels: ["state"] },
  [M.AUDIT_RECORDS]: { type: "counter", help: "Audit records written, over all shards.", labels: [] },
  [M.AUDIT_WRITE_ERRORS]: { type: "counter", help: "Audit records that could not be written.", labels: [] },
  [M.SERIES_DROPPED]: { type: "counter", help: "Metric samples dropped because the series limit was reached.", labels: [] },
  [M.PUBLISH_CALLS]: {
    type: "counter",
    help: "publish calls FleetEvents answered (HostRelay outbox flushes, job progress); counted in memory, so it restarts with the object.",
    labels: [],
  },
  [M.METRICS_DELTAS]: {
    type: "counter",
    help: "Metric deltas applied, by how they came: with_events (in an event publish), alone (a publish of metrics only), direct (recordMetrics); in memory, like publish calls.",
    labels: ["path"],
  },
  [M.BUILD_INFO]: { type: "gauge", help: "Always 1; the relay's version as a label.", labels: ["version"] },
};

/** The relay's version, for fleet_relay_build_info (package.json's). */
export const RELAY_VERSION = "0.1.0";
