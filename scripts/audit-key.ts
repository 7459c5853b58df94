/**
 * The local relay's audit signing key: `<stateDir>/audit-key.pem` (PKCS#8, mode 0600) and its
 * public half `<stateDir>/audit-key.pub.pem`, created on first start like the JWT secret, so
 * checkpoints made across restarts verify with one public key.
 */
import { chmod, readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { generateAuditKeyPem } from "../worker/audit-log/signing.ts";

export const AUDIT_KEY_FILE = "audit-key.pem";
export const AUDIT_PUBLIC_KEY_FILE = "audit-key.pub.pem";

async function readIfExists(file: string): Promise<string | undefined> {
  try {
    const text = await readFile(file, "utf8");
    return text.trim() === "" ? undefined : text;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw err;
  }
}

/** The private key PEM, creating the pair on first run. */
export async function ensureAuditKey(stateDir: string): Promise<{ privatePem: string; publicPath: string }> {
  const file = path.join(stateDir, AUDIT_KEY_FILE);
  const publicPath = path.join(stateDir, AUDIT_PUBLIC_KEY_FILE);
  const existing = await readIfExists(file);
  if (existing !== undefined) return { privatePem: existing, publicPath };
  const pair = await generateAuditKeyPem();
  try {
    await writeFile(file, pair.privatePem, { mode: 0o600, flag: "wx" });
    await chmod(file, 0o600);
  } catch (err) {
    // Another process created it between our read and our write: use theirs.
    if ((err as NodeJS.ErrnoException).code === "EEXIST") {
      const raced = await readIfExists(file);
      if (raced !== undefined) return { privatePem: raced, publicPath };
    }
    throw err;
  }
  await writeFile(publicPath, pair.publicPem, { mode: 0o644 });
  return { privatePem: pair.privatePem, publicPath };
}
