/**
 * Names for the API's shapes, taken from the generated paths (schema.d.ts), so a change to the
 * OpenAPI document reaches every screen through the type checker.
 */
import type { paths } from "./schema";

type Json<P extends keyof paths, M extends keyof paths[P], S extends number> = paths[P][M] extends {
  responses: { [K in S]: { content: { "application/json": infer T } } };
}
  ? T
  : never;
type Body<P extends keyof paths, M extends keyof paths[P]> = paths[P][M] extends {
  requestBody?: { content: { "application/json": infer T } };
}
  ? T
  : never;

export type Caller = Json<"/api/whoami", "get", 200>;
export type Role = Caller["role"];
export type HostView = Json<"/api/hosts/{host_id}", "get", 200>;
export type HostStatus = HostView["status"];
export type HostPage = Json<"/api/hosts", "get", 200>;
export type CommandSummary = Json<"/api/hosts/{host_id}/commands", "get", 200>["items"][number];
export type CommandView = Json<"/api/hosts/{host_id}/commands/{message_id}", "get", 200>;
export type CommandState = CommandView["state"];
export type StateChange = CommandView["history"][number];
export type DeadLetter = Json<"/api/hosts/{host_id}/dead-letters", "get", 200>["items"][number];
export type CommandRequest = Body<"/api/hosts/{host_id}/commands", "post">;
export type JobRequest = Body<"/api/jobs", "post">;
export type JobView = Json<"/api/jobs/{job_id}", "get", 200>;
export type JobSummary = Json<"/api/jobs", "get", 200>["items"][number];
export type JobHostView = Json<"/api/jobs/{job_id}/hosts", "get", 200>["items"][number];
export type TagCount = Json<"/api/tags", "get", 200>["items"][number];
export type AlertList = Json<"/api/alerts", "get", 200>;
export type ActiveAlert = AlertList["active"][number];
export type AlertHistoryEntry = AlertList["history"][number];
export type AlertRule = Json<"/api/alert-rules/{rule_id}", "get", 200>;
export type AlertRuleInput = Body<"/api/alert-rules", "post">;
export type AlertRuleKind = AlertRuleInput["kind"];
export type AlertReceiver = Json<"/api/alert-receivers/{receiver_id}", "get", 200>;
export type AlertReceiverInput = Body<"/api/alert-receivers", "post">;
export type AlertReceiverUpdate = Body<"/api/alert-receivers/{receiver_id}", "put">;
export type AlertNotification = Json<"/api/alert-notifications", "get", 200>["items"][number];
export type MetricsOverview = Json<"/api/metrics", "get", 200>;
export type AuditPage = Json<"/api/audit", "get", 200>;
export type AuditRecord = AuditPage["items"][number];
export type AuditFilter = NonNullable<paths["/api/audit"]["get"]["parameters"]["query"]>;

/**
 * Every member of a generated union, as a runtime list the type checker holds complete: a value
 * the spec adds (or drops) fails `npm run typecheck` here instead of missing from a menu.
 */
function allOf<T extends string>() {
  return <const L extends readonly T[]>(
    list: L & ([Exclude<T, L[number]>] extends [never] ? unknown : ["missing", Exclude<T, L[number]>]),
  ) => list as readonly T[];
}

export const ALERT_RULE_KINDS = allOf<AlertRuleKind>()([
  "host_offline",
  "hosts_offline_ratio",
  "dead_letters",
  "delivery_latency_p99",
  "job_stopped",
]);

export const COMMAND_STATES = allOf<CommandState>()([
  "queued",
  "delivered",
  "running",
  "cancelling",
  "succeeded",
  "failed",
  "timed_out",
  "expired",
  "cancelled",
  "dead_lettered",
]);
export const TERMINAL_STATES: ReadonlySet<string> = new Set(["succeeded", "failed", "timed_out", "expired", "cancelled", "dead_lettered"]);
export const JOB_HOST_STATES = ["pending", "waiting", "dispatching", "skipped", ...COMMAND_STATES] as const;
export const FINAL_JOB_STATES: ReadonlySet<string> = new Set(["completed", "stopped", "cancelled"]);

const RANK: Record<Role, number> = { metrics: 0, viewer: 1, operator: 2, admin: 3 };
export function hasRole(role: Role | undefined, needed: Role): boolean {
  return role !== undefined && RANK[role] >= RANK[needed];
}
