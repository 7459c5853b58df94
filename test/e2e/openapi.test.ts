/**
 * `npm run openapi -- --check`: the real script (a throwaway relay in workerd via Miniflare) agrees
 * with the committed openapi.json, so the file the workerd test compares against is the one the
 * script writes, and `redocly lint` reads what the routes generate.
 */
import { execFile } from "node:child_process";
import path from "node:path";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";

const ROOT = path.resolve(import.meta.dirname, "..", "..");
const SCRIPT = path.join(ROOT, "scripts", "openapi.ts");
const execFileP = promisify(execFile);

describe("npm run openapi -- --check", () => {
  it("finds the committed openapi.json up to date", async () => {
    const { stdout } = await execFileP(process.execPath, ["--no-warnings=ExperimentalWarning", SCRIPT, "--check"], {
      cwd: ROOT,
      timeout: 45_000,
    }).catch((err: { stdout?: string; stderr?: string; message: string }) => {
      throw new Error(`${err.message}\n${err.stdout ?? ""}${err.stderr ?? ""}`);
    });
    expect(stdout).toContain("openapi.json is up to date");
  });

  it("refuses unknown flags with its usage (exit 2)", async () => {
    const failure = await execFileP(process.execPath, ["--no-warnings=ExperimentalWarning", SCRIPT, "--bogus"], { cwd: ROOT }).then(
      () => null,
      (err: { code?: number; stderr?: string }) => err,
    );
    expect(failure?.code).toBe(2);
    expect(failure?.stderr).toContain("Usage: npm run openapi");
  });
});
