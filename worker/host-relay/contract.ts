import { z } from "zod";
import type { CommandView } from "../../schemas/index.ts";
import type { AuditInput } from "../audit-log/contract.ts";

/** The HostRelay's RPC types: what the Worker's routes and the JobCoordinator send and get back. */
export type { Page } from "../cursor.ts";

/** Set only by the Worker's `/agent/connect` route, after it verified the agent's certificate. */
export const INTERNAL_HOST_HEADER = "x-relay-host-id";
/** Set by the same route: the verified certificate's SHA-256 fingerprint, for the audit record. */
export const INTERNAL_FINGERPRINT_HEADER = "x-relay-cert-fingerprint";
/** Set by the same route: the agent's address as the edge saw it (empty when not trusted). */
export const INTERNAL_ADDRESS_HEADER = "x-relay-remote-address";
/** Set by the same route: the upgrade request's id. */
export const INTERNAL_REQUEST_ID_HEADER = "x-relay-request-id";
/** The host's registration (HostRegistration as JSON) as the Worker read it to identify the agent. */
export const INTERNAL_REGISTRATION_HEADER = "x-relay-registration";

/** What the Worker hands a HostRelay to queue one command (already validated at the REST boundary). */
export interface EnqueueInput {
  host_id: string;
  command_type: string;
  parameters: unknown;
  timeout?: number | undefined;
  expires_at?: string | undefined;
  expires_in?: number | undefined;
  max_attempts?: number | undefined;
  idempotency_key?: string | undefined;
  /** Hash of the request, so a reused idempotency key with a different body is refused. */
  request_hash?: string | undefined;
  /** The job this command belongs to; its progress is reported to that job's coordinator. */
  job_id?: string | undefined;
  /**
   * The REST request's audit record (outcome: accepted), written to the audit outbox in the same
   * transaction as the command, with the new message_id in its target; nothing is written when the
   * enqueue is refused. Absent for commands a job queues (the job's own record covers them).
   */
  audit?: AuditInput | undefined;
  /**
   * The host's registry row as the caller read it just before this call (a job reads its whole batch
   * in one query): taken as this object's registry check instead of a read of its own. Default: none.
   */
  registration?: HostRegistration | undefined;
}

/** A host's registry facts a HostRelay acts on. */
export interface HostRegistration {
  revoked_at: string | null;
  tags: string[];
}

const RegistrationHeader = z.object({ revoked_at: z.string().nullable(), tags: z.array(z.string()) });

/** The INTERNAL_REGISTRATION_HEADER's registration; undefined when absent or malformed (the object then reads the registry). */
export function registrationFromHeader(value: string | null): HostRegistration | undefined {
  if (!value) return undefined;
  try {
    const parsed = RegistrationHeader.safeParse(JSON.parse(value));
    return parsed.success ? parsed.data : undefined;
  } catch {
    return undefined;
  }
}

export interface HostStats {
  queue_depth: number;
  connected: boolean;
}

/**
 * `cancelled`: the command was never sent and is cancelled now. `cancelling`: it was sent; a cancel
 * goes to the agent, whose response decides the final state.
 */
export type CancelOutcome = "cancelled" | "cancelling";

export interface CancelResult {
  outcome: CancelOutcome;
  command: CommandView;
}

export interface CancelOptions {
  /** Cancel only a command never sent (a job's default cancel); one the agent may hold is refused. Default false. */
  unsentOnly?: boolean | undefined;
}
