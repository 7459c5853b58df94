import { createRoute } from "@hono/zod-openapi";
import { identifyAgent } from "../auth/agent-identity.ts";
import { ErrorCode, RelayError } from "../errors.ts";
import { INTERNAL_HOST_HEADER } from "../host-relay/connection.ts";
import { createRouter, hostRelay, problems } from "./common.ts";

const connectRoute = createRoute({
  method: "get",
  path: "/agent/connect",
  tags: ["agents"],
  summary: "WebSocket for agents (mutual TLS)",
  description:
    "Identity comes only from the verified client certificate (`request.cf.tlsClientAuth`), whose SHA-256 fingerprint must belong to a registered, non-revoked host. Everything else is refused before the upgrade. Frames follow the wire protocol v1.",
  responses: {
    101: { description: "Switching protocols; the agent sends `hello` first" },
    ...problems(401, 403, 426),
  },
});

export const agentRoutes = createRouter().openapi(connectRoute, async (c) => {
  // Identity before anything else, so an unauthenticated caller learns nothing about the endpoint.
  const { hostId } = await identifyAgent(c.req.raw, c.env);
  if (c.req.header("upgrade")?.toLowerCase() !== "websocket") {
    throw new RelayError(ErrorCode.UPGRADE_REQUIRED, 426, "connect with a WebSocket upgrade");
  }
  // A fresh request: nothing the client sent reaches the object except through our own header.
  const forward = new Request("https://host-relay.internal/connect", {
    headers: { upgrade: "websocket", [INTERNAL_HOST_HEADER]: hostId },
  });
  return hostRelay(c.env, hostId).fetch(forward);
});
