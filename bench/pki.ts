/**
 * Client certificates for many hosts, signed by the local stack's development CA
 * (`<stateDir>/pki/ca.key`, `ca.crt`). One key pair is shared: the relay binds a host to its
 * certificate's fingerprint, and every certificate (new serial, new CN) has its own.
 */
import "reflect-metadata";
import { createHash, randomBytes } from "node:crypto";
import { readFile } from "node:fs/promises";
import path from "node:path";
import * as x509 from "@peculiar/x509";

const EC = { name: "ECDSA", namedCurve: "P-256" } as const;
const SIG = { name: "ECDSA", hash: "SHA-256" } as const;
// WebCrypto's key type, named through the API (the global CryptoKey is a value under these Node types).
type Key = Awaited<ReturnType<typeof crypto.subtle.importKey>>;

export interface IssuedClient {
  cn: string;
  certPem: string;
  fingerprint: string;
}

function pemToDer(pem: string): Buffer {
  return Buffer.from(pem.replace(/-----[^-]+-----/g, "").replace(/\s+/g, ""), "base64");
}

function toPem(der: ArrayBuffer, label: string): string {
  const b64 = Buffer.from(der)
    .toString("base64")
    .replace(/(.{64})/g, "$1\n")
    .trimEnd();
  return `-----BEGIN ${label}-----\n${b64}\n-----END ${label}-----\n`;
}

export async function clientCertFactory(stateDir: string) {
  const caCertPem = await readFile(path.join(stateDir, "pki", "ca.crt"), "utf8");
  const caKeyPem = await readFile(path.join(stateDir, "pki", "ca.key"), "utf8");
  const caCert = new x509.X509Certificate(caCertPem);
  const caKey = await crypto.subtle.importKey("pkcs8", pemToDer(caKeyPem), EC, false, ["sign"]);
  const aki = await x509.AuthorityKeyIdentifierExtension.create(caCert);
  const keys = (await crypto.subtle.generateKey(EC, true, ["sign", "verify"])) as { publicKey: Key; privateKey: Key };
  const keyPem = toPem((await crypto.subtle.exportKey("pkcs8", keys.privateKey)) as ArrayBuffer, "PRIVATE KEY");
  const ext = [
    new x509.BasicConstraintsExtension(false, undefined, true),
    new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
    new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.clientAuth]),
    aki,
  ];
  return {
    keyPem,
    async issue(cn: string): Promise<IssuedClient> {
      const cert = await x509.X509CertificateGenerator.create({
        serialNumber: `01${randomBytes(15).toString("hex")}`,
        subject: `CN=${cn}`,
        issuer: caCert.subject,
        notBefore: new Date(Date.now() - 5 * 60_000),
        notAfter: new Date(Date.now() + 86_400_000),
        publicKey: keys.publicKey,
        signingKey: caKey,
        signingAlgorithm: SIG,
        extensions: ext,
      });
      return { cn, certPem: cert.toString("pem"), fingerprint: createHash("sha256").update(Buffer.from(cert.rawData)).digest("hex") };
    },
  };
}
