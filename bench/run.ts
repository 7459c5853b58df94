/**
 * `npm run bench`: the relay's performance figures on this machine, next to Mosquitto's, printed
 * (never judged) and written to bench/results/latest.json. Loopback only; stops by itself.
 *
 *   1. latency: commands one at a time over the full local stack (REST → workerd → TLS edge → agent),
 *      with the real agent (system_info) and with a protocol-only agent;
 *   2. throughput: many agents, many concurrent REST callers;
 *   3. memory per idle connected agent (workerd and the edge process, RSS before/after);
 *   4. Mosquitto QoS 1 doing the same round trip (run first, before the relay starts);
 *   5. summary with relay/Mosquitto ratios and the machine;
 *   6. what the metrics cost per command (outbox rows and publish RPCs, from the relay's /metrics).
 *
 * Sizes can be lowered for a quick look: BENCH_COMMANDS, BENCH_WARMUP, BENCH_CONNECTIONS,
 * BENCH_AGENTS, BENCH_CONCURRENCY (see bench/README.md).
 */
import { type ChildProcess, spawnSync } from "node:child_process";
import { closeSync, fdatasyncSync, openSync, writeSync } from "node:fs";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import https from "node:https";
import os from "node:os";
import path from "node:path";
import { signDevToken } from "../scripts/dev-token.ts";
import { readJwtSecret } from "../scripts/jwt-secret.ts";
import { type FanoutResult, fanout, fanoutLines } from "./fanout.ts";
import { type MetricsCost, metricsCost, scrapeCounters } from "./metrics-cost.ts";
import { findMosquitto, MOSQUITTO_PATHS, type MqttResult, runMosquitto } from "./mqtt-peer.ts";
import { clientCertFactory } from "./pki.ts";
import { ProtocolAgent } from "./protocol-agent.ts";
import { type RealAgentHandle, startRealAgent } from "./real-agent.ts";
import { forkRelayChild, type SampleReply } from "./relay-child.ts";
import { RestClient } from "./rest.ts";
import { runScaleBench, type ScaleResult } from "./scale.ts";
import { bytes, ms, ratio, type Summary, summarize, table } from "./stats.ts";
import { type SummaryInput, summaryText } from "./summary.ts";
import { Tracker } from "./tracker.ts";

const BENCH_DIR = import.meta.dirname;
const REPO_ROOT = path.resolve(BENCH_DIR, "..");

function intEnv(name: string, fallback: number, min: number): number {
  const v = process.env[name];
  if (v === undefined || v === "") return fallback;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) throw new Error(`${name} must be an integer ≥ ${min}, got ${v}`);
  return n;
}

const COMMANDS = intEnv("BENCH_COMMANDS", 2000, 1);
const WARMUP = intEnv("BENCH_WARMUP", 200, 0);
const CONNECTIONS = intEnv("BENCH_CONNECTIONS", 1000, 0);
const AGENTS = intEnv("BENCH_AGENTS", 8, 1);
const CONCURRENCY = intEnv("BENCH_CONCURRENCY", 32, 1);
/** Idle agents of the scale section (bench/scale.ts: edge processes, Mosquitto's clients, a reconnect storm); 0 skips it. */
const SCALE_AGENTS = intEnv("BENCH_SCALE_AGENTS", 1000, 0);
/** How long the scale section holds its idle fleet (heartbeats every 30 s). */
const SCALE_HOLD_S = intEnv("BENCH_SCALE_HOLD_S", 30, 0);
/** Hosts of the fan-out section (bench/fanout.ts: one job to all of them); 0 skips it. */
const FANOUT_HOSTS = intEnv("BENCH_FANOUT_HOSTS", 1000, 0);
/**
 * REST calls go through Miniflare's entry port (its entry worker and asset router, which on Cloudflare
 * run outside the Worker's isolate) instead of the Worker's direct socket. Default 0: direct.
 */
const VIA_ENTRY = process.env.BENCH_REST_VIA_ENTRY === "1";
/** The whole run is aborted past this (it normally takes about 7 minutes with the default sizes). */
const WATCHDOG_MS = 25 * 60_000;
/**
 * Time budgets (warm-up included): a run that reaches its budget stops early and reports the
 * commands it measured (the `n` column), so a slow relay cannot stretch the run without bound.
 */
const LATENCY_BUDGET_MS = 60_000;
const THROUGHPUT_BUDGET_MS = 30_000;
const BASELINE_BUDGET_MS = 12_000;
/** Runs that hit their budget, for a note under the tables. */
const cutShort: string[] = [];

const now = () => performance.now();
const sleep = (msec: number) => new Promise((r) => setTimeout(r, msec));
const out = (line = "") => process.stdout.write(`${line}\n`);

/** Runs `fn` over `items` with at most `limit` at a time. */
async function pool<T, R>(items: T[], limit: number, fn: (item: T, i: number) => Promise<R>): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      for (let i = next++; i < items.length; i = next++) results[i] = await fn(items[i]!, i);
    }),
  );
  return results;
}

// ---------------------------------------------------------------- the relay in a child process

interface RelayChild {
  proc: ChildProcess;
  url: string;
  /** The Worker's direct socket (the REST calls' address), null with BENCH_REST_VIA_ENTRY=1. */
  apiUrl: string | null;
  edgeUrl: string;
  caCertPem: string;
  caCertPath: string;
  workerdPids: number[];
  workerdComm: string[];
  /** RSS (after a GC in the edge process when `gc`) and CPU time so far, of workerd and of the edge process. */
  sample(gc: boolean): Promise<SampleReply>;
  stop(): Promise<void>;
}

async function startRelayChild(stateDir: string): Promise<RelayChild> {
  const child = await forkRelayChild(stateDir, VIA_ENTRY ? undefined : { apiPort: 0 });
  const { url, apiUrl, edgeUrl, caCertPem, caCertPath, workerdPids, workerdComm } = child.ready;
  return {
    proc: child.proc,
    url,
    apiUrl,
    edgeUrl,
    caCertPem,
    caCertPath,
    workerdPids,
    workerdComm,
    sample: child.sample,
    stop: () => child.stop(),
  };
}

// ---------------------------------------------------------------- CPU accounting

/** CPU time per operation (ms), by process, and the wall time per operation. */
interface CpuPerOp {
  workerd: number;
  edge: number;
  /** This process: REST callers, agents (real and protocol-only), TLS client side. */
  bench: number;
  wall: number;
}

/** Starts a CPU meter; call the returned function with the number of operations done since. */
async function cpuMeter(relay: RelayChild): Promise<(ops: number) => Promise<CpuPerOp>> {
  const a = await relay.sample(false);
  const b0 = process.cpuUsage();
  const t0 = now();
  return async (ops) => {
    const wall = now() - t0;
    const c = process.cpuUsage(b0);
    const b = await relay.sample(false);
    const r = (v: number) => Math.round((v / ops) * 1000) / 1000;
    return {
      workerd: r(b.workerdCpuMs - a.workerdCpuMs),
      edge: r(b.edgeCpuMs - a.edgeCpuMs),
      bench: r((c.user + c.system) / 1000),
      wall: r(wall),
    };
  };
}

// ---------------------------------------------------------------- baselines

interface Timed extends Summary {
  cpu?: CpuPerOp;
}

/**
 * `fn` sequentially, warm-up first, within BASELINE_BUDGET_MS; with `relay`, CPU per operation is
 * measured over the timed part.
 */
async function timeLoop(name: string, n: number, warmup: number, fn: () => Promise<void>, relay?: RelayChild): Promise<Timed> {
  const samples: number[] = [];
  const deadline = now() + BASELINE_BUDGET_MS;
  for (let i = 0; i < warmup; i++) await fn();
  const meter = relay ? await cpuMeter(relay) : null;
  for (let i = 0; i < n && (i === 0 || now() < deadline); i++) {
    const t0 = now();
    await fn();
    samples.push(now() - t0);
  }
  if (samples.length < n) cutShort.push(`${name}: ${samples.length} of ${n} (budget ${BASELINE_BUDGET_MS / 1000} s)`);
  const cpu = meter ? await meter(samples.length) : undefined;
  return { ...summarize(samples), ...(cpu ? { cpu } : {}) };
}

async function expectOk(rest: RestClient, path: string): Promise<void> {
  const r = await rest.request("GET", path);
  if (r.status !== 200) throw new Error(`GET ${path}: HTTP ${r.status}: ${r.body.slice(0, 300)}`);
}

async function baselines(relay: RelayChild, rest: RestClient, dir: string) {
  const direct = await timeLoop("GET /healthz", COMMANDS, WARMUP, () => expectOk(rest, "/healthz"), relay);
  // The same through Miniflare's entry port, whose entry worker and asset router the REST calls skip.
  let viaEntry: Awaited<ReturnType<typeof timeLoop>> | null = null;
  if (relay.apiUrl) {
    const entry = new RestClient(relay.url, "-", 1);
    viaEntry = await timeLoop("GET /healthz via entry", COMMANDS, WARMUP, () => expectOk(entry, "/healthz"), relay);
    entry.close();
  }
  const edgeAgent = new https.Agent({
    keepAlive: true,
    maxSockets: 1,
    ca: relay.caCertPem,
    servername: "localhost",
    minVersion: "TLSv1.3",
  });
  const viaEdge = await timeLoop(
    "GET /healthz via edge",
    COMMANDS,
    WARMUP,
    () =>
      new Promise<void>((resolve, reject) => {
        const req = https.get(`${relay.edgeUrl}/healthz`, { agent: edgeAgent }, (res) => {
          res.resume();
          res.on("end", () => (res.statusCode === 200 ? resolve() : reject(new Error(`edge GET /healthz: HTTP ${res.statusCode}`))));
        });
        req.on("socket", (s) => s.setNoDelay(true));
        req.on("error", reject);
      }),
    relay,
  );
  edgeAgent.destroy();
  const file = path.join(dir, "fdatasync.bin");
  const fd = openSync(file, "a");
  const line = Buffer.from(`${"x".repeat(99)}\n`);
  const fsync = await timeLoop("fdatasync", COMMANDS, WARMUP, async () => {
    writeSync(fd, line);
    fdatasyncSync(fd);
  });
  closeSync(fd);
  return { healthzDirect: direct, healthzViaEntry: viaEntry, healthzViaEdge: viaEdge, fdatasyncAppend: fsync };
}

// ---------------------------------------------------------------- commands

const TERMINAL = new Set(["succeeded", "failed", "timed_out", "expired", "cancelled", "dead_lettered"]);
const COMMAND_BODY = { command_type: "system_info" };

/** Queues one measured command; returns its id and when the REST call started and was answered. */
async function postCommand(rest: RestClient, hostId: string): Promise<{ id: string; t0: number; t1: number }> {
  const t0 = now();
  const r = await rest.request("POST", `/api/hosts/${hostId}/commands`, COMMAND_BODY);
  const t1 = now();
  if (r.status !== 202) throw new Error(`POST command: HTTP ${r.status}: ${r.body.slice(0, 300)}`);
  return { id: (JSON.parse(r.body) as { message_id: string }).message_id, t0, t1 };
}

interface LatencyResult {
  /** The last command sent (for the read baselines). */
  lastId: string;
  count: number;
  rest: Summary;
  received: Summary;
  stored: Summary;
  visible: Summary;
}

/** Commands one at a time to one host: the next is sent once the previous response is stored and visible. */
async function latencyRun(name: string, rest: RestClient, tracker: Tracker, hostId: string): Promise<LatencyResult> {
  const restT: number[] = [];
  const recvT: number[] = [];
  const storedT: number[] = [];
  const visibleT: number[] = [];
  let lastId = "";
  const deadline = now() + LATENCY_BUDGET_MS;
  for (let i = 0; i < WARMUP + COMMANDS && (i <= WARMUP || now() < deadline); i++) {
    const { id, t0, t1 } = await postCommand(rest, hostId);
    const tStored = await tracker.waitStored(id);
    let tVisible = Number.NaN;
    for (let attempt = 0; attempt < 100; attempt++) {
      const g = await rest.request("GET", `/api/hosts/${hostId}/commands/${id}`);
      if (g.status === 200 && TERMINAL.has((JSON.parse(g.body) as { state: string }).state)) {
        tVisible = now();
        break;
      }
    }
    if (Number.isNaN(tVisible)) throw new Error(`command ${id} stored but not visible as terminal over REST`);
    const tRecv = tracker.received.get(id);
    if (tRecv === undefined) throw new Error(`command ${id} stored but never seen arriving`);
    if (i >= WARMUP) {
      restT.push(t1 - t0);
      recvT.push(tRecv - t0);
      storedT.push(tStored - t0);
      visibleT.push(tVisible - t0);
    }
    tracker.forget(id);
    lastId = id;
  }
  if (restT.length < COMMANDS) cutShort.push(`${name}: ${restT.length} of ${COMMANDS} commands (budget ${LATENCY_BUDGET_MS / 1000} s)`);
  return {
    lastId,
    count: restT.length,
    rest: summarize(restT),
    received: summarize(recvT),
    stored: summarize(storedT),
    visible: summarize(visibleT),
  };
}

interface ThroughputResult {
  agents: number;
  concurrency: number;
  count: number;
  seconds: number;
  perSecond: number;
  rest: Summary;
  received: Summary;
  stored: Summary;
  cpu: CpuPerOp;
}

/** `concurrency` callers, each sending its next command as soon as its previous one is stored. */
async function throughputRun(
  name: string,
  relay: RelayChild,
  rest: RestClient,
  tracker: Tracker,
  hostIds: string[],
): Promise<ThroughputResult> {
  const restT: number[] = [];
  const recvT: number[] = [];
  const storedT: number[] = [];
  const deadline = now() + THROUGHPUT_BUDGET_MS;
  let done = 0;
  const run = async (total: number, record: boolean) => {
    let next = 0;
    await Promise.all(
      Array.from({ length: CONCURRENCY }, async () => {
        for (let i = next++; i < total && (!record || now() < deadline); i = next++) {
          const hostId = hostIds[i % hostIds.length]!;
          const { id, t0, t1 } = await postCommand(rest, hostId);
          const tStored = await tracker.waitStored(id);
          if (record) {
            restT.push(t1 - t0);
            recvT.push((tracker.received.get(id) ?? Number.NaN) - t0);
            storedT.push(tStored - t0);
            done++;
          }
          tracker.forget(id);
        }
      }),
    );
  };
  await run(WARMUP, false);
  const meter = await cpuMeter(relay);
  const t0 = now();
  await run(COMMANDS, true);
  const seconds = (now() - t0) / 1000;
  const cpu = await meter(done);
  if (done < COMMANDS) cutShort.push(`${name}: ${done} of ${COMMANDS} commands (budget ${THROUGHPUT_BUDGET_MS / 1000} s)`);
  return {
    agents: hostIds.length,
    concurrency: CONCURRENCY,
    count: done,
    seconds: Math.round(seconds * 1000) / 1000,
    perSecond: Math.round(done / seconds),
    rest: summarize(restT),
    received: summarize(recvT.filter((v) => !Number.isNaN(v))),
    stored: summarize(storedT),
    cpu,
  };
}

// ---------------------------------------------------------------- hosts and agents

type CertFactory = Awaited<ReturnType<typeof clientCertFactory>>;

async function registerHost(rest: RestClient, admin: string, certs: CertFactory, hostname: string) {
  const issued = await certs.issue(hostname);
  const host = await rest.json<{ host_id: string }>(
    "POST",
    "/api/hosts",
    { hostname, cert_fingerprint_sha256: issued.fingerprint },
    201,
    admin,
  );
  return { hostId: host.host_id, certPem: issued.certPem };
}

interface MemoryResult {
  connections: number;
  connectSeconds: number;
  before: { edgeRss: number; workerdRss: number };
  after: { edgeRss: number; workerdRss: number };
  perConnection: { edge: number; workerd: number; total: number };
}

async function memoryRun(relay: RelayChild, rest: RestClient, admin: string, certs: CertFactory): Promise<MemoryResult> {
  const t0 = now();
  const issued = [];
  for (let i = 0; i < CONNECTIONS; i++) issued.push(await certs.issue(`idle-${i}`));
  const tCerts = now();
  await pool(issued, 16, (c) => rest.json("POST", "/api/hosts", { hostname: c.cn, cert_fingerprint_sha256: c.fingerprint }, 201, admin));
  const tRegistered = now();
  out(
    `  ${CONNECTIONS} certificates in ${((tCerts - t0) / 1000).toFixed(1)} s, registered in ${((tRegistered - tCerts) / 1000).toFixed(1)} s`,
  );
  await sleep(1000);
  const before = await relay.sample(true);
  const url = `${relay.edgeUrl.replace("https:", "wss:")}/agent/connect`;
  const tc0 = now();
  const sockets = await pool(issued, 32, (c) =>
    ProtocolAgent.connect({ url, ca: relay.caCertPem, cert: c.certPem, key: certs.keyPem, hostname: c.cn, timeoutMs: 60_000 }),
  );
  const connectSeconds = (now() - tc0) / 1000;
  out(`  ${CONNECTIONS} agents connected (hello → welcome) in ${connectSeconds.toFixed(1)} s`);
  await sleep(3000);
  const after = await relay.sample(true);
  await pool(sockets, 64, (s) => s.close());
  const per = (a: number, b: number) => (CONNECTIONS > 0 ? Math.round((b - a) / CONNECTIONS) : 0);
  return {
    connections: CONNECTIONS,
    connectSeconds: Math.round(connectSeconds * 10) / 10,
    before: { edgeRss: before.edgeRss, workerdRss: before.workerdRss },
    after: { edgeRss: after.edgeRss, workerdRss: after.workerdRss },
    perConnection: {
      edge: per(before.edgeRss, after.edgeRss),
      workerd: per(before.workerdRss, after.workerdRss),
      total: per(before.edgeRss + before.workerdRss, after.edgeRss + after.workerdRss),
    },
  };
}

// ---------------------------------------------------------------- main

function machine() {
  const cpus = os.cpus();
  return {
    cpu: cpus[0]?.model.trim() ?? "unknown",
    cores: os.availableParallelism(),
    memory_bytes: os.totalmem(),
    os: `${os.type()} ${os.release()} ${os.machine()}`,
    node: process.version,
    code: codeVersion(),
  };
}

/** The commit the relay was built from, and whether the working tree differs from it. */
function codeVersion(): string {
  const git = (...args: string[]) => spawnSync("git", args, { cwd: REPO_ROOT, encoding: "utf8" });
  const head = git("rev-parse", "--short", "HEAD");
  if (head.status !== 0) return "unknown (not a git checkout)";
  const dirty = git("status", "--porcelain", "--", "worker", "schemas", "scripts", "agent", "wrangler.toml", "migrations").stdout.trim();
  const changed = dirty ? dirty.split("\n").length : 0;
  return `${head.stdout.trim()}${changed ? ` + ${changed} uncommitted change(s) in worker/ schemas/ scripts/ agent/ wrangler.toml migrations/` : " (clean)"}`;
}

/** A table row: name, n, p50, p90, p99, max. */
const pRow = (name: string, s: Summary) => [name, String(s.n), ms(s.p50), ms(s.p90), ms(s.p99), ms(s.max)];

function latencyRows(label: string, r: LatencyResult): string[][] {
  const row = pRow;
  return [
    [label, "", "", "", "", ""],
    row("  (c) REST call (POST → 202)", r.rest),
    row("  (a) → agent received command", r.received),
    row("  (b) → response stored (relay ack at agent)", r.stored),
    row("  (d) → response visible over REST", r.visible),
  ];
}

async function main(): Promise<void> {
  const startedAt = new Date();
  const m = machine();
  out(`fleet-relay benchmark — ${startedAt.toISOString()}`);
  out(`machine: ${m.cpu}, ${m.cores} cores, ${bytes(m.memory_bytes)} RAM, ${m.os}, node ${m.node}`);
  out(`relay code: ${m.code}`);
  out(
    `sizes: ${COMMANDS} commands per run (+${WARMUP} warm-up), ${AGENTS} agents × ${CONCURRENCY} callers for throughput, ${CONNECTIONS} idle connections`,
  );
  out();

  const work = await mkdtemp(path.join(os.tmpdir(), "fleet-bench-"));
  const stateDir = path.join(work, "relay");
  let relay: RelayChild | null = null;
  let rest: RestClient | null = null;
  const realAgents: RealAgentHandle[] = [];
  const protoAgents: ProtocolAgent[] = [];
  const cleanup = async () => {
    await Promise.all(protoAgents.map((a) => a.close().catch(() => {})));
    await Promise.all(realAgents.map((a) => a.stop().catch(() => {})));
    rest?.close();
    await relay?.stop().catch(() => {});
    await rm(work, { recursive: true, force: true }).catch(() => {});
  };
  const watchdog = setTimeout(() => {
    out(`bench: aborted by the watchdog after ${WATCHDOG_MS / 60_000} min`);
    relay?.proc.kill("SIGKILL");
    process.exit(1);
  }, WATCHDOG_MS);

  try {
    // ---- 4. the peer first, on a machine with nothing else of ours running
    let mqtt: MqttResult | null = null;
    let mqttSkipped: string | null = null;
    const bin = findMosquitto();
    if (!bin) {
      const looked = process.env.BENCH_MOSQUITTO ? `BENCH_MOSQUITTO=${process.env.BENCH_MOSQUITTO}` : MOSQUITTO_PATHS.join(", ");
      mqttSkipped = `mosquitto not found (looked for ${looked}); install it with: apt-get install -y mosquitto`;
      out(`SKIP mosquitto peer: ${mqttSkipped}`);
    } else {
      out("mosquitto peer …");
      mqtt = await runMosquitto(bin, COMMANDS, WARMUP, out);
    }

    // ---- start
    let t = now();
    relay = await startRelayChild(stateDir);
    out(
      `relay up in ${((now() - t) / 1000).toFixed(1)} s: REST ${relay.apiUrl ?? relay.url}${relay.apiUrl ? ` (the Worker's direct socket; entry port ${relay.url})` : ""}, edge ${relay.edgeUrl}, workerd pid ${relay.workerdPids.join(",")} (${relay.workerdComm.join(",")})`,
    );
    const secret = (await readJwtSecret(stateDir))!;
    const admin = await signDevToken({ secret, role: "admin", ttlSeconds: 7200, sub: "bench-admin" });
    const operator = await signDevToken({ secret, role: "operator", ttlSeconds: 7200, sub: "bench" });
    const metricsToken = await signDevToken({ secret, role: "metrics", ttlSeconds: 7200, sub: "bench-metrics" });
    rest = new RestClient(relay.apiUrl ?? relay.url, operator, Math.max(64, CONCURRENCY * 2));
    const certs = await clientCertFactory(stateDir);

    // ---- baselines
    out("baselines …");
    const base = await baselines(relay, rest, work);

    // ---- agents
    t = now();
    const tracker = new Tracker();
    for (let i = 0; i < AGENTS; i++) {
      realAgents.push(
        await startRealAgent({
          rest,
          adminToken: admin,
          edgeUrl: relay.edgeUrl,
          caCertPath: relay.caCertPath,
          stateDir: path.join(work, `agent-${i}`),
          hostname: `bench-real-${i}`,
          tracker,
        }),
      );
    }
    const connectUrl = `${relay.edgeUrl.replace("https:", "wss:")}/agent/connect`;
    for (let i = 0; i < AGENTS; i++) {
      const h = await registerHost(rest, admin, certs, `bench-proto-${i}`);
      protoAgents.push(
        await ProtocolAgent.connect({
          url: connectUrl,
          ca: relay.caCertPem,
          cert: h.certPem,
          key: certs.keyPem,
          hostname: `bench-proto-${i}`,
          tracker,
        }),
      );
    }
    out(`${AGENTS} real agents enrolled and ${AGENTS} protocol-only agents connected in ${((now() - t) / 1000).toFixed(1)} s`);

    // ---- 1. latency
    const countersBefore = await scrapeCounters(relay.url, metricsToken);
    out("latency, real agent …");
    t = now();
    const latReal = await latencyRun("latency, real agent", rest, tracker, realAgents[0]!.hostId);
    out(`  done in ${((now() - t) / 1000).toFixed(1)} s`);
    out("latency, protocol-only agent …");
    t = now();
    const latProto = await latencyRun("latency, protocol-only agent", rest, tracker, protoAgents[0]!.hostId);
    out(`  done in ${((now() - t) / 1000).toFixed(1)} s`);

    // ---- where the time goes: the same REST layer without the agent path
    out("read/write baselines …");
    const protoHost = protoAgents[0]!.hostId;
    const r0 = rest;
    const readHosts = await timeLoop("GET /api/hosts", COMMANDS, WARMUP, () => expectOk(r0, "/api/hosts?limit=1"), relay);
    const readCommand = await timeLoop(
      "GET a command",
      COMMANDS,
      WARMUP,
      () => expectOk(r0, `/api/hosts/${protoHost}/commands/${latProto.lastId}`),
      relay,
    );
    const offline = await registerHost(rest, admin, certs, "bench-offline");
    const enqueueOffline = await timeLoop(
      "POST a command, host offline",
      COMMANDS,
      WARMUP,
      async () => {
        await postCommand(r0, offline.hostId);
      },
      relay,
    );

    // ---- 2. throughput
    out(`throughput, ${AGENTS} protocol-only agents, ${CONCURRENCY} callers …`);
    const tpProto = await throughputRun(
      "throughput, protocol-only agents",
      relay,
      rest,
      tracker,
      protoAgents.map((a) => a.hostId),
    );
    out(`  ${tpProto.perSecond} cmds/s`);
    out(`throughput, ${AGENTS} real agents, ${CONCURRENCY} callers …`);
    const tpReal = await throughputRun(
      "throughput, real agents",
      relay,
      rest,
      tracker,
      realAgents.map((a) => a.hostId),
    );
    out(`  ${tpReal.perSecond} cmds/s`);
    // Over latency and throughput: every command in them went through a real or protocol agent.
    const cost: MetricsCost = metricsCost(countersBefore, await scrapeCounters(relay.url, metricsToken));

    // Only idle connections from here on.
    await Promise.all(protoAgents.splice(0).map((a) => a.close()));
    await Promise.all(realAgents.splice(0).map((a) => a.stop()));

    // ---- 3. memory
    let mem: MemoryResult | null = null;
    if (CONNECTIONS > 0) {
      out(`memory, ${CONNECTIONS} idle agents …`);
      mem = await memoryRun(relay, rest, admin, certs);
    }
    rest.close();
    rest = null;
    await relay.stop();
    relay = null;

    // ---- 4. scale and fan-out, each on a relay of its own
    let scale: ScaleResult | null = null;
    if (SCALE_AGENTS > 0) {
      out(`scale, ${SCALE_AGENTS} idle agents and as many MQTT clients …`);
      scale = await runScaleBench({ agents: SCALE_AGENTS, holdS: SCALE_HOLD_S, mosquitto: bin ?? null, log: (l) => out(`  ${l}`) });
    }
    let fan: FanoutResult | null = null;
    if (FANOUT_HOSTS > 0) {
      out(`fan-out, one job to ${FANOUT_HOSTS} hosts …`);
      fan = await fanout(FANOUT_HOSTS, (l) => out(`  ${l}`));
    }

    // ---- 5. report
    out();
    out("=".repeat(96));
    out(`RESULTS  (${m.cpu}, ${m.cores} cores, node ${m.node}; times in ms from the moment the call/publish was made)`);
    out("=".repeat(96));
    out();
    out(`1. Command latency, one at a time (+${WARMUP} warm-up), REST over HTTP → workerd → TLS 1.3 edge → agent`);
    const lat: string[][] = [
      ...latencyRows("relay, real agent (system_info)", latReal),
      ...latencyRows("relay, protocol-only agent", latProto),
    ];
    if (mqtt) {
      const row = pRow;
      lat.push(
        [`mosquitto ${mqtt.version}, QoS 1, persistent sessions`, "", "", "", "", ""],
        row("  publish (PUBACK at operator)", mqtt.publish),
        row("  → agent received command", mqtt.received),
        row("  → response stored (PUBACK at agent)", mqtt.stored),
        row("  → operator received response", mqtt.roundTrip),
      );
    }
    out(table(["", "n", "p50", "p90", "p99", "max"], lat));
    if (!mqtt) out(`  mosquitto: skipped (${mqttSkipped})`);
    out();
    out(`2. Throughput (+${WARMUP} warm-up), ${CONCURRENCY} concurrent REST callers, round trip = REST call → response stored`);
    const tpRow = (name: string, r: ThroughputResult) => [
      name,
      String(r.count),
      String(r.agents),
      String(r.perSecond),
      ms(r.stored.p50),
      ms(r.stored.p99),
      ms(r.rest.p50),
      ms(r.rest.p99),
      ms(r.cpu.workerd),
      ms(r.cpu.edge),
      ms(r.cpu.bench),
    ];
    out(
      table(
        ["", "n", "agents", "cmds/s", "rt p50", "rt p99", "REST p50", "REST p99", "CPU/cmd: workerd", "edge", "bench"],
        [tpRow("protocol-only agents", tpProto), tpRow("real agents (system_info)", tpReal)],
      ),
    );
    out("  CPU/cmd: CPU time per command in ms of workerd, of the edge process, and of this process (REST callers + agents)");
    out();
    if (mem) {
      out(
        `3. Memory per idle connected agent (${mem.connections} agents through the edge, hello → welcome, RSS 3 s after the last welcome)`,
      );
      out(
        table(
          ["", "before", "after", "per connection"],
          [
            [
              "workerd (Worker + Durable Objects)",
              bytes(mem.before.workerdRss),
              bytes(mem.after.workerdRss),
              bytes(mem.perConnection.workerd),
            ],
            [
              "edge process (TLS edge + Miniflare host)",
              bytes(mem.before.edgeRss),
              bytes(mem.after.edgeRss),
              bytes(mem.perConnection.edge),
            ],
            [
              "both",
              bytes(mem.before.workerdRss + mem.before.edgeRss),
              bytes(mem.after.workerdRss + mem.after.edgeRss),
              bytes(mem.perConnection.total),
            ],
          ],
        ),
      );
      out(
        `  connecting ${mem.connections} agents took ${mem.connectSeconds} s (${Math.round(mem.connections / mem.connectSeconds)} connections/s, 32 at a time)`,
      );
      out();
    } else {
      out("3. Memory per idle connected agent: skipped (BENCH_CONNECTIONS=0)");
      out();
    }
    out("4. Baselines: where the time goes (sequential operations; CPU in ms per operation)");
    const bRow = (name: string, s: Timed) => [
      name,
      String(s.n),
      ms(s.p50),
      ms(s.p90),
      ms(s.p99),
      ms(s.max),
      ms(s.cpu?.workerd),
      ms(s.cpu?.edge),
      ms(s.cpu?.bench),
    ];
    out(
      table(
        ["", "n", "p50", "p90", "p99", "max", "CPU: workerd", "edge", "bench"],
        [
          bRow(
            base.healthzViaEntry ? "GET /healthz, the Worker's direct socket" : "GET /healthz, straight to workerd (Miniflare)",
            base.healthzDirect,
          ),
          ...(base.healthzViaEntry ? [bRow("GET /healthz, Miniflare's entry port (+ asset router)", base.healthzViaEntry)] : []),
          bRow("GET /healthz through the TLS edge", base.healthzViaEdge),
          bRow("GET /api/hosts?limit=1 (JWT + D1 read)", readHosts),
          bRow("GET a command (JWT + Durable Object read)", readCommand),
          bRow("POST a command, host offline (JWT + DO write)", enqueueOffline),
          bRow("append 100 B + fdatasync (tmpdir)", base.fdatasyncAppend),
        ],
      ),
    );
    out();
    out("5. Relay / Mosquitto, round trip (relay: REST call → response stored; mosquitto: publish → operator received response)");
    const ratios = mqtt
      ? {
          real_agent: { p50: latReal.stored.p50 / mqtt.roundTrip.p50, p99: latReal.stored.p99 / mqtt.roundTrip.p99 },
          protocol_agent: { p50: latProto.stored.p50 / mqtt.roundTrip.p50, p99: latProto.stored.p99 / mqtt.roundTrip.p99 },
        }
      : null;
    if (mqtt) {
      out(
        table(
          ["", "relay p50", "mqtt p50", "ratio p50", "relay p99", "mqtt p99", "ratio p99"],
          [
            [
              "real agent (system_info)",
              ms(latReal.stored.p50),
              ms(mqtt.roundTrip.p50),
              ratio(latReal.stored.p50, mqtt.roundTrip.p50),
              ms(latReal.stored.p99),
              ms(mqtt.roundTrip.p99),
              ratio(latReal.stored.p99, mqtt.roundTrip.p99),
            ],
            [
              "protocol-only agent",
              ms(latProto.stored.p50),
              ms(mqtt.roundTrip.p50),
              ratio(latProto.stored.p50, mqtt.roundTrip.p50),
              ms(latProto.stored.p99),
              ms(mqtt.roundTrip.p99),
              ratio(latProto.stored.p99, mqtt.roundTrip.p99),
            ],
          ],
        ),
      );
    } else {
      out(`  skipped: ${mqttSkipped}`);
    }
    out();
    out(`6. Metrics cost per finished command (${cost.commands} commands of runs 1 and 2, from the relay's /metrics)`);
    out(
      table(
        ["", "before metrics", "with metrics"],
        [
          ["outbox rows", String(cost.outbox_rows_per_command_before_metrics), String(cost.outbox_rows_per_command_with_metrics)],
          ["publish RPCs to FleetEvents", String(cost.rpcs_per_command_before_metrics), String(cost.rpcs_per_command_with_metrics)],
        ],
      ),
    );
    out(
      `  metrics rows ${cost.metrics_rows_per_command}/command, of which ${cost.metrics_rows_alone_per_command} travelled alone; the rest rode in an event publish`,
    );
    out();
    const summary: SummaryInput = {
      agents: AGENTS,
      concurrency: CONCURRENCY,
      protocolRoundTrip: latProto.stored,
      realRoundTrip: latReal.stored,
      throughput: { perSecond: tpProto.perSecond, workerdCpuMs: tpProto.cpu.workerd },
      mosquitto: mqtt ? { version: mqtt.version, roundTrip: mqtt.roundTrip } : null,
      idle: mem
        ? { agents: mem.connections, bytesPerAgent: mem.perConnection.total, connectsPerS: mem.connections / mem.connectSeconds }
        : undefined,
      scaleMemory: scale
        ? { agents: scale.relay.connected, relayBytes: scale.relay.perConnectionTotal, mosquittoBytes: scale.mosquitto?.perConnectionTotal }
        : undefined,
      connectRate: scale
        ? { agents: scale.relay.connected, relayPerS: scale.relay.ratePerS, mosquittoPerS: scale.mosquitto?.ratePerS }
        : undefined,
      fanOut: fan ? { hosts: fan.hosts, seconds: fan.allQueuedMs / 1000 } : undefined,
    };
    if (scale) {
      const r = scale.relay;
      const peer = scale.mosquitto;
      out(
        `7. Scale: ${r.connected} of ${r.requested} idle agents (${scale.sizes.edgeProcesses} edge processes), held ${scale.sizes.holdS} s`,
      );
      out(
        table(
          ["", "relay", peer ? `mosquitto ${peer.version}` : "mosquitto (skipped)", "relay/mosquitto"],
          [
            [
              "connected, total time",
              `${r.connected} in ${r.totalS.toFixed(1)} s`,
              peer ? `${peer.connected} in ${peer.totalS.toFixed(1)} s` : "-",
              "-",
            ],
            [
              "connect rate (peak)",
              `${Math.round(r.ratePerS)}/s (${r.peakPerS})`,
              peer ? `${Math.round(peer.ratePerS)}/s (${peer.peakPerS})` : "-",
              peer ? ratio(r.ratePerS, peer.ratePerS) : "-",
            ],
            [
              "memory per idle connection",
              bytes(r.perConnectionTotal),
              peer ? bytes(peer.perConnectionTotal) : "-",
              peer ? ratio(r.perConnectionTotal, peer.perConnectionTotal) : "-",
            ],
            ["dropped during the hold", String(r.droppedDuringHold), peer ? String(peer.droppedDuringHold) : "-", "-"],
          ],
        ),
      );
      for (const p of r.memory)
        out(`  ${p.name} (pid ${p.pid}): ${bytes(p.perConnection)} per connection, ${p.fdsPeak} open files at most`);
      if (r.cpuPerConnectMs) out(`  CPU per connect: workerd ${ms(r.cpuPerConnectMs.workerd)} ms, edges ${ms(r.cpuPerConnectMs.edges)} ms`);
      if (r.stoppedAtFdLimit)
        out(`  first dials stopped at workerd's open-file limit: ${r.stoppedAtFdLimit.workerdFds} of ${r.stoppedAtFdLimit.limit}`);
      const st = scale.storm;
      if (st) {
        out(
          `  reconnect storm (relay SIGKILLed, restarted): answering after ${st.restartS.toFixed(1)} s, all ${st.agents} back after ${st.allBackS.toFixed(1)} s, ` +
            `peak ${st.peakPerS}/s; commands queued while down ${st.commandsQueued}, succeeded ${st.commandsSucceeded}, lost ${st.lost}`,
        );
        out(`  welcomes per second from the kill: ${st.perSecond.join(" ")}`);
      }
      out();
    }
    if (fan) {
      out("8. Fan-out");
      for (const line of fanoutLines(fan)) out(`  ${line}`);
      out();
    }
    out("9. Summary: the performance issue's figures and targets (this run)");
    for (const line of summaryText(summary)) out(line);
    out();
    if (cutShort.length) out(`Stopped at their time budget (n above is what was measured): ${cutShort.join("; ")}`);
    out(`relay code: ${m.code}`);
    out(`machine: ${m.cpu}; ${m.cores} cores; ${bytes(m.memory_bytes)} RAM; ${m.os}; node ${m.node}`);

    const results = {
      started_at: startedAt.toISOString(),
      finished_at: new Date().toISOString(),
      machine: m,
      sizes: { commands: COMMANDS, warmup: WARMUP, agents: AGENTS, concurrency: CONCURRENCY, connections: CONNECTIONS },
      units: { latency: "ms", memory: "bytes", throughput: "commands/s" },
      latency: { real_agent: latReal, protocol_agent: latProto },
      throughput: { protocol_agents: tpProto, real_agents: tpReal },
      metrics_cost: cost,
      memory: mem,
      scale,
      fanout: fan,
      baselines: { ...base, readHosts, readCommand, enqueueOffline },
      mosquitto: mqtt ?? { skipped: mqttSkipped },
      ratios_relay_over_mosquitto_round_trip: ratios,
      summary,
    };
    const resultsDir = path.join(BENCH_DIR, "results");
    await mkdir(resultsDir, { recursive: true });
    await writeFile(path.join(resultsDir, "latest.json"), `${JSON.stringify(results, null, 2)}\n`);
    out(`results written to ${path.relative(process.cwd(), path.join(resultsDir, "latest.json")) || "bench/results/latest.json"}`);
  } finally {
    clearTimeout(watchdog);
    await cleanup();
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(`bench failed: ${(err as Error).stack ?? String(err)}`);
    process.exit(1);
  },
);
