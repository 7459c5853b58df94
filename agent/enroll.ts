import path from "node:path";
import { EnrollResponse } from "../schemas/index.ts";
import { certificateMatchesKey, newKeyAndCsr } from "./csr.ts";
import { dnsHostname } from "./host-facts.ts";
import { postJson, problemOf } from "./https-json.ts";
import { relayEndpoints } from "./relay-url.ts";
import { ensureStateDir, exists, statePath, writeFileAtomic, writeIdentity } from "./state-files.ts";
import { trustAnchors } from "./tls-trust.ts";

export interface EnrollOptions {
  /** Relay base URL (https). Required. */
  relay: string;
  /** Enrolment token from an admin (`POST /api/enrollment-tokens`). Required. */
  token: string;
  /** Where the key, certificates and agent.json are written. Required. */
  stateDir: string;
  /** PEM file trusted for the relay's TLS certificate. Default: the system CA store. */
  caFile?: string;
  /** Host name sent with the CSR. Default: os.hostname(), made DNS-safe. */
  hostname?: string;
  /** Replace an existing enrolment in stateDir. Default false. */
  force?: boolean;
}

export interface Enrolled {
  hostId: string;
  notAfter: string;
  stateDir: string;
}

/** The relay refused the enrolment (bad, used or expired token; bad CSR). */
export class EnrollRefusedError extends Error {
  override name = "EnrollRefusedError";
  readonly status: number;
  readonly code: string | null;
  readonly detail: string | null;
  constructor(status: number, code: string | null, detail: string | null) {
    super(`enrolment refused by the relay (HTTP ${status}${code ? ` ${code}` : ""})${detail ? `: ${detail}` : ""}`);
    this.status = status;
    this.code = code;
    this.detail = detail;
  }
}

export class AlreadyEnrolledError extends Error {
  override name = "AlreadyEnrolledError";
}

/**
 * Enrols this host: a new key pair made here, a CSR with the token to the relay, and the
 * returned certificate, CA and host id written to the state directory. The private key is
 * written only to disk (0600) and never sent.
 */
export async function enroll(opts: EnrollOptions): Promise<Enrolled> {
  const stateDir = path.resolve(opts.stateDir);
  const endpoints = relayEndpoints(opts.relay);
  if (!opts.force && (await exists(statePath(stateDir, "identity")))) {
    throw new AlreadyEnrolledError(`${stateDir} already holds an enrolled agent; pass --force to replace it`);
  }
  const caFile = opts.caFile ? path.resolve(opts.caFile) : null;
  const hostname = dnsHostname(opts.hostname);
  const { keyPem, csrPem } = await newKeyAndCsr(hostname);

  const reply = await postJson(
    endpoints.enroll,
    { token: opts.token, csr: csrPem, hostname },
    { ca: trustAnchors(caFile ? { systemCa: false, caFile } : { systemCa: true, caFile: "" }) },
  );
  if (reply.status !== 201) {
    const problem = problemOf(reply.body);
    throw new EnrollRefusedError(reply.status, problem.code, problem.detail ?? problem.title ?? (reply.text.slice(0, 500) || null));
  }
  const parsed = EnrollResponse.safeParse(reply.body);
  if (!parsed.success) throw new Error(`the relay's enrolment reply is not the expected shape: ${parsed.error.message}`);
  const issued = parsed.data;
  if (!certificateMatchesKey(issued.certificate, keyPem)) throw new Error("the relay returned a certificate for a different key");

  await ensureStateDir(stateDir);
  await writeFileAtomic(statePath(stateDir, "key"), keyPem, 0o600);
  await writeFileAtomic(statePath(stateDir, "cert"), issued.certificate, 0o644);
  await writeFileAtomic(statePath(stateDir, "ca"), issued.ca_certificate, 0o644);
  // Written last: its presence means the enrolment is complete.
  await writeIdentity(stateDir, {
    host_id: issued.host_id,
    relay: opts.relay,
    ca_file: caFile,
    system_ca: caFile === null,
    hostname,
    enrolled_at: new Date().toISOString(),
  });
  return { hostId: issued.host_id, notAfter: issued.not_after, stateDir };
}
