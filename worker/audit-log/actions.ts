import type { AuditTarget } from "./contract.ts";

/**
 * Stable audit action names for the routes' templates (Hono's `:param` form). A route not listed
 * (e.g. one added later) still gets a stable name from its template: the path's literal segments
 * after /api, dotted, then the method's verb, e.g. `PUT /api/alert-rules/:rule_id` → "alert-rules.update".
 */
const ACTIONS: Record<string, string> = {
  "POST /api/hosts": "host.create",
  "POST /api/hosts/:host_id/revoke": "host.revoke",
  "PUT /api/hosts/:host_id/tags": "host.tags.set",
  "POST /api/hosts/:host_id/commands": "command.create",
  "POST /api/hosts/:host_id/packages/:operation": "command.create",
  "DELETE /api/hosts/:host_id/commands/:message_id": "command.cancel",
  "POST /api/hosts/:host_id/dead-letters/:message_id/requeue": "command.requeue",
  "POST /api/enrollment-tokens": "enrollment_token.create",
  "POST /agent/enroll": "agent.enroll",
  "POST /agent/renew": "agent.renew",
  "POST /api/jobs": "job.create",
  "POST /api/jobs/:job_id/cancel": "job.cancel",
  "POST /api/alert-rules": "alert_rule.create",
  "PUT /api/alert-rules/:rule_id": "alert_rule.update",
  "DELETE /api/alert-rules/:rule_id": "alert_rule.delete",
  "POST /api/alert-receivers": "alert_receiver.create",
  "PUT /api/alert-receivers/:receiver_id": "alert_receiver.update",
  "DELETE /api/alert-receivers/:receiver_id": "alert_receiver.delete",
};

const VERBS: Record<string, string> = { POST: "create", PUT: "update", PATCH: "update", DELETE: "delete", GET: "read" };

/** Methods that change something; these are recorded under /api and /agent. */
export function isMutation(method: string, path: string): boolean {
  return ["POST", "PUT", "PATCH", "DELETE"].includes(method) && (path.startsWith("/api/") || path.startsWith("/agent/"));
}

export function actionFor(method: string, template: string): string {
  const known = ACTIONS[`${method} ${template}`];
  if (known) return known;
  const literal = template.split("/").filter((s) => s !== "" && s !== "api" && !s.startsWith(":") && s !== "*");
  return [...literal, VERBS[method] ?? method.toLowerCase()].join(".").slice(0, 64).toLowerCase();
}

const TARGET_PARAMS = ["host_id", "message_id", "job_id", "rule_id", "receiver_id"] as const;

/** The target named by the path's parameters, matched against the route's template. */
export function targetFrom(template: string, path: string): AuditTarget {
  const names = template.split("/");
  const values = path.split("/");
  const target: AuditTarget = {};
  if (names.length !== values.length) return target;
  names.forEach((name, i) => {
    const param = name.startsWith(":") ? name.slice(1).replace(/\{.*\}$/, "") : null;
    if (param && (TARGET_PARAMS as readonly string[]).includes(param)) {
      let value = values[i]!;
      try {
        value = decodeURIComponent(value);
      } catch {
        // Kept as sent.
      }
      value = value.slice(0, 128);
      target[param as (typeof TARGET_PARAMS)[number]] = value;
    }
  });
  return target;
}
