import { RenewResponse } from "../schemas/index.ts";
import { certificateMatchesKey, certificateTimes, newKeyAndCsr } from "./csr.ts";
import { dnsHostname } from "./host-facts.ts";
import { postJson, problemOf } from "./https-json.ts";
import { relayEndpoints } from "./relay-url.ts";
import { type Credentials, readCredentials, replaceCredentials } from "./state-files.ts";

/** Renew once less than this fraction of the certificate's lifetime is left. */
export const RENEW_FRACTION_LEFT = 1 / 3;

/** True when less than a third of the certificate's lifetime remains (or it has expired). */
export function needsRenewal(certPem: string, now: number = Date.now()): boolean {
  const { notBefore, notAfter } = certificateTimes(certPem);
  return notAfter - now < (notAfter - notBefore) * RENEW_FRACTION_LEFT;
}

/** The relay answered the renewal with an error status. */
export class RenewalRefusedError extends Error {
  override name = "RenewalRefusedError";
  readonly status: number;
  readonly code: string | null;
  constructor(status: number, code: string | null, detail: string | null) {
    super(`renewal refused (HTTP ${status}${code ? ` ${code}` : ""})${detail ? `: ${detail}` : ""}`);
    this.status = status;
    this.code = code;
  }
}

/**
 * Whether a failed renewal is worth retrying soon: the relay unreachable (refused, reset, timed
 * out, TLS cut), or an answer that says "not now" (5xx, 408, 429). A refusal of the certificate or
 * the CSR (other 4xx) or a malformed reply will not change by retrying in a minute.
 */
export function isTransientRenewalFailure(err: unknown): boolean {
  if (err instanceof RenewalRefusedError) return err.status >= 500 || err.status === 408 || err.status === 429;
  if (err instanceof RenewalReplyError) return false;
  return true;
}

/** The relay's renewal reply could not be used (wrong shape, certificate for another key). */
export class RenewalReplyError extends Error {
  override name = "RenewalReplyError";
}

/** How long ago (ms, by `now`) the certificate expired; negative while it is still valid. */
export function expiredForMs(certPem: string, now: number): number {
  return now - certificateTimes(certPem).notAfter;
}

export interface RenewOptions {
  relay: string;
  stateDir: string;
  /** Trust anchors for the relay's TLS certificate; undefined = Node's bundled roots. */
  ca: string[] | undefined;
}

/**
 * A new key and certificate over mutual TLS with the current pair, written atomically as a
 * pair. The current certificate stays valid, so a failure here changes nothing.
 */
export async function renewCertificate(opts: RenewOptions): Promise<{ notAfter: string }> {
  const current: Credentials = await readCredentials(opts.stateDir);
  const next = await newKeyAndCsr(dnsHostname());
  const reply = await postJson(
    relayEndpoints(opts.relay).renew,
    { csr: next.csrPem },
    { ca: opts.ca, cert: current.certPem, key: current.keyPem },
  );
  if (reply.status !== 200) {
    const p = problemOf(reply.body);
    throw new RenewalRefusedError(reply.status, p.code, p.detail);
  }
  const parsed = RenewResponse.safeParse(reply.body);
  if (!parsed.success) throw new RenewalReplyError(`the relay's renewal reply is not the expected shape: ${parsed.error.message}`);
  if (!certificateMatchesKey(parsed.data.certificate, next.keyPem))
    throw new RenewalReplyError("the relay returned a certificate for a different key");
  // ca.crt is left alone: it anchors trust in the relay's TLS certificate, which a CA change
  // on the relay's side does not by itself move.
  await replaceCredentials(opts.stateDir, { certPem: parsed.data.certificate, keyPem: next.keyPem });
  return { notAfter: parsed.data.not_after };
}
