import "reflect-metadata";
import * as x509 from "@peculiar/x509";
import { loadCa, toPem } from "../../worker/pki/fleet-ca.ts";

const EC = { name: "ECDSA", namedCurve: "P-256" } as const;
const SIG = { name: "ECDSA", hash: "SHA-256" } as const;

type Key = Awaited<ReturnType<typeof crypto.subtle.importKey>>;

export interface TestKeyPair {
  keyPem: string;
  keys: { publicKey: Key; privateKey: Key };
}

export async function newKey(): Promise<TestKeyPair> {
  const keys = (await crypto.subtle.generateKey(EC, true, ["sign", "verify"])) as TestKeyPair["keys"];
  const pkcs8 = (await crypto.subtle.exportKey("pkcs8", keys.privateKey)) as ArrayBuffer;
  return { keys, keyPem: toPem(pkcs8, "PRIVATE KEY") };
}

export async function csrPem(key: TestKeyPair, name = "CN=agent"): Promise<string> {
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({ name, keys: key.keys, signingAlgorithm: SIG });
  return csr.toString("pem");
}

/** A client certificate with chosen validity, signed by the given CA (or self-signed when none). */
export async function clientCert(
  key: TestKeyPair,
  opts: { caCertPem?: string; caKeyPem?: string; notBefore?: Date; notAfter?: Date; cn?: string },
): Promise<string> {
  const notBefore = opts.notBefore ?? new Date(Date.now() - 60_000);
  const notAfter = opts.notAfter ?? new Date(Date.now() + 86_400_000);
  const extensions = [
    new x509.BasicConstraintsExtension(false, undefined, true),
    new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
    new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.clientAuth]),
  ];
  if (opts.caCertPem && opts.caKeyPem) {
    const ca = await loadCa(opts.caCertPem, opts.caKeyPem);
    const cert = await x509.X509CertificateGenerator.create({
      subject: `CN=${opts.cn ?? "agent"}`,
      issuer: ca.cert.subject,
      notBefore,
      notAfter,
      publicKey: key.keys.publicKey,
      signingKey: ca.key,
      signingAlgorithm: SIG,
      extensions: [...extensions, await x509.AuthorityKeyIdentifierExtension.create(ca.cert)],
    });
    return cert.toString("pem");
  }
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    name: `CN=${opts.cn ?? "agent"}`,
    notBefore,
    notAfter,
    keys: key.keys,
    signingAlgorithm: SIG,
    extensions,
  });
  return cert.toString("pem");
}

export async function fingerprint(certPem: string): Promise<string> {
  const cert = new x509.X509Certificate(certPem);
  const digest = await crypto.subtle.digest("SHA-256", cert.rawData);
  return Buffer.from(digest).toString("hex");
}
