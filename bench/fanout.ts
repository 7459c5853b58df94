/**
 * `npm run bench:fanout`: one job to many hosts. Starts the local relay in a child process
 * (bench/relay-process.ts, fresh state), registers BENCH_FANOUT_HOSTS hosts (default 10,000) with
 * `POST /api/hosts`, then times one `POST /api/jobs` targeting all of them:
 *
 *   - accept: the POST made → its 202;
 *   - all queued or waiting: the POST made → `GET /api/jobs/{id}` counts every host as queued (or
 *     beyond: committed in its own HostRelay, and the coordinator recorded it) or waiting (offline at
 *     its turn: committed in the coordinator and listed in the registry's job_waits, to be dispatched
 *     when the agent connects). No agent connects here, so every host ends waiting;
 *   - settled: until workerd's CPU goes quiet (the outboxes' events, job updates and metrics delivered);
 *   - workerd CPU (from /proc/<pid>/stat) over each period, also per host.
 *
 * BENCH_FANOUT_PROFILE=<file> also writes a V8 CPU profile of workerd over the fan-out and prints
 * the functions that took the time. `fanout()` is exported for bench/run.ts; run standalone it prints the figures.
 */
import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { signDevToken } from "../scripts/dev-token.ts";
import { readJwtSecret } from "../scripts/jwt-secret.ts";
import { startProfiler, summarizeProfile } from "./cpu-profile.ts";
import { forkRelayChild } from "./relay-child.ts";
import { RestClient } from "./rest.ts";

const now = () => performance.now();
const sleep = (msec: number) => new Promise((r) => setTimeout(r, msec));

export interface FanoutResult {
  hosts: number;
  registerSeconds: number;
  acceptMs: number;
  allQueuedMs: number;
  settledMs: number;
  /** workerd CPU (ms) from the POST to all queued, and from the POST until quiet. */
  cpuToQueuedMs: number;
  cpuToSettledMs: number;
  /** The job's counts when every host was queued. */
  counts: Record<string, number>;
}

/** States a host's command reaches only after it was queued on its relay. */
const QUEUED_OR_LATER = ["queued", "delivered", "running", "succeeded", "failed", "timed_out", "cancelling", "dead_lettered"];
/**
 * A host's command is committed where it will be delivered from: queued on its relay, or (the host
 * is offline, as every host is here) held by the job as `waiting` until the agent connects.
 */
const HELD = ["waiting", ...QUEUED_OR_LATER];
/** Give up waiting for "all queued" after this. */
const QUEUE_BUDGET_MS = 300_000;
/** workerd is quiet once it used less than this share of one core over QUIET_WINDOW_MS. */
const QUIET_SHARE = 0.03;
const QUIET_WINDOW_MS = 1000;

/** The relay child, reduced to what this benchmark needs. */
async function startRelay(stateDir: string, inspectorPort?: number) {
  const child = await forkRelayChild(stateDir, inspectorPort === undefined ? undefined : { inspectorPort });
  return {
    url: child.ready.url,
    workerdPids: child.ready.workerdPids,
    /** workerd's CPU time so far, ms. */
    cpu: async () => (await child.sample()).workerdCpuMs,
    stop: () => child.stop(),
  };
}

async function pool<T>(items: T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      while (next < items.length) await fn(items[next++]!);
    }),
  );
}

/** A port nobody listens on right now. */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer().listen(0, "127.0.0.1", () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
    srv.on("error", reject);
  });
}

/**
 * Runs the fan-out measurement on a fresh relay; `log` gets progress lines. With `profileFile`, a
 * V8 CPU profile of workerd from the POST until every host is queued is written there and summarised.
 */
export async function fanout(hosts: number, log: (line: string) => void = () => {}, profileFile?: string): Promise<FanoutResult> {
  const work = await mkdtemp(path.join(os.tmpdir(), "fleet-fanout-"));
  const inspectorPort = profileFile ? await freePort() : undefined;
  const relay = await startRelay(path.join(work, "relay"), inspectorPort);
  const secret = (await readJwtSecret(path.join(work, "relay")))!;
  const admin = await signDevToken({ secret, role: "admin", ttlSeconds: 7200, sub: "bench-admin" });
  const operator = await signDevToken({ secret, role: "operator", ttlSeconds: 7200, sub: "bench" });
  const rest = new RestClient(relay.url, operator, 32);
  try {
    log(`relay up: ${relay.url}, workerd pid ${relay.workerdPids.join(",")}; registering ${hosts} hosts …`);
    const t0 = now();
    const names = Array.from({ length: hosts }, (_, i) => `fanout-${i}`);
    // The relay binds a host to a certificate fingerprint; no agent connects here, so any unique one does.
    await pool(names, 16, async (hostname) => {
      await rest.json("POST", "/api/hosts", { hostname, cert_fingerprint_sha256: randomBytes(32).toString("hex") }, 201, admin);
    });
    const registerSeconds = (now() - t0) / 1000;
    log(`  registered in ${registerSeconds.toFixed(1)} s`);
    await sleep(2000);

    const profiler = inspectorPort === undefined ? null : await startProfiler(inspectorPort);
    const cpu0 = await relay.cpu();
    const tPost = now();
    const accepted = await rest.json<{ job_id: string; hosts: number }>(
      "POST",
      "/api/jobs",
      { command_type: "system_info", target: { all: true }, expires_in: 3600 },
      202,
    );
    const acceptMs = now() - tPost;
    if (accepted.hosts !== hosts) throw new Error(`the job targets ${accepted.hosts} hosts, not ${hosts}`);
    log(`  job ${accepted.job_id} accepted in ${acceptMs.toFixed(0)} ms; waiting until every host is queued …`);

    let counts: Record<string, number> = {};
    let lastLog = now();
    for (;;) {
      const job = await rest.json<{ counts: Record<string, number> }>("GET", `/api/jobs/${accepted.job_id}`, undefined, 200);
      counts = job.counts;
      const queued = HELD.reduce((n, s) => n + (counts[s] ?? 0), 0);
      if (queued >= hosts) break;
      const others = Object.entries(counts).filter(([s, n]) => n > 0 && !HELD.includes(s) && s !== "pending" && s !== "dispatching");
      if (others.length) throw new Error(`hosts ended neither queued nor pending: ${JSON.stringify(counts)}`);
      if (now() - tPost > QUEUE_BUDGET_MS) throw new Error(`not all queued after ${QUEUE_BUDGET_MS / 1000} s: ${JSON.stringify(counts)}`);
      if (now() - lastLog > 10_000) {
        log(`    ${((now() - tPost) / 1000).toFixed(0)} s: ${queued} queued or waiting`);
        lastLog = now();
      }
      await sleep(50);
    }
    const allQueuedMs = now() - tPost;
    const cpuQueued = await relay.cpu();
    if (profiler && profileFile) {
      const profile = await profiler.stop(profileFile);
      log(`  CPU profile written to ${profileFile}`);
      for (const line of summarizeProfile(profile, 40)) log(line);
    }
    log(`  all ${hosts} queued or waiting after ${(allQueuedMs / 1000).toFixed(2)} s; waiting for workerd to go quiet …`);

    // Quiet: the work the fan-out left behind (outbox deliveries) is done.
    let prev = cpuQueued;
    let tPrev = now();
    let settledMs = allQueuedMs;
    let cpuSettled = cpuQueued;
    while (now() - tPost < QUEUE_BUDGET_MS) {
      await sleep(QUIET_WINDOW_MS);
      const c = await relay.cpu();
      const t = now();
      if ((c - prev) / (t - tPrev) < QUIET_SHARE) break;
      settledMs = t - tPost;
      cpuSettled = c;
      prev = c;
      tPrev = t;
    }
    return {
      hosts,
      registerSeconds,
      acceptMs,
      allQueuedMs,
      settledMs,
      cpuToQueuedMs: cpuQueued - cpu0,
      cpuToSettledMs: cpuSettled - cpu0,
      counts,
    };
  } finally {
    rest.close();
    await relay.stop().catch(() => {});
    await rm(work, { recursive: true, force: true }).catch(() => {});
  }
}

/** The figures as printed lines. */
export function fanoutLines(r: FanoutResult): string[] {
  const s = (msec: number) => `${(msec / 1000).toFixed(2)} s`;
  const per = (msec: number) => `${((msec / r.hosts) * 1000).toFixed(0)} µs/host`;
  return [
    `fan-out, one job to ${r.hosts} hosts (registered in ${r.registerSeconds.toFixed(1)} s):`,
    `  accept (POST /api/jobs → 202)     ${r.acceptMs.toFixed(0)} ms`,
    `  every host queued or waiting      ${s(r.allQueuedMs)}   workerd CPU ${s(r.cpuToQueuedMs)} (${per(r.cpuToQueuedMs)})`,
    `    of which waiting (offline)      ${r.counts.waiting ?? 0}, queued on their relays ${QUEUED_OR_LATER.reduce((n, st) => n + (r.counts[st] ?? 0), 0)}`,
    `  settled (workerd quiet)           ${s(r.settledMs)}   workerd CPU ${s(r.cpuToSettledMs)} (${per(r.cpuToSettledMs)})`,
  ];
}

if (import.meta.main) {
  const raw = process.env.BENCH_FANOUT_HOSTS;
  const hosts = raw ? Number(raw) : 10_000;
  if (!Number.isInteger(hosts) || hosts < 1) throw new Error(`BENCH_FANOUT_HOSTS must be an integer ≥ 1, got ${raw}`);
  const result = await fanout(hosts, (line) => console.log(line), process.env.BENCH_FANOUT_PROFILE || undefined);
  for (const line of fanoutLines(result)) console.log(line);
  process.exit(0);
}
