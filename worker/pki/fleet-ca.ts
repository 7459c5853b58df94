// @peculiar/x509 resolves its ASN.1 codecs through tsyringe, which needs the Reflect metadata API first.
import "reflect-metadata";
import * as x509 from "@peculiar/x509";

/** Fleet CA and agent keys: ECDSA P-256, signatures SHA-256. */
export const KEY_ALGORITHM = { name: "ECDSA", namedCurve: "P-256" } as const;
const SIGNING = { name: "ECDSA", hash: "SHA-256" } as const;
/** Agent certificates live 90 days by default; agents renew with a third left. */
export const AGENT_CERT_DAYS = 90;
const DAY_MS = 86_400_000;

// Named through WebCrypto's own signatures so the module type-checks under Workers and Node types alike.
type Key = Awaited<ReturnType<typeof crypto.subtle.importKey>>;
type KeyPair = { publicKey: Key; privateKey: Key };
/** Tolerates clocks a little behind the relay's. */
const BACKDATE_MS = 5 * 60_000;

export interface FleetCa {
  cert: x509.X509Certificate;
  key: Key;
}

export interface IssuedCertificate {
  certificatePem: string;
  fingerprintSha256: string;
  notAfter: Date;
}

export function pemBody(pem: string, label: string): ArrayBuffer {
  const m = new RegExp(`-----BEGIN ${label}-----([A-Za-z0-9+/=\\s]+)-----END ${label}-----`).exec(pem);
  if (!m) throw new Error(`not a PEM ${label}`);
  const bin = atob(m[1]!.replace(/\s+/g, ""));
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out.buffer;
}

export function toPem(der: ArrayBuffer, label: string): string {
  const bytes = new Uint8Array(der);
  let bin = "";
  for (const b of bytes) bin += String.fromCharCode(b);
  const b64 = btoa(bin)
    .replace(/(.{64})/g, "$1\n")
    .trimEnd();
  return `-----BEGIN ${label}-----\n${b64}\n-----END ${label}-----\n`;
}

export async function loadCa(certPem: string, keyPem: string): Promise<FleetCa> {
  const cert = new x509.X509Certificate(certPem);
  const key = await crypto.subtle.importKey("pkcs8", pemBody(keyPem, "PRIVATE KEY"), KEY_ALGORITHM, false, ["sign"]);
  return { cert, key };
}

/** A new self-signed fleet CA; the private key is returned as PKCS#8 PEM for the operator to keep secret. */
export async function createCa(commonName: string, years = 10): Promise<{ certificatePem: string; keyPem: string }> {
  const keys = (await crypto.subtle.generateKey(KEY_ALGORITHM, true, ["sign", "verify"])) as KeyPair;
  const now = Date.now();
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: randomSerial(),
    name: `CN=${commonName}`,
    notBefore: new Date(now - BACKDATE_MS),
    notAfter: new Date(now + years * 365 * DAY_MS),
    keys,
    signingAlgorithm: SIGNING,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  const pkcs8 = (await crypto.subtle.exportKey("pkcs8", keys.privateKey)) as ArrayBuffer;
  return { certificatePem: cert.toString("pem") + "\n", keyPem: toPem(pkcs8, "PRIVATE KEY") };
}

/** A TLS server certificate for the local edge, with DNS names and IP addresses as SANs. */
export async function issueServerCertificate(
  ca: FleetCa,
  names: { dns: string[]; ip: string[] },
  days = 825,
): Promise<{ certificatePem: string; keyPem: string }> {
  const keys = (await crypto.subtle.generateKey(KEY_ALGORITHM, true, ["sign", "verify"])) as KeyPair;
  const cert = await issue(ca, keys.publicKey, `CN=${names.dns[0] ?? names.ip[0] ?? "relay"}`, days, [
    new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
    new x509.SubjectAlternativeNameExtension([
      ...names.dns.map((value) => ({ type: "dns" as const, value })),
      ...names.ip.map((value) => ({ type: "ip" as const, value })),
    ]),
  ]);
  const pkcs8 = (await crypto.subtle.exportKey("pkcs8", keys.privateKey)) as ArrayBuffer;
  return { certificatePem: cert.toString("pem") + "\n", keyPem: toPem(pkcs8, "PRIVATE KEY") };
}

export type CsrProblem = "malformed" | "bad_signature" | "unsupported_key";

/** Parses and verifies a PKCS#10 request: its self-signature proves the requester holds the key. */
export async function verifyCsr(
  csrPem: string,
): Promise<{ ok: true; csr: x509.Pkcs10CertificateRequest } | { ok: false; problem: CsrProblem }> {
  let csr: x509.Pkcs10CertificateRequest;
  try {
    csr = new x509.Pkcs10CertificateRequest(csrPem);
  } catch {
    return { ok: false, problem: "malformed" };
  }
  const alg = csr.publicKey.algorithm as { name: string; namedCurve?: string };
  if (alg.name !== "ECDSA" || !["P-256", "P-384"].includes(alg.namedCurve ?? "")) return { ok: false, problem: "unsupported_key" };
  try {
    if (!(await csr.verify())) return { ok: false, problem: "bad_signature" };
  } catch {
    return { ok: false, problem: "bad_signature" };
  }
  return { ok: true, csr };
}

/** Signs an agent's client certificate for `hostId`, over the key in its (verified) CSR. */
export async function issueAgentCertificate(
  ca: FleetCa,
  csr: x509.Pkcs10CertificateRequest,
  hostId: string,
  days = AGENT_CERT_DAYS,
): Promise<IssuedCertificate> {
  const publicKey = await csr.publicKey.export();
  const cert = await issue(ca, publicKey, `CN=${hostId}, O=fleet-relay agent`, days, [
    new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.clientAuth]),
    new x509.SubjectAlternativeNameExtension([{ type: "url", value: `urn:fleet-relay:host:${hostId}` }]),
  ]);
  return {
    certificatePem: cert.toString("pem") + "\n",
    fingerprintSha256: await fingerprintSha256(cert),
    notAfter: cert.notAfter,
  };
}

async function issue(ca: FleetCa, publicKey: Key, subject: string, days: number, extensions: x509.Extension[]) {
  const now = Date.now();
  return x509.X509CertificateGenerator.create({
    serialNumber: randomSerial(),
    subject,
    issuer: ca.cert.subject,
    notBefore: new Date(now - BACKDATE_MS),
    notAfter: new Date(now + days * DAY_MS),
    publicKey,
    signingKey: ca.key,
    signingAlgorithm: SIGNING,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      await x509.SubjectKeyIdentifierExtension.create(publicKey),
      await x509.AuthorityKeyIdentifierExtension.create(ca.cert),
      ...extensions,
    ],
  });
}

export async function fingerprintSha256(cert: x509.X509Certificate): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", cert.rawData);
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

function randomSerial(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  bytes[0] = bytes[0]! & 0x7f; // positive INTEGER
  return [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("");
}
