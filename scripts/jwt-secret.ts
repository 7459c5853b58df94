/** The local relay's HS256 secret for REST tokens, kept in `<stateDir>/jwt-secret` across restarts. */
import { randomBytes } from "node:crypto";
import { chmod, readFile, writeFile } from "node:fs/promises";
import path from "node:path";

export const JWT_SECRET_FILE = "jwt-secret";

/** Reads `<stateDir>/jwt-secret`, creating it (32 random bytes, base64url, mode 0600) on first run. */
export async function ensureJwtSecret(stateDir: string): Promise<string> {
  const existing = await readJwtSecret(stateDir);
  if (existing !== undefined) return existing;
  const file = path.join(stateDir, JWT_SECRET_FILE);
  const secret = randomBytes(32).toString("base64url");
  try {
    await writeFile(file, `${secret}\n`, { mode: 0o600, flag: "wx" });
    await chmod(file, 0o600);
    return secret;
  } catch (err) {
    // Another process created it between our read and our write: use theirs.
    if ((err as NodeJS.ErrnoException).code === "EEXIST") {
      const raced = await readJwtSecret(stateDir);
      if (raced !== undefined) return raced;
    }
    throw err;
  }
}

/** The secret from `<stateDir>/jwt-secret`, or undefined if there is none yet. */
export async function readJwtSecret(stateDir: string): Promise<string | undefined> {
  try {
    const text = (await readFile(path.join(stateDir, JWT_SECRET_FILE), "utf8")).trim();
    return text === "" ? undefined : text;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw err;
  }
}
