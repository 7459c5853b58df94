import { createRoute, z } from "@hono/zod-openapi";
import type { Context } from "hono";
import {
  CommandAccepted,
  CommandListQuery,
  CommandPage,
  CommandRequest,
  CommandView,
  PackageOperation,
  PackageRequest,
} from "../../schemas/index.ts";
import { auditInTransaction, auditRecorded } from "../audit-log/session.ts";
import { assertDeadlineWithinBound } from "../deadline.ts";
import { ErrorCode, RelayError, type RpcResult, unwrap } from "../errors.ts";
import type { CancelResult, EnqueueInput } from "../host-relay/contract.ts";
import { hostRelay } from "../stubs.ts";
import {
  type AppEnv,
  BEARER,
  createRouter,
  HostCommandParams,
  HostIdParam,
  IdempotencyHeader,
  jsonBody,
  jsonContent,
  problems,
  requestHash,
  requireHost,
  requireRole,
} from "./common.ts";

/** Queuing a command: its audit record is written by the HostRelay in the transaction that queues it. */
const IN_TRANSACTION = { inTransaction: true };

const accepted = {
  description: "Queued for delivery; `Location` points at the command",
  headers: z.object({ Location: z.string().openapi({ description: "URL of the command" }) }),
  content: { "application/json": { schema: CommandAccepted } },
};

const installRoute = createRoute({
  method: "post",
  path: "/api/hosts/{host_id}/packages/{operation}",
  operationId: "createPackageOperation",
  tags: ["commands"],
  summary: "Queue a package operation (the product page's request)",
  description:
    "`install`, `remove`, `update` or `upgrade` packages on one host. Package names are checked against a strict pattern; options are a closed set.",
  security: BEARER,
  middleware: [requireRole("operator", IN_TRANSACTION)] as const,
  request: {
    params: HostIdParam.extend({
      operation: z
        .enum(PackageOperation.options)
        .openapi({ param: { name: "operation", in: "path" }, description: "What to do with the packages" }),
    }),
    headers: IdempotencyHeader,
    body: jsonBody(PackageRequest, "Packages, options and delivery controls"),
  },
  responses: { 202: accepted, ...problems(400, 401, 403, 404, 409, 413, 415) },
});

const createCommandRoute = createRoute({
  method: "post",
  path: "/api/hosts/{host_id}/commands",
  operationId: "createCommand",
  tags: ["commands"],
  summary: "Queue any command type",
  security: BEARER,
  middleware: [requireRole("operator", IN_TRANSACTION)] as const,
  request: {
    params: HostIdParam,
    headers: IdempotencyHeader,
    body: jsonBody(CommandRequest, "Command type, its parameters, and delivery controls"),
  },
  responses: { 202: accepted, ...problems(400, 401, 403, 404, 409, 413, 415) },
});

const getCommandRoute = createRoute({
  method: "get",
  path: "/api/hosts/{host_id}/commands/{message_id}",
  operationId: "getCommand",
  tags: ["commands"],
  summary: "A command: state, attempts, full state history, output and result",
  security: BEARER,
  middleware: [requireRole("viewer")] as const,
  request: { params: HostCommandParams },
  responses: { 200: jsonContent(CommandView, "The command"), ...problems(400, 401, 403, 404) },
});

const listCommandsRoute = createRoute({
  method: "get",
  path: "/api/hosts/{host_id}/commands",
  operationId: "listCommands",
  tags: ["commands"],
  summary: "Commands of a host, newest first",
  security: BEARER,
  middleware: [requireRole("viewer")] as const,
  request: { params: HostIdParam, query: CommandListQuery },
  responses: {
    200: jsonContent(CommandPage, "One page; pass next_cursor as cursor for the next"),
    ...problems(400, 401, 403, 404),
  },
});

const cancelRoute = createRoute({
  method: "delete",
  path: "/api/hosts/{host_id}/commands/{message_id}",
  operationId: "cancelCommand",
  tags: ["commands"],
  summary: "Cancel a command, all the way to the host",
  description:
    "A command never sent to the agent is cancelled at once (200, state `cancelled`). One sent at least once (queued again after a lost connection, delivered or running) becomes `cancelling` (202): a `cancel` frame goes to the agent now or on its next connection, and the command ends as the agent reports — `cancelled`, or what it really did if it had already finished. Cancelling a `cancelling` command again answers 202. A final command answers 409.",
  security: BEARER,
  middleware: [requireRole("operator")] as const,
  request: { params: HostCommandParams },
  responses: {
    200: jsonContent(CommandView, "Cancelled: it had never been sent"),
    202: jsonContent(CommandView, "Cancelling: the agent's response decides the final state"),
    ...problems(400, 401, 403, 404, 409),
  },
});

async function queue(
  c: Context<AppEnv>,
  hostId: string,
  input: Omit<EnqueueInput, "host_id" | "idempotency_key" | "request_hash">,
  key: string | undefined,
) {
  assertDeadlineWithinBound(input.expires_at, Date.now());
  const stub = hostRelay(c.env, hostId);
  const result = unwrap(
    await stub.enqueue({
      ...input,
      host_id: hostId,
      idempotency_key: key,
      request_hash: key ? await requestHash([input]) : undefined,
      audit: await auditInTransaction(c, 202),
    }),
  );
  auditRecorded(c);
  c.header("Location", `/api/hosts/${hostId}/commands/${result.message_id}`);
  return result;
}

export const commandRoutes = createRouter()
  .openapi(installRoute, async (c) => {
    const { host_id, operation } = c.req.valid("param");
    const body = c.req.valid("json");
    const key = c.req.valid("header")["idempotency-key"];
    if ((operation === "install" || operation === "remove") && body.packages.length === 0) {
      throw new RelayError(ErrorCode.VALIDATION, `packages: ${operation} needs at least one package`, {
        errors: [{ path: "packages", message: `${operation} needs at least one package` }],
      });
    }
    const result = await queue(
      c,
      host_id,
      {
        command_type: "package_operation",
        parameters: { operation, packages: body.packages, options: body.options },
        timeout: body.timeout,
        expires_at: body.expires_at,
        expires_in: body.expires_in,
        max_attempts: body.max_attempts,
      },
      key,
    );
    return c.json(result, 202);
  })
  .openapi(createCommandRoute, async (c) => {
    const { host_id } = c.req.valid("param");
    const body = c.req.valid("json");
    const key = c.req.valid("header")["idempotency-key"];
    const result = await queue(
      c,
      host_id,
      {
        command_type: body.command_type,
        parameters: body.parameters,
        timeout: body.timeout,
        expires_at: body.expires_at,
        expires_in: body.expires_in,
        max_attempts: body.max_attempts,
      },
      key,
    );
    return c.json(result, 202);
  })
  .openapi(getCommandRoute, async (c) => {
    const { host_id, message_id } = c.req.valid("param");
    await requireHost(c.env, host_id);
    return c.json(unwrap(await hostRelay(c.env, host_id).getCommand(host_id, message_id)), 200);
  })
  .openapi(listCommandsRoute, async (c) => {
    const { host_id } = c.req.valid("param");
    const q = c.req.valid("query");
    await requireHost(c.env, host_id);
    return c.json(
      unwrap(await hostRelay(c.env, host_id).listCommands(host_id, { states: q.state, limit: q.limit, cursor: q.cursor })),
      200,
    );
  })
  .openapi(cancelRoute, async (c) => {
    const { host_id, message_id } = c.req.valid("param");
    await requireHost(c.env, host_id);
    // Typed through the contract: the RPC stub's type mapping drops results that carry `unknown` (the loose `result`).
    const answer = (await hostRelay(c.env, host_id).cancel(host_id, message_id)) as RpcResult<CancelResult>;
    const { outcome, command } = unwrap(answer);
    return outcome === "cancelled" ? c.json(command, 200) : c.json(command, 202);
  });
