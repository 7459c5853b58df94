import { createRoute } from "@hono/zod-openapi";
import type { MiddlewareHandler } from "hono";
import { EnrollRequest, EnrollResponse, RenewRequest, RenewResponse } from "../../schemas/index.ts";
import { auditGate } from "../audit-log/session.ts";
import { identifyAgent } from "../auth/agent-identity.ts";
import { sourceAddress, UNTRUSTED_SOURCE } from "../auth/source-address.ts";
import { relayConfig } from "../config.ts";
import { countEnrollmentAttempt } from "../enrollment-rate.ts";
import { ErrorCode, RelayError } from "../errors.ts";
import {
  INTERNAL_ADDRESS_HEADER,
  INTERNAL_FINGERPRINT_HEADER,
  INTERNAL_HOST_HEADER,
  INTERNAL_REGISTRATION_HEADER,
  INTERNAL_REQUEST_ID_HEADER,
} from "../host-relay/contract.ts";
import { M } from "../metrics/catalogue.ts";
import { countWorker } from "../metrics/worker-recorder.ts";
import { fleetCa, sha256Hex } from "../pki/ca-binding.ts";
import { type FleetCa, type IssuedCertificate, issueAgentCertificate, verifyCsr } from "../pki/fleet-ca.ts";
import { addHostCertificate, enrollHost, findEnrollmentToken } from "../registry.ts";
import { hostRelay } from "../stubs.ts";
import { AGENT_CERTIFICATE, type AppEnv, createRouter, jsonBody, jsonContent, PUBLIC, problems } from "./common.ts";

/** Agents reach these routes through the TLS edge that asks for their client certificate, not the REST host. */
const AGENT_SERVERS = [
  { url: "https://127.0.0.1:8443", description: "Local TLS edge started by `npm start` (client certificates from .relay/pki/ca.crt)" },
  {
    url: "https://{agent_host}",
    description: "Production: the agent hostname, where Cloudflare checks client certificates against the fleet CA",
    variables: { agent_host: { default: "agents.fleet.invalid", description: "Your agent hostname (route `<host>/agent/*`)" } },
  },
];

const CERT_REFUSED = "No verified client certificate (ERR_AGENT_CERT_MISSING)";
const AGENT_REFUSED = "The certificate is unverified, or not a registered, non-revoked host's";

const connectRoute = createRoute({
  method: "get",
  path: "/agent/connect",
  operationId: "connectAgent",
  tags: ["agents"],
  summary: "WebSocket for agents (mutual TLS)",
  servers: AGENT_SERVERS,
  security: AGENT_CERTIFICATE,
  description:
    "Identity comes only from the verified client certificate (`request.cf.tlsClientAuth`), whose SHA-256 fingerprint must belong to a registered, non-revoked host. Everything else is refused before the upgrade. Frames follow the wire protocol v1.",
  responses: {
    101: { description: "Switching protocols; the agent sends `hello` first" },
    ...problems([401, CERT_REFUSED], [403, AGENT_REFUSED], 426),
  },
});

/** Counted before the body is validated or the token looked at: every attempt costs the same. */
const limitEnrollment: MiddlewareHandler<AppEnv> = async (c, next) => {
  const config = relayConfig(c.env);
  const address = await sourceAddress(c.req.raw, c.env);
  await countEnrollmentAttempt(c.env.DB, address, { limit: config.enrollRateLimit, windowMs: config.enrollRateWindowMs }, Date.now());
  // Past the rate limit, the attempt is recorded (fail-closed) before the token is looked at.
  await auditGate(c, { kind: "agent" });
  await next();
};

const enrollRoute = createRoute({
  method: "post",
  path: "/agent/enroll",
  operationId: "enrollAgent",
  middleware: [limitEnrollment] as const,
  tags: ["agents"],
  servers: AGENT_SERVERS,
  // The enrolment token in the body is the credential; no header or certificate is asked for.
  security: PUBLIC,
  summary: "Enrol an agent: enrolment token + CSR → client certificate",
  description:
    "The agent generates its key pair and sends only a CSR; the fleet CA signs a client certificate (90 days) bound to a new host id, and the token is burned in the same transaction. The only agent path reachable without a client certificate.",
  request: { body: jsonBody(EnrollRequest, "Token, PEM CSR, host name") },
  responses: {
    201: jsonContent(EnrollResponse, "Enrolled: the host id, its certificate and the CA certificate"),
    ...problems(400, [401, "The enrolment token is unknown, expired or used"], 413, 415, 429),
  },
});

const renewRoute = createRoute({
  method: "post",
  path: "/agent/renew",
  operationId: "renewAgentCertificate",
  tags: ["agents"],
  servers: AGENT_SERVERS,
  security: AGENT_CERTIFICATE,
  summary: "Renew an agent's certificate (mutual TLS with the current one)",
  description: "A new certificate for the same host over a new CSR; the current one stays valid until it expires.",
  request: { body: jsonBody(RenewRequest, "PEM CSR for the new key") },
  responses: {
    200: jsonContent(RenewResponse, "The new certificate"),
    ...problems(400, [401, CERT_REFUSED], [403, AGENT_REFUSED], 413, 415),
  },
});

const CSR_DETAIL = {
  malformed: "the CSR is not a valid PKCS#10 request",
  bad_signature: "the CSR's signature does not verify",
  unsupported_key: "the CSR's key must be ECDSA P-256 or P-384",
} as const;

function certificateReply(hostId: string, issued: IssuedCertificate, ca: FleetCa): EnrollResponse {
  return {
    host_id: hostId,
    certificate: issued.certificatePem,
    ca_certificate: ca.cert.toString("pem") + "\n",
    not_after: issued.notAfter.toISOString(),
  };
}

async function verifiedCsr(pem: string) {
  const checked = await verifyCsr(pem);
  if (!checked.ok) {
    throw new RelayError(ErrorCode.CSR_INVALID, CSR_DETAIL[checked.problem], {
      errors: [{ path: "csr", message: CSR_DETAIL[checked.problem] }],
    });
  }
  return checked.csr;
}

export const agentRoutes = createRouter()
  .openapi(connectRoute, async (c) => {
    // Identity before anything else, so an unauthenticated caller learns nothing about the endpoint.
    const { hostId, fingerprint, registration } = await identifyAgent(c.req.raw, c.env).catch((err: unknown) => {
      if (err instanceof RelayError) countWorker(M.CONNECTIONS_REFUSED, { reason: err.code });
      throw err;
    });
    if (c.req.header("upgrade")?.toLowerCase() !== "websocket") {
      countWorker(M.CONNECTIONS_REFUSED, { reason: ErrorCode.UPGRADE_REQUIRED });
      throw new RelayError(ErrorCode.UPGRADE_REQUIRED, "connect with a WebSocket upgrade");
    }
    const address = await sourceAddress(c.req.raw, c.env);
    // A fresh request: nothing the client sent reaches the object except through our own headers.
    const forward = new Request("https://host-relay.internal/connect", {
      headers: {
        upgrade: "websocket",
        [INTERNAL_HOST_HEADER]: hostId,
        [INTERNAL_FINGERPRINT_HEADER]: fingerprint,
        [INTERNAL_ADDRESS_HEADER]: address === UNTRUSTED_SOURCE ? "" : address,
        [INTERNAL_REQUEST_ID_HEADER]: c.get("requestId") ?? "",
        // Just read from the registry: the object takes it as its registry check instead of reading again.
        [INTERNAL_REGISTRATION_HEADER]: JSON.stringify(registration),
      },
    });
    return hostRelay(c.env, hostId).fetch(forward);
  })
  .openapi(enrollRoute, async (c) => {
    const body = c.req.valid("json");
    const tokenHash = await sha256Hex(body.token);
    const now = new Date();
    const token = await findEnrollmentToken(c.env.DB, tokenHash);
    if (!token) throw new RelayError(ErrorCode.ENROLLMENT_TOKEN_INVALID, "this enrolment token does not exist");
    if (token.used_at) throw new RelayError(ErrorCode.ENROLLMENT_TOKEN_USED, `this enrolment token was used at ${token.used_at}`);
    if (token.expires_at <= now.toISOString()) {
      throw new RelayError(ErrorCode.ENROLLMENT_TOKEN_EXPIRED, `this enrolment token expired at ${token.expires_at}`);
    }
    const csr = await verifiedCsr(body.csr);
    const ca = await fleetCa(c.env);
    const hostId = crypto.randomUUID();
    const issued = await issueAgentCertificate(ca, csr, hostId);
    const enrolled = await enrollHost(c.env.DB, {
      token_hash: tokenHash,
      host_id: hostId,
      hostname: body.hostname,
      fingerprint: issued.fingerprintSha256,
      not_after: issued.notAfter.toISOString(),
      now: now.toISOString(),
    });
    // Lost a race with another enrolment (or the token expired meanwhile): nothing was written.
    if (!enrolled) throw new RelayError(ErrorCode.ENROLLMENT_TOKEN_USED, "this enrolment token is no longer usable");
    const session = c.get("audit");
    if (session) session.actorExtra = { ...session.actorExtra, sub: hostId, cert_fingerprint: issued.fingerprintSha256 };
    return c.json(certificateReply(hostId, issued, ca), 201);
  })
  .openapi(renewRoute, async (c) => {
    const { hostId, fingerprint } = await identifyAgent(c.req.raw, c.env);
    const session = c.get("audit");
    if (session) session.target.host_id = hostId;
    await auditGate(c, { kind: "agent", sub: hostId, cert_fingerprint: fingerprint });
    const body = c.req.valid("json");
    const csr = await verifiedCsr(body.csr);
    const ca = await fleetCa(c.env);
    const issued = await issueAgentCertificate(ca, csr, hostId);
    await addHostCertificate(c.env.DB, {
      host_id: hostId,
      fingerprint: issued.fingerprintSha256,
      not_after: issued.notAfter.toISOString(),
      now: new Date().toISOString(),
    });
    return c.json(certificateReply(hostId, issued, ca), 200);
  });
