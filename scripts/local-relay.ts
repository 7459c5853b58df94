/**
 * Runs the relay locally in workerd (the Workers runtime) through Miniflare, the way
 * `npm start`, the e2e tests and the benchmarks need it: bindings from wrangler.toml,
 * the Worker bundled with esbuild, D1 and Durable Object state persisted under a
 * state directory, D1 migrations applied on start, and a JWT secret that survives restarts.
 */
import { type ChildProcess, fork } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdir, readdir, readFile } from "node:fs/promises";
import net from "node:net";
import path from "node:path";
import { build, type Plugin } from "esbuild";
import type { Json, V4MiniflareOptions, V4WorkerOptions } from "miniflare";
import { convertV4MiniflareOptions, Log, LogLevel, Miniflare, NoOpLog } from "miniflare";
import { unstable_getMiniflareWorkerOptions, unstable_readConfig, unstable_splitSqlQuery } from "wrangler";
import { ensureAuditKey } from "./audit-key.ts";
import { type Edge, type EdgeOptions, startEdge } from "./edge.ts";
import type { EdgeProcessReply, EdgeProcessRequest } from "./edge-process.ts";
import { ensureJwtSecret } from "./jwt-secret.ts";
import { ensureLocalPki } from "./local-pki.ts";

export { ensureJwtSecret, JWT_SECRET_FILE, readJwtSecret } from "./jwt-secret.ts";

export const REPO_ROOT = path.resolve(import.meta.dirname, "..");
export const DEFAULT_HOST = "127.0.0.1";
export const DEFAULT_PORT = 8787;
export const DEFAULT_EDGE_PORT = 8443;
export const DEFAULT_STATE_DIR = path.join(REPO_ROOT, ".relay");

export interface LocalRelayOptions {
  /** Interface to listen on. Default 127.0.0.1. */
  host?: string;
  /** Port to listen on; 0 picks a free one. Default 8787. */
  port?: number;
  /** Where D1, Durable Objects, the bundle and the JWT secret live. Default `<repo>/.relay`. */
  stateDir?: string;
  /** No Miniflare log output (request lines, warnings). */
  quiet?: boolean;
  /** Worker entry module. Default: `main` from wrangler.toml (worker/index.ts). */
  entry?: string;
  /**
   * Extra string bindings (vars and secrets) laid over wrangler.toml's `[vars]`, e.g. FLEET_CA_CERT,
   * LOCAL_EDGE_SECRET or short timings for tests. JWT_SECRET always comes from the state directory.
   */
  bindings?: Record<string, string>;
  /**
   * Port of the TLS 1.3 edge for agents (mutual TLS with the fleet CA); 0 picks a free one,
   * null runs no edge. Default 8443. It listens on `host` too.
   */
  edgePort?: number | null;
  /**
   * Run the edge in this many child processes sharing `edgePort` (SO_REUSEPORT, Linux) instead of in
   * this process: each agent costs the edge two open files, and one process may hold only so many.
   * Default 0 (one edge, in this process).
   */
  edgeProcesses?: number;
  /**
   * Serve the dashboard's assets (wrangler.toml `[assets]`). Locally Miniflare puts its asset router
   * (and an RPC proxy) in front of the Worker for every request, API paths included, a hop the
   * platform makes outside the Worker; false leaves it out, for measuring that hop. Default true.
   */
  assets?: boolean;
  /** Port of workerd's V8 inspector (Chrome DevTools protocol), for profiling; default none. */
  inspectorPort?: number;
  /**
   * Also listen on this port with a socket straight to the Worker (Miniflare's `unsafeDirectSockets`),
   * past Miniflare's entry worker and asset router. On Cloudflare neither runs in the Worker's
   * isolate; locally they cost about 0.45 ms of workerd CPU per request, which the benchmarks leave
   * out this way. REST only: no dashboard there, and no `request.cf`, so agents keep the edge.
   * 0 picks a free one; default none.
   */
  apiPort?: number;
}

/** An edge running in a child process (`edgeProcesses` > 0). */
export interface EdgeProcess {
  pid: number;
  /** Collects garbage there (when it runs with --expose-gc) and answers its resident set size in bytes. */
  gcAndRss(): Promise<number>;
}

export interface LocalRelay {
  /** Base URL without a trailing slash, e.g. `http://127.0.0.1:8787`. */
  url: string;
  port: number;
  stateDir: string;
  miniflare: Miniflare;
  /**
   * The Worker's LOCAL_EDGE_SECRET (given in `bindings`, else random per start). Miniflare's HTTP port
   * lets any client set `request.cf` through the `MF-CF-Blob` header, so the Worker believes
   * `cf.tlsClientAuth` only on requests that also carry this secret (sent by the local TLS edge).
   */
  edgeSecret: string;
  /** The Worker's direct socket (`apiPort`), e.g. `http://127.0.0.1:8788`; null when started without one. */
  apiUrl: string | null;
  /** The agents' TLS edge, e.g. `https://127.0.0.1:8443`; null when started without one. */
  edgeUrl: string | null;
  /** The edge's child processes; empty when the edge runs in this process or not at all. */
  edgeProcesses: EdgeProcess[];
  /** The development fleet CA (PEM) agents pin, and its path under the state directory. */
  caCertPem: string;
  caCertPath: string;
  /** The audit key's public half (SPKI PEM), for `npm run audit-verify`. */
  auditPublicKeyPath: string;
  stop(): Promise<void>;
}

/** Thrown when the requested port is already taken; `start.ts` turns it into a one-line message. */
export class PortInUseError extends Error {
  readonly code = "EADDRINUSE";
  readonly host: string;
  readonly port: number;
  constructor(host: string, port: number) {
    super(`port ${port} on ${host} is already in use`);
    this.name = "PortInUseError";
    this.host = host;
    this.port = port;
  }
}

export async function startLocalRelay(opts: LocalRelayOptions = {}): Promise<LocalRelay> {
  const host = opts.host ?? DEFAULT_HOST;
  const port = opts.port ?? DEFAULT_PORT;
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new RangeError(`invalid port: ${port}`);
  const stateDir = path.resolve(opts.stateDir ?? DEFAULT_STATE_DIR);
  await mkdir(stateDir, { recursive: true, mode: 0o700 });

  const secret = await ensureJwtSecret(stateDir);
  const auditKey = await ensureAuditKey(stateDir);
  const pki = await ensureLocalPki(stateDir);
  const edgePort = opts.edgePort === undefined ? DEFAULT_EDGE_PORT : opts.edgePort;
  if (edgePort !== null && edgePort !== 0) await assertPortFree(host, edgePort);
  // Never empty: an unset LOCAL_EDGE_SECRET makes the Worker trust a client-supplied `request.cf`.
  const edgeSecret = opts.bindings?.LOCAL_EDGE_SECRET || randomBytes(32).toString("base64url");
  if (port !== 0) await assertPortFree(host, port);
  if (opts.apiPort !== undefined && opts.apiPort !== 0) await assertPortFree(host, opts.apiPort);

  const configPath = path.join(REPO_ROOT, "wrangler.toml");
  const config = unstable_readConfig({ config: configPath }, { hideWarnings: true });
  const { workerOptions, define, main } = unstable_getMiniflareWorkerOptions(config);
  const entry = opts.entry ? path.resolve(opts.entry) : (main ?? path.join(REPO_ROOT, "worker", "index.ts"));
  const bundle = await bundleWorker(entry, path.join(stateDir, "build"), define, config.alias);

  // wrangler hands back Miniflare v4-shaped options; Miniflare 5 takes them through convertV4MiniflareOptions.
  // `modulesRules` only matters when Miniflare walks imports itself; we hand it one bundled module.
  const { modulesRules: _rules, ...bindingOptions } = workerOptions;
  if (opts.assets === false) delete bindingOptions.assets;
  const workerName = config.name ?? "fleet-relay";
  const worker: V4WorkerOptions = {
    ...bindingOptions,
    name: workerName,
    ...(opts.apiPort === undefined ? {} : { unsafeDirectSockets: [{ host, port: opts.apiPort }] }),
    modules: true,
    scriptPath: bundle,
    modulesRoot: path.dirname(bundle),
    bindings: {
      ...(workerOptions.bindings as Record<string, Json> | undefined),
      FLEET_CA_CERT: pki.caCertPem,
      FLEET_CA_KEY: pki.caKeyPem,
      // Every local agent enrols from loopback: the production default (10 a minute) would throttle
      // a test fleet or benchmark; a caller's bindings can set it back.
      ENROLL_RATE_LIMIT: "100000",
      // A local relay's receivers may be plain http:// on loopback (a test receiver, a local bridge); never in production.
      ALERT_ALLOW_HTTP_LOOPBACK: "1",
      AUDIT_SIGNING_KEY: auditKey.privatePem,
      // Quiet means quiet: no JSON line per request from the Worker either.
      ...(opts.quiet ? { REQUEST_LOGS: "0" } : {}),
      ...opts.bindings,
      LOCAL_EDGE_SECRET: edgeSecret,
      JWT_SECRET: secret,
    },
  };
  const v4: V4MiniflareOptions = {
    ...worker,
    host,
    port,
    // One root for every resource: D1 under <stateDir>/d1, Durable Objects under <stateDir>/do, ….
    resourcePersistencePath: stateDir,
    log: opts.quiet ? new NoOpLog() : new Log(LogLevel.INFO, { prefix: "relay" }),
    logRequests: !opts.quiet,
    // Without this Miniflare fetches a real `cf` object from the internet on every start.
    cf: false,
    ...(opts.inspectorPort === undefined ? {} : { inspectorPort: opts.inspectorPort }),
  };

  let mf: Miniflare;
  try {
    mf = new Miniflare(convertV4MiniflareOptions(v4));
  } catch (err) {
    throw await explainStartFailure(err, host, port);
  }
  let readyUrl: URL;
  try {
    readyUrl = await mf.ready;
  } catch (err) {
    await mf.dispose().catch(() => {});
    throw await explainStartFailure(err, host, port);
  }

  let apiUrl: string | null = null;
  try {
    await applyMigrations(mf, path.join(REPO_ROOT, "migrations"), opts.quiet ? undefined : (m) => console.log(m));
    if (opts.apiPort !== undefined) apiUrl = `http://${displayHost(host)}:${(await mf.unsafeGetDirectURL(workerName)).port}`;
  } catch (err) {
    await mf.dispose().catch(() => {});
    throw err;
  }

  const actualPort = Number(readyUrl.port);
  const url = `http://${displayHost(host)}:${actualPort}`;
  let edge: Edge | null = null;
  let edgeProcesses: EdgeProcess[] = [];
  if (edgePort !== null) {
    const edgeOptions: Omit<EdgeOptions, "log"> = {
      host,
      port: edgePort,
      upstream: `http://${displayHost(host)}:${actualPort}`,
      caCertPem: pki.caCertPem,
      serverCertPem: pki.serverCertPem,
      serverKeyPem: pki.serverKeyPem,
      edgeSecret,
    };
    try {
      if ((opts.edgeProcesses ?? 0) > 0) {
        const group = await startEdgeProcesses(edgeOptions, opts.edgeProcesses!, opts.quiet ?? false);
        edge = group;
        edgeProcesses = group.processes;
      } else {
        edge = await startEdge({ ...edgeOptions, log: opts.quiet ? undefined : (line) => console.error(line) });
      }
    } catch (err) {
      await mf.dispose().catch(() => {});
      if ((err as NodeJS.ErrnoException).code === "EADDRINUSE") throw new PortInUseError(host, edgePort);
      throw err;
    }
  }
  let stopped: Promise<void> | undefined;
  return {
    url,
    port: actualPort,
    stateDir,
    miniflare: mf,
    edgeSecret,
    apiUrl,
    edgeUrl: edge?.url ?? null,
    edgeProcesses,
    caCertPem: pki.caCertPem,
    caCertPath: pki.caCertPath,
    auditPublicKeyPath: auditKey.publicPath,
    stop: () =>
      (stopped ??= (async () => {
        await edge?.close();
        await mf.dispose();
      })()),
  };
}

interface EdgeGroup extends Edge {
  processes: EdgeProcess[];
}

/**
 * `count` edge processes (scripts/edge-process.ts) on one port: the first picks it (when `port` is 0),
 * the others join it with SO_REUSEPORT. Each exits when this process goes away.
 */
async function startEdgeProcesses(options: Omit<EdgeOptions, "log">, count: number, quiet: boolean): Promise<EdgeGroup> {
  const children: ChildProcess[] = [];
  const processes: EdgeProcess[] = [];
  const stopAll = () =>
    Promise.all(
      children.map(
        (child) =>
          new Promise<void>((resolve) => {
            if (child.exitCode !== null || child.signalCode !== null) return resolve();
            child.once("exit", () => resolve());
            child.kill("SIGTERM");
          }),
      ),
    ).then(() => {});
  let port = options.port ?? DEFAULT_EDGE_PORT;
  try {
    for (let i = 0; i < count; i++) {
      const child = fork(path.join(import.meta.dirname, "edge-process.ts"), [], {
        execArgv: ["--experimental-strip-types", "--no-warnings=ExperimentalWarning", "--expose-gc"],
        stdio: ["ignore", "inherit", "inherit", "ipc"],
      });
      children.push(child);
      port = await new Promise<number>((resolve, reject) => {
        child.once("exit", (code) => reject(new Error(`edge process exited (code ${code}) before it listened`)));
        child.on("message", (m: EdgeProcessReply) => {
          if (m.type === "listening") resolve(m.port);
          else if (m.type === "error") reject(Object.assign(new Error(m.message), { code: m.code }));
        });
        child.send({ type: "start", options: { ...options, port, reusePort: true }, quiet } satisfies EdgeProcessRequest);
      });
      child.removeAllListeners("exit");
      let seq = 0;
      const waiting = new Map<number, (rss: number) => void>();
      child.on("message", (m: EdgeProcessReply) => {
        if (m.type !== "gc") return;
        waiting.get(m.id)?.(m.rss);
        waiting.delete(m.id);
      });
      processes.push({
        pid: child.pid!,
        gcAndRss: () =>
          new Promise((resolve, reject) => {
            const id = ++seq;
            const timer = setTimeout(() => reject(new Error(`edge process ${child.pid} did not answer`)), 10_000);
            waiting.set(id, (rss) => {
              clearTimeout(timer);
              resolve(rss);
            });
            child.send({ type: "gc", id } satisfies EdgeProcessRequest);
          }),
      });
    }
  } catch (err) {
    await stopAll();
    throw err;
  }
  const host = options.host ?? DEFAULT_HOST;
  return { port, url: `https://${host.includes(":") ? `[${host}]` : host}:${port}`, processes, close: stopAll };
}

/**
 * Bundles the Worker for workerd into `<outDir>/worker.mjs` (+ source map) and returns its path.
 * `alias` is wrangler.toml's `[alias]`, applied as wrangler applies it: an import whose specifier
 * is exactly a key (relative ones included) resolves to its value, relative to the repository.
 */
export async function bundleWorker(
  entry: string,
  outDir: string,
  define: Record<string, string> = {},
  alias: Record<string, string> = {},
): Promise<string> {
  await mkdir(outDir, { recursive: true });
  const keys = Object.keys(alias);
  const aliasPlugin: Plugin = {
    name: "wrangler-alias",
    setup(b) {
      if (keys.length === 0) return;
      b.onResolve({ filter: new RegExp(`^(${keys.map((k) => k.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")).join("|")})$`) }, (a) =>
        alias[a.path] ? { path: path.resolve(REPO_ROOT, alias[a.path]!) } : undefined,
      );
    },
  };
  const outfile = path.join(outDir, "worker.mjs");
  await build({
    entryPoints: [entry],
    outfile,
    bundle: true,
    format: "esm",
    platform: "neutral",
    conditions: ["workerd", "worker", "browser"],
    mainFields: ["browser", "module", "main"],
    external: ["cloudflare:*"],
    target: "es2024",
    sourcemap: true,
    keepNames: true,
    define,
    plugins: [aliasPlugin],
    logLevel: "silent",
    absWorkingDir: REPO_ROOT,
  });
  return outfile;
}

/** Minimal surface of the D1 binding that Miniflare hands to Node. */
interface D1Like {
  exec(sql: string): Promise<unknown>;
  prepare(sql: string): D1StatementLike;
  batch(statements: D1StatementLike[]): Promise<unknown>;
}
interface D1StatementLike {
  bind(...values: unknown[]): D1StatementLike;
  all(): Promise<{ results: unknown[] }>;
}

/**
 * Applies `migrations/NNNN_name.sql` in order to binding DB, recording each in `d1_migrations`
 * like `wrangler d1 migrations apply` does, so restarts skip the ones already applied.
 * Each migration and its bookkeeping row run in one D1 batch (one transaction).
 */
export async function applyMigrations(mf: Miniflare, migrationsDir: string, log?: (message: string) => void): Promise<string[]> {
  const db = (await mf.getD1Database("DB")) as unknown as D1Like;
  await db.exec(
    "CREATE TABLE IF NOT EXISTS d1_migrations (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT UNIQUE, applied_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP);",
  );
  const { results } = await db.prepare("SELECT name FROM d1_migrations").all();
  const done = new Set((results as { name: string }[]).map((r) => r.name));

  const files = (await readdir(migrationsDir))
    .filter((f) => /^\d+[_-].*\.sql$/.test(f))
    .sort((a, b) => Number.parseInt(a, 10) - Number.parseInt(b, 10) || a.localeCompare(b));

  const applied: string[] = [];
  for (const name of files) {
    if (done.has(name)) continue;
    const sql = await readFile(path.join(migrationsDir, name), "utf8");
    const statements = unstable_splitSqlQuery(sql)
      .map((s) => s.trim())
      .filter((s) => s !== "");
    try {
      await db.batch([...statements.map((s) => db.prepare(s)), db.prepare("INSERT INTO d1_migrations (name) VALUES (?)").bind(name)]);
    } catch (err) {
      throw new Error(`D1 migration ${name} failed: ${(err as Error).message}`, { cause: err });
    }
    applied.push(name);
    log?.(`applied D1 migration ${name}`);
  }
  return applied;
}

function displayHost(host: string): string {
  if (host === "0.0.0.0" || host === "*" || host === "") return "127.0.0.1";
  if (host === "::") return "[::1]";
  return host.includes(":") && !host.startsWith("[") ? `[${host}]` : host;
}

/** Fails fast with PortInUseError instead of workerd's opaque "runtime failed to start". */
async function assertPortFree(host: string, port: number): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const server = net.createServer();
    server.once("error", (err: NodeJS.ErrnoException) => {
      if (err.code === "EADDRINUSE") reject(new PortInUseError(host, port));
      else if (err.code === "EACCES") reject(new Error(`not allowed to listen on ${host}:${port}`));
      else reject(err);
    });
    server.listen({ host: host.replace(/^\[|\]$/g, ""), port, exclusive: true }, () => server.close(() => resolve()));
  });
}

/** After a failed start, tell "port taken" (someone grabbed it after our check) apart from other failures. */
async function explainStartFailure(err: unknown, host: string, port: number): Promise<unknown> {
  if ((err as { code?: unknown } | null)?.code === "ERR_ADDRESS_IN_USE") return new PortInUseError(host, port);
  if (port === 0) return err;
  try {
    await assertPortFree(host, port);
  } catch (portErr) {
    if (portErr instanceof PortInUseError) return portErr;
  }
  return err;
}
