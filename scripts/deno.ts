/**
 * Deno from the npm registry: the `deno` devDependency's binary arrives in its platform package
 * (`@deno/linux-x64-glibc`, …) even when npm skips install scripts, so it is called directly from
 * there. It runs offline: modules (zod, ws, …) resolve from node_modules (`deno.json`:
 * `nodeModulesDir: "manual"`), `--cached-only` refuses any download, its cache lives under
 * node_modules/.cache/deno, and the upgrade check is off.
 */
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";

export const REPO_ROOT = path.resolve(import.meta.dirname, "..");

const PLATFORM_PACKAGES: Record<string, string> = {
  "linux-x64": "@deno/linux-x64-glibc",
  "linux-arm64": "@deno/linux-arm64-glibc",
  "darwin-x64": "@deno/darwin-x64",
  "darwin-arm64": "@deno/darwin-arm64",
  "win32-x64": "@deno/win32-x64",
  "win32-arm64": "@deno/win32-arm64",
};

/** Absolute path of the deno binary in node_modules; throws naming the package if it is missing. */
export function denoBinary(): string {
  const pkg = PLATFORM_PACKAGES[`${process.platform}-${process.arch}`];
  if (pkg === undefined) throw new Error(`no Deno package for ${process.platform}-${process.arch}`);
  const require = createRequire(path.join(REPO_ROOT, "package.json"));
  let dir: string;
  try {
    dir = path.dirname(require.resolve(`${pkg}/package.json`));
  } catch {
    throw new Error(`${pkg} is not installed (it comes with the "deno" devDependency): run npm ci`);
  }
  const bin = path.join(dir, process.platform === "win32" ? "deno.exe" : "deno");
  if (!existsSync(bin)) throw new Error(`${bin} is missing`);
  return bin;
}

/** Environment for an offline Deno: its own cache dir, no upgrade check, no prompts, no colour. */
export function denoEnv(env: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  return {
    ...env,
    DENO_DIR: path.join(REPO_ROOT, "node_modules/.cache/deno"),
    DENO_NO_UPDATE_CHECK: "1",
    DENO_NO_PROMPT: "1",
    NO_COLOR: "1",
  };
}
