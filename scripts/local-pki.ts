import { existsSync } from "node:fs";
import { chmod, mkdir, readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { createCa, issueServerCertificate, loadCa } from "../worker/pki/fleet-ca.ts";

export interface LocalPki {
  caCertPem: string;
  caKeyPem: string;
  serverCertPem: string;
  serverKeyPem: string;
  caCertPath: string;
}

async function writeSecret(file: string, content: string): Promise<void> {
  await writeFile(file, content, { mode: 0o600 });
  await chmod(file, 0o600);
}

/**
 * The local stack's development fleet CA and the edge's `localhost` certificate, created on
 * first run under `<stateDir>/pki/` and reused afterwards.
 */
export async function ensureLocalPki(stateDir: string): Promise<LocalPki> {
  const dir = path.join(stateDir, "pki");
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const files = {
    caCert: path.join(dir, "ca.crt"),
    caKey: path.join(dir, "ca.key"),
    serverCert: path.join(dir, "server.crt"),
    serverKey: path.join(dir, "server.key"),
  };
  if (!existsSync(files.caCert) || !existsSync(files.caKey)) {
    const ca = await createCa("Fleet relay development CA");
    await writeSecret(files.caKey, ca.keyPem);
    await writeFile(files.caCert, ca.certificatePem);
  }
  const caCertPem = await readFile(files.caCert, "utf8");
  const caKeyPem = await readFile(files.caKey, "utf8");
  if (!existsSync(files.serverCert) || !existsSync(files.serverKey)) {
    const server = await issueServerCertificate(await loadCa(caCertPem, caKeyPem), { dns: ["localhost"], ip: ["127.0.0.1", "::1"] });
    await writeSecret(files.serverKey, server.keyPem);
    await writeFile(files.serverCert, server.certificatePem);
  }
  return {
    caCertPem,
    caKeyPem,
    serverCertPem: await readFile(files.serverCert, "utf8"),
    serverKeyPem: await readFile(files.serverKey, "utf8"),
    caCertPath: files.caCert,
  };
}
