/**
 * Cold start: the deploy bundle's size, and how long the local relay takes from nothing to its
 * first answers. Each run starts the relay (bundling, D1 migrations, workerd) on a fresh state
 * directory and times, in order, the first `GET /healthz`, the first authenticated read
 * (`GET /api/hosts`: JWT, D1), the first registration (`POST /api/hosts`) and the first command to
 * that host (a new HostRelay: its SQLite and migrations). Prints figures; asserts nothing.
 *
 *   npm run bench:cold-start            (3 runs; BENCH_COLD_RUNS)
 */
import { execFile } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { ensureDashboardBuilt } from "../scripts/dashboard-build.ts";
import { signDevToken } from "../scripts/dev-token.ts";
import { readJwtSecret } from "../scripts/jwt-secret.ts";
import { REPO_ROOT, startLocalRelay } from "../scripts/local-relay.ts";
import { RestClient } from "./rest.ts";
import { summarize } from "./stats.ts";

export interface ColdStart {
  startMs: number;
  healthzMs: number;
  firstReadMs: number;
  firstRegisterMs: number;
  firstCommandMs: number;
}

export interface DeployBundle {
  kib: number;
  gzipKib: number;
}

/** `wrangler deploy --dry-run`: the bundle exactly as `npm run deploy` uploads it (wrangler's own figures). */
export async function deployBundleSize(): Promise<DeployBundle> {
  await ensureDashboardBuilt();
  const outDir = await mkdtemp(path.join(os.tmpdir(), "fleet-cold-deploy-"));
  try {
    const r = await promisify(execFile)(
      process.execPath,
      [path.join(REPO_ROOT, "node_modules/wrangler/bin/wrangler.js"), "deploy", "--dry-run", "--outdir", outDir],
      { cwd: REPO_ROOT, timeout: 120_000, env: { ...process.env, CI: "true", WRANGLER_SEND_METRICS: "false", WRANGLER_LOG_PATH: outDir } },
    );
    const m = /Total Upload: ([\d.]+) KiB \/ gzip: ([\d.]+) KiB/.exec(r.stdout + r.stderr);
    if (!m) throw new Error(`no upload size in wrangler's output:\n${r.stdout}${r.stderr}`);
    return { kib: Number(m[1]), gzipKib: Number(m[2]) };
  } finally {
    await rm(outDir, { recursive: true, force: true });
  }
}

async function timed<T>(fn: () => Promise<T>): Promise<[number, T]> {
  const t = performance.now();
  const v = await fn();
  return [performance.now() - t, v];
}

export async function measureColdStart(): Promise<ColdStart> {
  const stateDir = await mkdtemp(path.join(os.tmpdir(), "fleet-cold-"));
  // The secret exists before the clock starts, so signing a token is not part of the figure.
  const [startMs, relay] = await timed(() => startLocalRelay({ port: 0, edgePort: null, stateDir, quiet: true }));
  try {
    const secret = (await readJwtSecret(stateDir))!;
    const admin = await signDevToken({ secret, role: "admin", ttlSeconds: 600, sub: "bench-cold" });
    const rest = new RestClient(relay.url, admin, 4);
    try {
      const [healthzMs] = await timed(() => rest.json("GET", "/healthz", undefined, 200));
      const [firstReadMs] = await timed(() => rest.json("GET", "/api/hosts?limit=1", undefined, 200));
      const [firstRegisterMs, host] = await timed(() =>
        rest.json<{ host_id: string }>("POST", "/api/hosts", { hostname: "cold-1", cert_fingerprint_sha256: "c".repeat(64) }, 201),
      );
      const [firstCommandMs] = await timed(() =>
        rest.json("POST", `/api/hosts/${host.host_id}/commands`, { command_type: "system_info" }, 202),
      );
      return { startMs, healthzMs, firstReadMs, firstRegisterMs, firstCommandMs };
    } finally {
      rest.close();
    }
  } finally {
    await relay.stop();
    await rm(stateDir, { recursive: true, force: true });
  }
}

if (import.meta.main) {
  const runs = Number(process.env.BENCH_COLD_RUNS ?? 3);
  const bundle = await deployBundleSize();
  console.log(`deploy bundle (wrangler deploy --dry-run): ${bundle.kib.toFixed(1)} KiB, ${bundle.gzipKib.toFixed(1)} KiB gzipped`);
  const all: ColdStart[] = [];
  for (let i = 0; i < runs; i++) {
    const c = await measureColdStart();
    all.push(c);
    console.log(
      `run ${i + 1}: relay up ${c.startMs.toFixed(0)} ms; first healthz ${c.healthzMs.toFixed(1)} ms, read ${c.firstReadMs.toFixed(1)} ms, ` +
        `register ${c.firstRegisterMs.toFixed(1)} ms, command ${c.firstCommandMs.toFixed(1)} ms`,
    );
  }
  const p50 = (k: keyof ColdStart) => summarize(all.map((c) => c[k])).p50.toFixed(1);
  console.log(`\ncold start, p50 of ${runs} fresh starts (ms):`);
  console.log(`  relay up (bundle + D1 migrations + workerd)  ${p50("startMs")}`);
  console.log(`  first GET /healthz                           ${p50("healthzMs")}`);
  console.log(`  first GET /api/hosts (JWT, D1)               ${p50("firstReadMs")}`);
  console.log(`  first POST /api/hosts                        ${p50("firstRegisterMs")}`);
  console.log(`  first command (a new HostRelay)              ${p50("firstCommandMs")}`);
}
