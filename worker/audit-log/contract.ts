/**
 * What callers hand an audit shard. The shard stamps `id`, `seq`, the chain hash and
 * `schema_version`; callers never choose them. `request` must already be bounded and redacted
 * (see worker/audit-log/ for the helper that does it): secrets and tokens are never stored in clear.
 */
export interface AuditActor {
  /** "user" (a REST token), "agent" (a host's certificate) or "system" (the relay itself). */
  kind: "user" | "agent" | "system";
  sub: string | null;
  role: string | null;
  jti: string | null;
  ip: string | null;
  user_agent: string | null;
  /** Agents: SHA-256 fingerprint of the client certificate. */
  cert_fingerprint?: string | null;
}

export interface AuditTarget {
  host_id?: string;
  message_id?: string;
  job_id?: string;
  rule_id?: string;
  receiver_id?: string;
}

export interface AuditInput {
  /** Dotted verb, e.g. "command.create", "command.final", "agent.connect", "auth.refused". */
  action: string;
  /** When it happened at its source (epoch ms). */
  time: number;
  actor: AuditActor;
  target: AuditTarget;
  request: unknown;
  outcome: { status: number | null; code: string | null; detail?: string | null };
  request_id: string | null;
}
