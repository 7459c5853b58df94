import { createRoute, z } from "@hono/zod-openapi";
import {
  AlertList,
  AlertNotificationList,
  AlertNotificationsQuery,
  AlertReceiver,
  AlertReceiverInput,
  AlertReceiverList,
  AlertReceiverUpdate,
  AlertRule,
  AlertRuleInput,
  AlertRuleList,
  AlertsQuery,
} from "../../schemas/index.ts";
import { receiverUrlProblem } from "../alerting/receiver-url.ts";
import { alertConfig } from "../config.ts";
import type { Env } from "../env.ts";
import { ErrorCode, RelayError, unwrap } from "../errors.ts";
import { alerting } from "../stubs.ts";
import { BEARER, createRouter, jsonBody, jsonContent, problems, requireRole } from "./common.ts";

const RuleIdParam = z.object({
  rule_id: z.uuid().openapi({ param: { name: "rule_id", in: "path" }, description: "The rule's id" }),
});
const ReceiverIdParam = z.object({
  receiver_id: z.uuid().openapi({ param: { name: "receiver_id", in: "path" }, description: "The receiver's id" }),
});

const deleted = { description: "Deleted" };

const createRuleRoute = createRoute({
  method: "post",
  operationId: "createAlertRule",
  path: "/api/alert-rules",
  tags: ["alerts"],
  summary: "Create an alert rule",
  description:
    "Evaluated at the edge every ALERT_EVAL_INTERVAL_S (default 15 s). An alert is pending while its condition holds for less than `for`, then firing; it resolves when the condition stops holding.",
  security: BEARER,
  middleware: [requireRole("admin")] as const,
  request: { body: jsonBody(AlertRuleInput, "The rule") },
  responses: { 201: jsonContent(AlertRule, "Created"), ...problems(400, 401, 403, 409, 413, 415) },
});

const listRulesRoute = createRoute({
  method: "get",
  operationId: "listAlertRules",
  path: "/api/alert-rules",
  tags: ["alerts"],
  summary: "Every alert rule",
  security: BEARER,
  middleware: [requireRole("admin")] as const,
  responses: { 200: jsonContent(AlertRuleList, "The rules, oldest first"), ...problems(401, 403) },
});

const getRuleRoute = createRoute({
  method: "get",
  operationId: "getAlertRule",
  path: "/api/alert-rules/{rule_id}",
  tags: ["alerts"],
  summary: "One alert rule",
  security: BEARER,
  middleware: [requireRole("admin")] as const,
  request: { params: RuleIdParam },
  responses: { 200: jsonContent(AlertRule, "The rule"), ...problems(400, 401, 403, 404) },
});

const putRuleRoute = createRoute({
  method: "put",
  operationId: "replaceAlertRule",
  path: "/api/alert-rules/{rule_id}",
  tags: ["alerts"],
  summary: "Replace an alert rule",
  security: BEARER,
  middleware: [requireRole("admin")] as const,
  request: { params: RuleIdParam, body: jsonBody(AlertRuleInput, "The whole new rule") },
  responses: { 200: jsonContent(AlertRule, "Replaced"), ...problems(400, 401, 403, 404, 413, 415) },
});

const deleteRuleRoute = createRoute({
  method: "delete",
  operationId: "deleteAlertRule",
  path: "/api/alert-rules/{rule_id}",
  tags: ["alerts"],
  summary: "Delete an alert rule",
  description: "Its firing alerts resolve at the next evaluation, and receivers are told so.",
  security: BEARER,
  middleware: [requireRole("admin")] as const,
  request: { params: RuleIdParam },
  responses: { 204: deleted, ...problems(400, 401, 403, 404) },
});

const createReceiverRoute = createRoute({
  method: "post",
  operationId: "createAlertReceiver",
  path: "/api/alert-receivers",
  tags: ["alerts"],
  summary: "Add a webhook receiver",
  description:
    'Receivers get the Alertmanager webhook payload (version "4"), signed: `X-Fleet-Relay-Signature: sha256=<hex HMAC-SHA256(secret, "<X-Fleet-Relay-Timestamp>.<body>")>`. The secret is never returned.',
  security: BEARER,
  middleware: [requireRole("admin")] as const,
  request: { body: jsonBody(AlertReceiverInput, "The receiver") },
  responses: { 201: jsonContent(AlertReceiver, "Created (without the secret)"), ...problems(400, 401, 403, 409, 413, 415) },
});

const listReceiversRoute = createRoute({
  method: "get",
  operationId: "listAlertReceivers",
  path: "/api/alert-receivers",
  tags: ["alerts"],
  summary: "Every receiver (without secrets)",
  security: BEARER,
  middleware: [requireRole("admin")] as const,
  responses: { 200: jsonContent(AlertReceiverList, "The receivers, oldest first"), ...problems(401, 403) },
});

const getReceiverRoute = createRoute({
  method: "get",
  operationId: "getAlertReceiver",
  path: "/api/alert-receivers/{receiver_id}",
  tags: ["alerts"],
  summary: "One receiver (without its secret)",
  security: BEARER,
  middleware: [requireRole("admin")] as const,
  request: { params: ReceiverIdParam },
  responses: { 200: jsonContent(AlertReceiver, "The receiver"), ...problems(400, 401, 403, 404) },
});

const putReceiverRoute = createRoute({
  method: "put",
  operationId: "replaceAlertReceiver",
  path: "/api/alert-receivers/{receiver_id}",
  tags: ["alerts"],
  summary: "Replace a receiver's settings",
  description: "Without `secret` the stored secret is kept.",
  security: BEARER,
  middleware: [requireRole("admin")] as const,
  request: { params: ReceiverIdParam, body: jsonBody(AlertReceiverUpdate, "The receiver's new settings") },
  responses: { 200: jsonContent(AlertReceiver, "Replaced"), ...problems(400, 401, 403, 404, 413, 415) },
});

const deleteReceiverRoute = createRoute({
  method: "delete",
  operationId: "deleteAlertReceiver",
  path: "/api/alert-receivers/{receiver_id}",
  tags: ["alerts"],
  summary: "Delete a receiver",
  description: "Its undelivered notifications are dropped.",
  security: BEARER,
  middleware: [requireRole("admin")] as const,
  request: { params: ReceiverIdParam },
  responses: { 204: deleted, ...problems(400, 401, 403, 404) },
});

const listAlertsRoute = createRoute({
  method: "get",
  operationId: "listAlerts",
  path: "/api/alerts",
  tags: ["alerts"],
  summary: "Active alerts and recent history",
  security: BEARER,
  middleware: [requireRole("viewer")] as const,
  request: { query: AlertsQuery },
  responses: { 200: jsonContent(AlertList, "Pending and firing alerts, and resolved ones newest first"), ...problems(400, 401, 403) },
});

const listNotificationsRoute = createRoute({
  method: "get",
  operationId: "listAlertNotifications",
  path: "/api/alert-notifications",
  tags: ["alerts"],
  summary: "Recent notification deliveries",
  description:
    "One row per notification and receiver: pending (retried with backoff), delivered, or failed once ALERT_NOTIFY_MAX_AGE_S (default 24 h) passed without a 2xx answer.",
  security: BEARER,
  middleware: [requireRole("admin")] as const,
  request: { query: AlertNotificationsQuery },
  responses: { 200: jsonContent(AlertNotificationList, "Newest first"), ...problems(400, 401, 403) },
});

function checkReceiverUrl(env: Env, url: string): void {
  const problem = receiverUrlProblem(url, alertConfig(env).allowHttpLoopback);
  if (problem) throw new RelayError(ErrorCode.VALIDATION, `url: ${problem}`, { errors: [{ path: "url", message: problem }] });
}

export const alertRoutes = createRouter()
  .openapi(createRuleRoute, async (c) => {
    const rule = unwrap(await alerting(c.env).createRule(c.req.valid("json"), new URL(c.req.url).origin));
    c.header("Location", `/api/alert-rules/${rule.rule_id}`);
    return c.json(rule, 201);
  })
  .openapi(listRulesRoute, async (c) => c.json(unwrap(await alerting(c.env).listRules()), 200))
  .openapi(getRuleRoute, async (c) => c.json(unwrap(await alerting(c.env).getRule(c.req.valid("param").rule_id)), 200))
  .openapi(putRuleRoute, async (c) => {
    const { rule_id } = c.req.valid("param");
    return c.json(unwrap(await alerting(c.env).updateRule(rule_id, c.req.valid("json"), new URL(c.req.url).origin)), 200);
  })
  .openapi(deleteRuleRoute, async (c) => {
    unwrap(await alerting(c.env).deleteRule(c.req.valid("param").rule_id));
    return c.body(null, 204);
  })
  .openapi(createReceiverRoute, async (c) => {
    const input = c.req.valid("json");
    checkReceiverUrl(c.env, input.url);
    const receiver = unwrap(await alerting(c.env).createReceiver(input));
    c.header("Location", `/api/alert-receivers/${receiver.receiver_id}`);
    return c.json(receiver, 201);
  })
  .openapi(listReceiversRoute, async (c) => c.json(unwrap(await alerting(c.env).listReceivers()), 200))
  .openapi(getReceiverRoute, async (c) => c.json(unwrap(await alerting(c.env).getReceiver(c.req.valid("param").receiver_id)), 200))
  .openapi(putReceiverRoute, async (c) => {
    const input = c.req.valid("json");
    checkReceiverUrl(c.env, input.url);
    return c.json(unwrap(await alerting(c.env).updateReceiver(c.req.valid("param").receiver_id, input)), 200);
  })
  .openapi(deleteReceiverRoute, async (c) => {
    unwrap(await alerting(c.env).deleteReceiver(c.req.valid("param").receiver_id));
    return c.body(null, 204);
  })
  .openapi(listAlertsRoute, async (c) => c.json(unwrap(await alerting(c.env).listAlerts(c.req.valid("query"))), 200))
  .openapi(listNotificationsRoute, async (c) => c.json(unwrap(await alerting(c.env).listNotifications(c.req.valid("query"))), 200));
