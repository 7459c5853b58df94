import { mkdtemp, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { newKeyAndCsr } from "../../../agent/csr.ts";
import { createCa, type FleetCa, issueAgentCertificate, issueServerCertificate, loadCa, verifyCsr } from "../../../worker/pki/fleet-ca.ts";

/** A throwaway fleet CA with a TLS server certificate for 127.0.0.1/localhost. */
export interface TestPki {
  ca: FleetCa;
  caPem: string;
  /** caPem written to disk, for --ca-file. */
  caFile: string;
  server: { certificatePem: string; keyPem: string };
  dir: string;
}

export async function createTestPki(): Promise<TestPki> {
  const dir = await mkdtemp(path.join(os.tmpdir(), "fleet-pki-"));
  const created = await createCa("Agent test fleet CA");
  const ca = await loadCa(created.certificatePem, created.keyPem);
  const server = await issueServerCertificate(ca, { dns: ["localhost"], ip: ["127.0.0.1"] });
  const caFile = path.join(dir, "ca.pem");
  await writeFile(caFile, created.certificatePem);
  return { ca, caPem: created.certificatePem, caFile, server, dir };
}

/** An agent key pair and certificate for `hostId`, made the way enrolment makes them. */
export async function issueAgent(
  pki: TestPki,
  hostId: string,
  days?: number,
): Promise<{ certPem: string; keyPem: string; fingerprint: string }> {
  const { keyPem, csrPem } = await newKeyAndCsr("test-host");
  const checked = await verifyCsr(csrPem);
  if (!checked.ok) throw new Error(`test CSR rejected: ${checked.problem}`);
  const issued = await issueAgentCertificate(pki.ca, checked.csr, hostId, days);
  return { certPem: issued.certificatePem, keyPem, fingerprint: issued.fingerprintSha256 };
}

/** A state directory as `enroll` leaves it, pointed at `relay`. */
export async function enrolledStateDir(
  pki: TestPki,
  opts: { hostId?: string; relay: string; days?: number },
): Promise<{ stateDir: string; hostId: string; fingerprint: string }> {
  const hostId = opts.hostId ?? crypto.randomUUID();
  const stateDir = await mkdtemp(path.join(os.tmpdir(), "fleet-agent-"));
  const creds = await issueAgent(pki, hostId, opts.days);
  await writeFile(path.join(stateDir, "agent.key"), creds.keyPem, { mode: 0o600 });
  await writeFile(path.join(stateDir, "agent.crt"), creds.certPem);
  await writeFile(path.join(stateDir, "ca.crt"), pki.caPem);
  await writeFile(
    path.join(stateDir, "agent.json"),
    JSON.stringify({ host_id: hostId, relay: opts.relay, ca_file: null, system_ca: false, enrolled_at: new Date().toISOString() }),
  );
  return { stateDir, hostId, fingerprint: creds.fingerprint };
}
