import { z } from "zod";
import { Rfc3339, Uuid } from "./primitives.ts";
import { PageQuery } from "./rest.ts";

/** Version of the audit record and checkpoint layout; part of every hashed record. */
export const AUDIT_SCHEMA_VERSION = 1;

const Hash = z.string().regex(/^[0-9a-f]{64}$/);

export const AuditActorView = z
  .object({
    kind: z.enum(["user", "agent", "system"]).describe("user: a REST token; agent: a host's certificate; system: the relay itself"),
    sub: z.string().nullable().describe("The token's subject, the agent's host id, or null when unknown"),
    role: z.string().nullable().describe("The token's role (metrics, viewer, operator, admin), null otherwise"),
    jti: z.string().nullable().describe("The token's `jti` claim when it has one"),
    ip: z.string().nullable().describe("The caller's address as the edge saw it (CF-Connecting-IP)"),
    user_agent: z.string().nullable().describe("User-Agent, cut to 256 characters"),
    cert_fingerprint: z.string().nullable().optional().describe("Agents: SHA-256 fingerprint of the client certificate"),
  })
  .meta({ id: "AuditActor", description: "Who did it." });

export const AuditTargetView = z
  .object({
    host_id: z.string().optional(),
    message_id: z.string().optional(),
    job_id: z.string().optional(),
    rule_id: z.string().optional(),
    receiver_id: z.string().optional(),
  })
  .meta({ id: "AuditTarget", description: "What it was done to (from the route's path parameters, or the object that recorded it)." });

export const AuditRecord = z
  .object({
    type: z.literal("record"),
    id: Uuid.describe("Unique id of the record"),
    seq: z.int().min(1).describe("Position in its shard's chain, from 1, without gaps"),
    shard: z.int().min(0).describe("The shard (AuditLog instance) whose chain holds it"),
    time: Rfc3339.describe("When it happened at its source"),
    actor: AuditActorView,
    action: z.string().describe('Dotted verb, e.g. "command.create", "agent.connect", "auth.refused"'),
    target: AuditTargetView,
    request: z.unknown().describe("The request body, redacted (secrets and tokens replaced) and bounded to 4 KiB, or details of the event"),
    outcome: z
      .object({
        status: z.int().nullable().describe("HTTP status answered, or null (unknown, or not an HTTP request)"),
        code: z.string().nullable().describe('Error code, "unknown" when the outcome never arrived, or an event\'s result'),
        detail: z.string().nullable().optional(),
      })
      .describe("What came of it"),
    request_id: z.string().nullable().describe("The request's X-Request-Id"),
    schema_version: z.literal(AUDIT_SCHEMA_VERSION),
    prev_hash: Hash.describe("`hash` of the shard's previous record; 64 zeros for seq 1"),
    hash: Hash.describe("SHA-256 (hex) of the canonical JSON (keys sorted, no whitespace) of every other field"),
  })
  .meta({ id: "AuditRecord", description: "One audit record: a link of its shard's hash chain." });
export type AuditRecord = z.infer<typeof AuditRecord>;

export const AuditCheckpoint = z
  .object({
    type: z.literal("checkpoint"),
    kind: z
      .enum(["interval", "prune", "export"])
      .describe("interval: every N records or T seconds; prune: at the last pruned seq; export: at the head, made by the export"),
    shard: z.int().min(0),
    seq: z.int().min(0).describe("The chain position it vouches for (0: an empty shard)"),
    hash: Hash.describe("`hash` of the record at `seq` (64 zeros for seq 0)"),
    count: z.int().min(0).describe("Records kept in the shard up to `seq` (`seq - pruned_through`)"),
    pruned_through: z.int().min(0).describe("Records up to this seq were pruned by retention"),
    time: Rfc3339,
    key_id: z.string().describe("First 16 hex digits of SHA-256 over the audit public key (SPKI)"),
    export_id: z.string().optional().describe("Export checkpoints: the export they close"),
    shards: z.int().optional().describe("Export checkpoints: how many shards the export holds"),
    signature: z.string().describe("ECDSA P-256 / SHA-256 signature (r‖s, base64url) over the canonical JSON of the other fields"),
  })
  .meta({ id: "AuditCheckpoint", description: "A signed statement of a shard's chain head: detects rewriting and truncation." });
export type AuditCheckpoint = z.infer<typeof AuditCheckpoint>;

export const AuditExportHeader = z
  .object({
    type: z.literal("export"),
    export_id: z.string(),
    time: Rfc3339,
    shards: z.int().min(1),
    schema_version: z.literal(AUDIT_SCHEMA_VERSION),
  })
  .meta({
    id: "AuditExportHeader",
    description: "First line of an export (unsigned; each shard's export checkpoint repeats export_id and shards).",
  });
export type AuditExportHeader = z.infer<typeof AuditExportHeader>;

const AUDIT_ACTION = /^[a-z][a-z0-9_.-]{0,63}$/;

export const AuditQuery = z.strictObject({
  ...PageQuery,
  actor: z.string().min(1).max(256).optional().describe("Only records whose actor `sub` is this"),
  action: z.string().regex(AUDIT_ACTION).optional().describe('Only this action, e.g. "command.create"'),
  host_id: Uuid.optional().describe("Only records about this host"),
  job_id: z.string().min(1).max(128).optional().describe("Only records about this job"),
  since: Rfc3339.optional().describe("Records at or after this time"),
  until: Rfc3339.optional().describe("Records before this time"),
});
export type AuditQuery = z.infer<typeof AuditQuery>;

export const AuditPage = z
  .object({
    items: z.array(AuditRecord),
    next_cursor: z.string().nullable(),
  })
  .meta({ id: "AuditPage", description: "Records newest first (by time, then shard, then seq), merged across shards." });

export const AuditPublicKey = z
  .object({
    public_key: z.string().describe("SPKI PEM of the key that signs checkpoints"),
    key_id: z.string(),
  })
  .meta({ id: "AuditPublicKey", description: "The audit public key, for `npm run audit-verify -- <export> --public-key <pem>`." });
