import { bodyLimit } from "hono/body-limit";
import { HTTPException } from "hono/http-exception";
import { Limits } from "../schemas/index.ts";
import { auditTrail } from "./audit-log/middleware.ts";
import { ErrorCode, problemResponse, RelayError } from "./errors.ts";
import { errorFields, log } from "./log.ts";
import { isJsonContentType } from "./media-type.ts";
import { requestMetrics } from "./metrics/http-metrics.ts";
import { requestId } from "./request-id.ts";
import { agentRoutes } from "./routes/agent.ts";
import { alertRoutes } from "./routes/alerts.ts";
import { auditRoutes } from "./routes/audit.ts";
import { commandRoutes } from "./routes/commands.ts";
import { createRouter } from "./routes/common.ts";
import { deadLetterRoutes } from "./routes/dead-letters.ts";
import { docsRoutes } from "./routes/docs.ts";
import { enrollmentTokenRoutes } from "./routes/enrollment-tokens.ts";
import { eventRoutes } from "./routes/events.ts";
import { healthRoutes } from "./routes/health.ts";
import { hostRoutes } from "./routes/hosts.ts";
import { jobRoutes } from "./routes/jobs.ts";
import { metricsRoutes } from "./routes/metrics.ts";
import { tagRoutes } from "./routes/tags.ts";
import { testPublishRoutes } from "./routes/test-publish.ts";
import { whoamiRoutes } from "./routes/whoami.ts";
import { securityHeaders } from "./security-headers.ts";
import { strictJsonBodies } from "./strict-body.ts";

export function createApp() {
  const app = createRouter();
  // First, so every response (errors, 404s) carries X-Request-Id and every log line the id.
  app.use("*", requestId);
  // Next, so it times everything after it, refusals and errors included.
  app.use("*", requestMetrics);
  app.use("*", securityHeaders);
  // Wraps everything after it: sees each mutation's outcome and each refusal (401/403).
  app.use("*", auditTrail);

  const limitBodies = bodyLimit({
    maxSize: Limits.MAX_BODY_BYTES,
    onError: () => {
      throw new RelayError(ErrorCode.BODY_TOO_LARGE, `request bodies are limited to ${Limits.MAX_BODY_BYTES} bytes`);
    },
  });
  app.use("/api/*", limitBodies);
  app.use("/agent/*", limitBodies);
  app.use("*", async (c, next) => {
    const hasBody = c.req.header("content-length") ? c.req.header("content-length") !== "0" : c.req.raw.body !== null;
    if (hasBody && ["POST", "PUT", "PATCH"].includes(c.req.method) && !isJsonContentType(c.req.header("content-type") ?? "")) {
      throw new RelayError(ErrorCode.UNSUPPORTED_MEDIA_TYPE, "send the body as application/json");
    }
    await next();
  });
  app.use("*", strictJsonBodies);

  app.route("/", healthRoutes);
  app.route("/", hostRoutes);
  app.route("/", commandRoutes);
  app.route("/", deadLetterRoutes);
  app.route("/", enrollmentTokenRoutes);
  app.route("/", agentRoutes);
  app.route("/", tagRoutes);
  app.route("/", jobRoutes);
  app.route("/", eventRoutes);
  app.route("/", alertRoutes);
  app.route("/", whoamiRoutes);
  app.route("/", auditRoutes);
  app.route("/", metricsRoutes);
  app.route("/", testPublishRoutes);

  app.openAPIRegistry.registerComponent("securitySchemes", "bearerAuth", {
    type: "http",
    scheme: "bearer",
    bearerFormat: "JWT",
    description: "JWT with a `role` claim: viewer (read), operator (send commands) or admin (hosts, revocation).",
  });
  // OpenAPI 3.1's mutualTLS, which the registry's (3.0) types do not list yet.
  app.openAPIRegistry.registerComponent("securitySchemes", "agentCertificate", {
    type: "mutualTLS",
    description:
      "The agent's client certificate, issued by the fleet CA on enrolment and checked at the TLS edge; its SHA-256 fingerprint must belong to a registered, non-revoked host.",
  } as unknown as { type: "http" });
  // Regenerate the committed openapi.json with `npm run openapi` after changing anything here or in a route.
  app.doc31("/openapi.json", {
    openapi: "3.1.0",
    info: {
      title: "Fleet relay",
      version: "1.0.0",
      description: "Command relay for fleets of machines. Errors are RFC 9457 problem+json documents with a stable `code`.",
      contact: { name: "Fleet relay maintainers" },
      // No licence is granted (the package is private); an SPDX LicenseRef says so. Replace it if the project is licensed.
      // `identifier` is OpenAPI 3.1's SPDX field, which the generator's (3.0) types do not list.
      license: { name: "Proprietary", identifier: "LicenseRef-Proprietary" } as { name: string },
    },
    servers: [
      { url: "http://127.0.0.1:8787", description: "Local relay started by `npm start`" },
      {
        url: "https://{api_host}",
        description: "Production: the REST hostname the Worker is deployed on (without client-certificate checking)",
        variables: {
          api_host: { default: "fleet-relay.workers.invalid", description: "Your REST hostname, e.g. the Worker's workers.dev name" },
        },
      },
    ],
  });
  app.route("/", docsRoutes);

  app.notFound((c) =>
    problemResponse(new RelayError(ErrorCode.NOT_FOUND, `no route for ${c.req.method} ${c.req.path}`), c.req.path, c.get("requestId")),
  );
  app.onError((err, c) => {
    const id = c.get("requestId");
    if (err instanceof RelayError) return problemResponse(err, c.req.path, id);
    if (err instanceof HTTPException && err.status === 400) {
      return problemResponse(new RelayError(ErrorCode.MALFORMED_JSON, err.message || "malformed JSON body"), c.req.path, id);
    }
    if (err instanceof HTTPException && err.status === 415) {
      return problemResponse(new RelayError(ErrorCode.UNSUPPORTED_MEDIA_TYPE, "send the body as application/json"), c.req.path, id);
    }
    if (err instanceof HTTPException && err.status === 413) {
      return problemResponse(
        new RelayError(ErrorCode.BODY_TOO_LARGE, `request bodies are limited to ${Limits.MAX_BODY_BYTES} bytes`),
        c.req.path,
        id,
      );
    }
    (c.get("log") ?? log).error("unhandled error", { method: c.req.method, path: c.req.path, error: errorFields(err) });
    return problemResponse(new RelayError(ErrorCode.INTERNAL, "internal error"), c.req.path, id);
  });
  return app;
}
