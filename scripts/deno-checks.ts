/**
 * `npm run test:deno` (part of `npm test`): the code that must stay portable, checked by Deno itself.
 *
 * - `deno check schemas/ agent/`: the schemas and the agent type-check under Deno's own types.
 * - `deno test test/deno/`: the relay's pure modules (command states, backoff, media type, strict
 *   JSON, cursors, frames) run under Deno, with no permissions at all.
 *
 * Offline throughout (`--cached-only`); the agent itself runs under `deno run` in
 * test/e2e/agent-deno.test.ts. Exits non-zero if any step fails.
 */
import { spawnSync } from "node:child_process";
import { denoBinary, denoEnv, REPO_ROOT } from "./deno.ts";

const deno = denoBinary();
const steps: [string, string[]][] = [
  ["deno check", ["check", "--cached-only", "--quiet", "schemas/", "agent/"]],
  ["deno test", ["test", "--cached-only", "--no-prompt", "test/deno/"]],
];

const version = spawnSync(deno, ["--version"], { encoding: "utf8", env: denoEnv() }).stdout.split("\n")[0];
console.log(`${version} (${deno})`);
let failed = 0;
for (const [name, args] of steps) {
  const start = performance.now();
  const r = spawnSync(deno, args, { cwd: REPO_ROOT, env: denoEnv(), stdio: "inherit" });
  const ms = Math.round(performance.now() - start);
  if (r.status === 0) {
    console.log(`${name}: ok (${ms} ms)`);
  } else {
    failed++;
    console.error(`${name}: FAILED (${r.error ? r.error.message : `exit ${r.status ?? r.signal}`}, ${ms} ms)`);
  }
}
process.exit(failed === 0 ? 0 : 1);
