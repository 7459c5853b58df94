import { constants } from "node:fs";
import { mkdir, open, readFile, rename, rm, stat } from "node:fs/promises";
import path from "node:path";

/** File names inside the state directory. */
export const STATE_FILES = {
  /** PKCS#8 PEM private key, mode 0600; never leaves the host. */
  key: "agent.key",
  /** The agent's client certificate (PEM). */
  cert: "agent.crt",
  /** The fleet CA certificate returned at enrolment (PEM). */
  ca: "ca.crt",
  /** Enrolment facts: host id, relay URL, how the relay's TLS certificate is trusted. */
  identity: "agent.json",
  /** Optional configuration (see `cli.ts --help`). */
  config: "config.json",
  /** A renewed key/certificate pair waiting to replace the current one (see promotePending). */
  pendingKey: "agent.key.next",
  pendingCert: "agent.crt.next",
} as const;

export interface Identity {
  host_id: string;
  /** Relay base URL used at enrolment. */
  relay: string;
  /** Absolute path of the CA file used to reach the relay, or null for system CAs. */
  ca_file: string | null;
  /** True when enrolment trusted the system CA store (no CA file). */
  system_ca: boolean;
  /** Host name sent at enrolment; `run` announces the same one unless told otherwise. */
  hostname?: string;
  enrolled_at: string;
}

export function statePath(stateDir: string, file: keyof typeof STATE_FILES): string {
  return path.join(stateDir, STATE_FILES[file]);
}

export async function ensureStateDir(stateDir: string): Promise<void> {
  await mkdir(stateDir, { recursive: true, mode: 0o700 });
}

export async function readIdentity(stateDir: string): Promise<Identity | null> {
  let text: string;
  try {
    text = await readFile(statePath(stateDir, "identity"), "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw err;
  }
  return JSON.parse(text) as Identity;
}

export async function writeIdentity(stateDir: string, identity: Identity): Promise<void> {
  await writeFileAtomic(statePath(stateDir, "identity"), `${JSON.stringify(identity, null, 2)}\n`, 0o644);
}

/**
 * Writes through a temporary file, fsync and rename, then fsyncs the directory: readers see the
 * old content or the new, never a torn file, even across a power cut.
 */
export async function writeFileAtomic(file: string, data: string, mode: number): Promise<void> {
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.tmp`);
  const fh = await open(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC, mode);
  try {
    await fh.writeFile(data);
    await fh.chmod(mode); // the umask may have narrowed or the file pre-existed with other bits
    await fh.sync();
  } finally {
    await fh.close();
  }
  await rename(tmp, file);
  await syncDir(path.dirname(file));
}

async function syncDir(dir: string): Promise<void> {
  const fh = await open(dir, constants.O_RDONLY);
  try {
    await fh.sync();
  } catch {
    // Some filesystems refuse fsync on directories; the rename is still atomic.
  } finally {
    await fh.close();
  }
}

export interface Credentials {
  certPem: string;
  keyPem: string;
}

export async function readCredentials(stateDir: string): Promise<Credentials> {
  const [certPem, keyPem] = await Promise.all([
    readFile(statePath(stateDir, "cert"), "utf8"),
    readFile(statePath(stateDir, "key"), "utf8"),
  ]);
  return { certPem, keyPem };
}

/**
 * Replaces key and certificate as a pair. Both are first written complete beside the current
 * ones (the certificate last, so its presence means the pair is whole), then renamed into place;
 * `promotePending` finishes a replacement a crash interrupted.
 */
export async function replaceCredentials(stateDir: string, creds: Credentials): Promise<void> {
  await writeFileAtomic(statePath(stateDir, "pendingKey"), creds.keyPem, 0o600);
  await writeFileAtomic(statePath(stateDir, "pendingCert"), creds.certPem, 0o644);
  await promotePending(stateDir);
}

/** Completes an interrupted `replaceCredentials`, or discards a half-written pending pair. */
export async function promotePending(stateDir: string): Promise<void> {
  const pendingCert = statePath(stateDir, "pendingCert");
  const pendingKey = statePath(stateDir, "pendingKey");
  if (!(await exists(pendingCert))) {
    await rm(pendingKey, { force: true });
    return;
  }
  if (await exists(pendingKey)) await rename(pendingKey, statePath(stateDir, "key"));
  await rename(pendingCert, statePath(stateDir, "cert"));
  await syncDir(stateDir);
}

export async function exists(file: string): Promise<boolean> {
  try {
    await stat(file);
    return true;
  } catch {
    return false;
  }
}
