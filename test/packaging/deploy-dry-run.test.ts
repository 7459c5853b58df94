/**
 * The production bundle: `wrangler deploy --dry-run --outdir <tmp>` builds the Worker exactly as
 * `npm run deploy` would upload it, with wrangler.toml's bindings, and stops before any network
 * call. It must build, list every binding, and export each Durable Object class wrangler.toml names.
 */
import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ensureDashboardBuilt } from "../../scripts/dashboard-build.ts";

const execFileP = promisify(execFile);
const ROOT = path.resolve(import.meta.dirname, "../..");

let outDir: string;
let output: string;

beforeAll(async () => {
  outDir = await mkdtemp(path.join(os.tmpdir(), "fleet-relay-deploy-"));
  // `npm run deploy` builds the dashboard first; wrangler refuses an [assets] directory that does not exist.
  await ensureDashboardBuilt();
  const r = await execFileP(
    process.execPath,
    [path.join(ROOT, "node_modules/wrangler/bin/wrangler.js"), "deploy", "--dry-run", "--outdir", outDir],
    {
      cwd: ROOT,
      timeout: 120_000,
      // No account, no token: a dry run needs neither. No metrics, no logs in $HOME.
      env: {
        ...process.env,
        CI: "true",
        WRANGLER_SEND_METRICS: "false",
        WRANGLER_LOG_PATH: outDir,
        CLOUDFLARE_API_TOKEN: "",
        NO_COLOR: "1",
      },
    },
  );
  output = r.stdout + r.stderr;
}, 120_000);

afterAll(async () => {
  if (outDir) await rm(outDir, { recursive: true, force: true });
});

describe("wrangler deploy --dry-run", () => {
  it("lists every binding of wrangler.toml", () => {
    expect(output).toContain("--dry-run: exiting now.");
    for (const binding of [
      /env\.HOST_RELAY \(HostRelay\)\s+Durable Object/,
      /env\.JOB_COORDINATOR \(JobCoordinator\)\s+Durable Object/,
      /env\.FLEET_EVENTS \(FleetEvents\)\s+Durable Object/,
      /env\.DB \(fleet-registry\)\s+D1 Database/,
      /env\.JWT_ISSUER \("fleet-relay"\)\s+Environment Variable/,
      /env\.JWT_AUDIENCE \("fleet-relay-api"\)\s+Environment Variable/,
    ]) {
      expect(output).toMatch(binding);
    }
    const size = /Total Upload: ([\d.]+) KiB \/ gzip: ([\d.]+) KiB/.exec(output);
    expect(size, output).not.toBeNull();
    console.log(`production bundle: ${size![1]} KiB, ${size![2]} KiB gzipped`);
  });

  it("is minified and carries zod's English messages only (wrangler.toml [alias], worker/zod-locales.ts)", async () => {
    const bundle = await readFile(path.join(outDir, "index.js"), "utf8");
    expect(bundle).toContain("Invalid input");
    // A German message of zod's locales (ASCII, so esbuild does not escape it), which the alias keeps out.
    expect(bundle).not.toContain("Eingabe: erwartet");
    // Minified: the bundle has far fewer lines than statements.
    expect(bundle.split("\n").length).toBeLessThan(2000);
  });

  it("uploads the dashboard's static assets with the Worker", () => {
    const read = /Read (\d+) files from the assets directory (\S+)/.exec(output);
    expect(read, output).not.toBeNull();
    expect(read![2]!.endsWith(path.join("dashboard", "dist"))).toBe(true);
    expect(Number(read![1])).toBeGreaterThanOrEqual(2); // index.html and at least the bundle
  });

  it("the bundle exports the Worker and each Durable Object class wrangler.toml names", async () => {
    const bundle = await readFile(path.join(outDir, "index.js"), "utf8");
    // Minified: `export{a as default,b as HostRelay,…};` — the names after `as` are what is exported.
    // The module's one export statement, the last in the file (only licence comments follow it).
    const exported = [...bundle.matchAll(/\bexport\s*\{([^}]*)\}/g)].at(-1)?.[1] ?? "";
    const names = exported
      .split(",")
      .map(
        (s) =>
          s
            .trim()
            .split(/\s+as\s+/)
            .at(-1)!,
      )
      .filter(Boolean);
    expect(names).toContain("default");
    const toml = await readFile(path.join(ROOT, "wrangler.toml"), "utf8");
    const classes = [...toml.matchAll(/class_name = "(\w+)"/g)].map((m) => m[1]!);
    expect(classes.length).toBeGreaterThan(0);
    for (const cls of classes) expect(names).toContain(cls);
  });
});
