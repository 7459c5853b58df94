// @peculiar/x509 resolves its ASN.1 codecs through tsyringe, which needs the Reflect metadata API first.
import "reflect-metadata";
import { createPrivateKey, X509Certificate } from "node:crypto";
import * as x509 from "@peculiar/x509";

/** Agent keys are ECDSA P-256 signed with SHA-256, as the fleet CA expects. */
const KEY_ALGORITHM = { name: "ECDSA", namedCurve: "P-256" } as const;
const SIGNING = { name: "ECDSA", hash: "SHA-256" } as const;

export interface KeyAndCsr {
  /** PKCS#8 PEM; written only to the state directory with mode 0600. */
  keyPem: string;
  /** PKCS#10 PEM sent to the relay. */
  csrPem: string;
}

/** A fresh key pair (WebCrypto) and a CSR over it, self-signed to prove possession. */
export async function newKeyAndCsr(commonName: string): Promise<KeyAndCsr> {
  const keys = await crypto.subtle.generateKey(KEY_ALGORITHM, true, ["sign", "verify"]);
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({
    name: `CN=${commonName.replace(/[,+="\\<>;#]/g, "-")}`,
    keys,
    signingAlgorithm: SIGNING,
  });
  const pkcs8 = await crypto.subtle.exportKey("pkcs8", keys.privateKey);
  return { keyPem: toPem(pkcs8, "PRIVATE KEY"), csrPem: `${csr.toString("pem")}\n` };
}

export function toPem(der: ArrayBuffer, label: string): string {
  const b64 = Buffer.from(der)
    .toString("base64")
    .replace(/(.{64})/g, "$1\n")
    .trimEnd();
  return `-----BEGIN ${label}-----\n${b64}\n-----END ${label}-----\n`;
}

/** True when `certPem` certifies the public half of `keyPem` (a relay cannot hand back someone else's certificate). */
export function certificateMatchesKey(certPem: string, keyPem: string): boolean {
  try {
    return new X509Certificate(certPem).checkPrivateKey(createPrivateKey(keyPem));
  } catch {
    return false;
  }
}

export interface CertificateTimes {
  notBefore: number;
  notAfter: number;
}

export function certificateTimes(certPem: string): CertificateTimes {
  const cert = new X509Certificate(certPem);
  return { notBefore: cert.validFromDate.getTime(), notAfter: cert.validToDate.getTime() };
}
