/**
 * Builds the dashboard (dashboard/) with Vite into dashboard/dist, which wrangler.toml's [assets]
 * serves from the Worker — only when its sources changed: a SHA-256 over every source file (and
 * the lockfile, which pins React and Vite) is kept in dashboard/dist/.build-stamp, so `npm start`
 * costs nothing when nothing changed.
 *
 *   npm run build:dashboard            (build if stale)
 *   npm run build:dashboard -- --force
 */
import { createHash } from "node:crypto";
import { mkdir, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import path from "node:path";
import { gzipSync } from "node:zlib";

const ROOT = path.resolve(import.meta.dirname, "..");
export const DASHBOARD_DIR = path.join(ROOT, "dashboard");
export const DASHBOARD_DIST = path.join(DASHBOARD_DIR, "dist");
/** Not served: .assetsignore (written beside it) keeps it out of the uploaded assets. */
const STAMP = path.join(DASHBOARD_DIST, ".build-stamp");
/** Held while one process builds, so parallel test files do not build into one directory at once. */
const LOCK = path.join(DASHBOARD_DIR, ".build-lock");
const LOCK_WAIT_MS = 180_000;
const LOCK_STALE_MS = 300_000;

const SOURCES = ["index.html", "vite.config.ts", "tsconfig.json", "src", "public"];
/**
 * Files outside dashboard/ that the bundle imports (repo-relative): the audit page runs the
 * relay's own verifier. A new import from outside dashboard/ belongs here, or npm start serves a
 * stale build after it changes.
 */
export const SHARED_SOURCES = ["worker/audit-log/verify.ts", "worker/audit-log/signing.ts", "worker/audit-log/canonical.ts"];

async function listFiles(entry: string): Promise<string[]> {
  const full = path.join(DASHBOARD_DIR, entry);
  const info = await stat(full).catch(() => null);
  if (!info) return [];
  if (info.isFile()) return [full];
  const out: string[] = [];
  for (const e of await readdir(full, { withFileTypes: true, recursive: true })) {
    if (e.isFile()) out.push(path.join(e.parentPath, e.name));
  }
  return out;
}

/** The hash of everything the build reads: sources by path and content, and the lockfile. */
export async function dashboardSourceHash(): Promise<string> {
  const files = (await Promise.all(SOURCES.map(listFiles))).flat().sort();
  files.push(...SHARED_SOURCES.map((f) => path.join(ROOT, f)), path.join(ROOT, "package-lock.json"));
  const hash = createHash("sha256");
  for (const f of files) {
    hash.update(path.relative(ROOT, f));
    hash.update("\0");
    hash.update(await readFile(f));
    hash.update("\0");
  }
  return hash.digest("hex");
}

export interface DashboardBuild {
  built: boolean;
  /** Sum of the JS files' sizes, raw and gzipped, in bytes. */
  jsBytes: number;
  jsGzipBytes: number;
}

async function bundleSizes(): Promise<{ jsBytes: number; jsGzipBytes: number }> {
  let jsBytes = 0;
  let jsGzipBytes = 0;
  for (const f of await readdir(DASHBOARD_DIST, { recursive: true })) {
    // The API explorer's files (docs/) are loaded by /docs only, never by the dashboard.
    if (!f.endsWith(".js") || f.startsWith(`docs${path.sep}`)) continue;
    const body = await readFile(path.join(DASHBOARD_DIST, f));
    jsBytes += body.length;
    jsGzipBytes += gzipSync(body, { level: 9 }).length;
  }
  return { jsBytes, jsGzipBytes };
}

async function upToDate(hash: string): Promise<boolean> {
  const stamp = await readFile(STAMP, "utf8").catch(() => "");
  if (stamp.trim() !== hash) return false;
  return (await stat(path.join(DASHBOARD_DIST, "index.html")).catch(() => null)) !== null;
}

async function acquireLock(): Promise<() => Promise<void>> {
  const deadline = Date.now() + LOCK_WAIT_MS;
  for (;;) {
    try {
      await mkdir(LOCK);
      return () => rm(LOCK, { recursive: true, force: true });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
      const info = await stat(LOCK).catch(() => null);
      // A builder that died leaves its lock: take it over once it is clearly abandoned.
      if (info && Date.now() - info.mtimeMs > LOCK_STALE_MS) await rm(LOCK, { recursive: true, force: true });
      if (Date.now() > deadline) throw new Error(`another dashboard build held ${LOCK} for ${LOCK_WAIT_MS} ms`);
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  }
}

/**
 * Swagger UI's two files, served as assets under /docs/ so the API explorer needs no CDN. Their
 * version is the lockfile's, which the source hash covers. The source-map comment is dropped: the
 * map is not shipped, and a browser's developer tools would ask for it.
 */
async function copySwaggerUi(): Promise<void> {
  const from = path.join(ROOT, "node_modules", "swagger-ui-dist");
  const to = path.join(DASHBOARD_DIST, "docs");
  await mkdir(to, { recursive: true });
  for (const file of ["swagger-ui-bundle.js", "swagger-ui.css"]) {
    const text = await readFile(path.join(from, file), "utf8");
    await writeFile(path.join(to, file), text.replace(/\n?\/[*/]# sourceMappingURL=[^\n]*\s*$/, "\n"));
  }
}

/** Builds dashboard/dist unless it matches the sources already. */
export async function ensureDashboardBuilt(opts: { force?: boolean; log?: (line: string) => void } = {}): Promise<DashboardBuild> {
  const hash = await dashboardSourceHash();
  if (!opts.force && (await upToDate(hash))) return { built: false, ...(await bundleSizes()) };
  const release = await acquireLock();
  try {
    // Someone else may have built it while we waited.
    if (!opts.force && (await upToDate(hash))) return { built: false, ...(await bundleSizes()) };
    const { build } = await import("vite");
    // Vite keeps an inherited NODE_ENV: under vitest (NODE_ENV=test, also inherited by an npm start
    // a test spawns) it built React's development bundle (jsxDEV, 541 KiB instead of 292 KiB) and
    // stamped it current, so a later npm start served it. The bundle is always a production one.
    const nodeEnv = process.env.NODE_ENV;
    process.env.NODE_ENV = "production";
    try {
      await build({ configFile: path.join(DASHBOARD_DIR, "vite.config.ts"), logLevel: "warn", mode: "production" });
    } finally {
      if (nodeEnv === undefined) delete process.env.NODE_ENV;
      else process.env.NODE_ENV = nodeEnv;
    }
    await copySwaggerUi();
    await writeFile(path.join(DASHBOARD_DIST, ".assetsignore"), ".build-stamp\n.assetsignore\n");
    await writeFile(STAMP, `${hash}\n`);
    const sizes = await bundleSizes();
    opts.log?.(`dashboard built: JS ${(sizes.jsBytes / 1024).toFixed(1)} KiB, ${(sizes.jsGzipBytes / 1024).toFixed(1)} KiB gzipped`);
    return { built: true, ...sizes };
  } finally {
    await release();
  }
}

if (import.meta.main) {
  const r = await ensureDashboardBuilt({ force: process.argv.includes("--force"), log: (l) => console.log(l) });
  if (!r.built) {
    console.log(
      `dashboard up to date: JS ${(r.jsBytes / 1024).toFixed(1)} KiB, ${(r.jsGzipBytes / 1024).toFixed(1)} KiB gzipped (--force rebuilds)`,
    );
  }
}
