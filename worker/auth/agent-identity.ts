import type { Env } from "../env.ts";
import { ErrorCode, RelayError } from "../errors.ts";
import { findHostByFingerprint } from "../registry.ts";

/** Header the local TLS edge sets on every request it forwards (never sent by Cloudflare). */
export const EDGE_SECRET_HEADER = "x-fleet-edge-secret";

/** The expected secret's digest, per isolate: the secret is a binding, the same for every request. */
const expectedDigests = new Map<string, Promise<ArrayBuffer>>();

export async function sameSecret(given: string | null, expected: string): Promise<boolean> {
  if (given === null) return false;
  // Compare digests so the comparison time does not depend on where the strings differ.
  const enc = new TextEncoder();
  let expectedDigest = expectedDigests.get(expected);
  if (expectedDigest === undefined) {
    expectedDigest = crypto.subtle.digest("SHA-256", enc.encode(expected));
    expectedDigests.set(expected, expectedDigest);
  }
  const [a, b] = await Promise.all([crypto.subtle.digest("SHA-256", enc.encode(given)), expectedDigest]);
  const x = new Uint8Array(a);
  const y = new Uint8Array(b);
  let diff = 0;
  for (let i = 0; i < x.length; i++) diff |= x[i]! ^ y[i]!;
  return diff === 0;
}

/**
 * Who is on the other end of an agent connection. Only the TLS terminator's verdict counts:
 * on Cloudflare the edge fills `request.cf.tlsClientAuth`; locally the TLS front does the same
 * through a channel clients cannot write to. Headers are never consulted.
 */
export async function identifyAgent(
  request: Request,
  env: Env,
): Promise<{ hostId: string; fingerprint: string; registration: { revoked_at: string | null; tags: string[] } }> {
  const cf = (request as Request & { cf?: IncomingRequestCfProperties }).cf;
  // Locally the relay's port also accepts a client-supplied cf blob, so there the verdict
  // counts only on requests that carry the local edge's secret.
  const fromEdge = !env.LOCAL_EDGE_SECRET || (await sameSecret(request.headers.get(EDGE_SECRET_HEADER), env.LOCAL_EDGE_SECRET));
  const tls = fromEdge ? cf?.tlsClientAuth : undefined;
  if (tls?.certPresented !== "1") {
    throw new RelayError(ErrorCode.AGENT_CERT_MISSING, "agents must present a client certificate");
  }
  if (tls.certVerified !== "SUCCESS") {
    throw new RelayError(ErrorCode.AGENT_CERT_UNVERIFIED, `client certificate not verified (${tls.certVerified})`);
  }
  if (tls.certRevoked === "1") {
    throw new RelayError(ErrorCode.AGENT_REVOKED, "client certificate is revoked");
  }
  const fingerprint = tls.certFingerprintSHA256.replaceAll(":", "").toLowerCase();
  if (!/^[0-9a-f]{64}$/.test(fingerprint)) {
    throw new RelayError(ErrorCode.AGENT_CERT_UNVERIFIED, "client certificate fingerprint missing");
  }
  const host = await findHostByFingerprint(env.DB, fingerprint);
  if (!host) throw new RelayError(ErrorCode.AGENT_UNKNOWN, "this certificate is not bound to an enrolled host");
  if (host.revoked_at) throw new RelayError(ErrorCode.AGENT_REVOKED, `host ${host.host_id} was revoked`);
  return { hostId: host.host_id, fingerprint, registration: { revoked_at: host.revoked_at, tags: host.tags } };
}
