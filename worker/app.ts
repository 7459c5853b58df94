import { swaggerUI } from "@hono/swagger-ui";
import { bodyLimit } from "hono/body-limit";
import { HTTPException } from "hono/http-exception";
import { Limits } from "../schemas/index.ts";
import { ErrorCode, problemResponse, RelayError } from "./errors.ts";
import { isJsonContentType } from "./media-type.ts";
import { requestMetrics } from "./metrics/http-metrics.ts";
import { agentRoutes } from "./routes/agent.ts";
import { commandRoutes } from "./routes/commands.ts";
import { createRouter } from "./routes/common.ts";
import { deadLetterRoutes } from "./routes/dead-letters.ts";
import { enrollmentTokenRoutes } from "./routes/enrollment-tokens.ts";
import { eventRoutes } from "./routes/events.ts";
import { healthRoutes } from "./routes/health.ts";
import { hostRoutes } from "./routes/hosts.ts";
import { jobRoutes } from "./routes/jobs.ts";
import { metricsRoutes } from "./routes/metrics.ts";
import { tagRoutes } from "./routes/tags.ts";
import { securityHeaders } from "./security-headers.ts";
import { strictJsonBodies } from "./strict-body.ts";

export function createApp() {
  const app = createRouter();
  // First, so it times everything after it, refusals and errors included.
  app.use("*", requestMetrics);
  app.use("*", securityHeaders);

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
  app.route("/", metricsRoutes);

  app.openAPIRegistry.registerComponent("securitySchemes", "bearerAuth", {
    type: "http",
    scheme: "bearer",
    bearerFormat: "JWT",
    description: "JWT with a `role` claim: viewer (read), operator (send commands) or admin (hosts, revocation).",
  });
  app.doc31("/openapi.json", {
    openapi: "3.1.0",
    info: {
      title: "Fleet relay",
      version: "1.0.0",
      description: "Command relay for fleets of machines. Errors are RFC 9457 problem+json documents with a stable `code`.",
    },
  });
  app.get("/docs", swaggerUI({ url: "/openapi.json", title: "Fleet relay API" }));

  app.notFound((c) => problemResponse(new RelayError(ErrorCode.NOT_FOUND, `no route for ${c.req.method} ${c.req.path}`), c.req.path));
  app.onError((err, c) => {
    if (err instanceof RelayError) return problemResponse(err, c.req.path);
    if (err instanceof HTTPException && err.status === 400) {
      return problemResponse(new RelayError(ErrorCode.MALFORMED_JSON, err.message || "malformed JSON body"), c.req.path);
    }
    if (err instanceof HTTPException && err.status === 415) {
      return problemResponse(new RelayError(ErrorCode.UNSUPPORTED_MEDIA_TYPE, "send the body as application/json"), c.req.path);
    }
    if (err instanceof HTTPException && err.status === 413) {
      return problemResponse(
        new RelayError(ErrorCode.BODY_TOO_LARGE, `request bodies are limited to ${Limits.MAX_BODY_BYTES} bytes`),
        c.req.path,
      );
    }
    console.error("unhandled error", err);
    return problemResponse(new RelayError(ErrorCode.INTERNAL, "internal error"), c.req.path);
  });
  return app;
}
