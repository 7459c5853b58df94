/**
 * Scale benchmark: many idle agents connected through the mutual-TLS edge, beside Mosquitto with as
 * many idle MQTT clients in the same run, then one job to the connected fleet, then a reconnect storm
 * after a relay SIGKILL.
 *
 *   npm run bench:scale                      (BENCH_SCALE_AGENTS, default 10000)
 *
 * Prints figures, never pass/fail, and writes them to bench/results/scale.json; `runScaleBench()`
 * returns the same object for `npm run bench`'s summary. What it measures and why it is built this
 * way (edge processes, open files, hibernation) is in bench/README.md, "Scale".
 */
import { type ChildProcess, spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { signDevToken } from "../scripts/dev-token.ts";
import { readJwtSecret } from "../scripts/jwt-secret.ts";
import { startProfiler, summarizeProfile } from "./cpu-profile.ts";
import { findMosquitto, freePort, mosquittoVersion, waitForPort, writeMosquittoConfig } from "./mqtt-peer.ts";
import { clientCertFactory } from "./pki.ts";
import { forkRelayChild } from "./relay-child.ts";
import type { RelayReply } from "./relay-process.ts";
import { RestClient } from "./rest.ts";
import { Fleet, perSecond } from "./scale-fleet.ts";
import { descendants, fdsOf, intEnv, killPids, pause, rssOf, waitGone } from "./soak-common.ts";
import { bytes, table } from "./stats.ts";

const BENCH_DIR = import.meta.dirname;
/** The agent's own reconnect policy (agent/agent-options.ts defaults). */
const AGENT_BACKOFF = { baseMs: 1000, capMs: 60_000, stableAfterMs: 60_000 };

export interface ScaleOptions {
  /** Idle agents to connect (and MQTT clients for the peer). Default 10 000. */
  agents?: number;
  /** Edge processes sharing the agents' port. Default 4. */
  edgeProcesses?: number;
  /** Client processes holding the agents. Default one per 2 500 agents, at least 2. */
  clientProcesses?: number;
  /** First dials in flight at once, over all client processes. Default 128. */
  dialConcurrency?: number;
  /** How long the connected fleet is held (heartbeats every 30 s). Default 60 s. */
  holdS?: number;
  /** One job to every host while the fleet is connected (its agents answer at once). Default true. */
  job?: boolean;
  /** Kill the relay and measure the reconnect. Default true. */
  storm?: boolean;
  /** Hosts that get commands queued while they are down. Default min(100, agents / 20). */
  stormSample?: number;
  /** Path of the Mosquitto binary; null skips the peer. Default: found as for `npm run bench`. */
  mosquitto?: string | null;
  /** Writes a V8 CPU profile of the Worker isolate over the job to the fleet here, and prints its top. Default: none. */
  profileFile?: string | undefined;
  log?: (line: string) => void;
}

export interface ProcessMemory {
  name: string;
  pid: number;
  rssBefore: number;
  /** 3 s after the last welcome. */
  rssConnected: number;
  /** At the end of the hold, when idle objects have hibernated (the idle figure). */
  rssAfter: number;
  /** (after − before) / connected, bytes. */
  perConnection: number;
  /** (connected − before) / connected, bytes. */
  perConnectionAtConnect: number;
  fdsBefore: number;
  fdsConnected: number;
  /** Most open files seen while connecting and holding. */
  fdsPeak: number;
}

export interface ConnectFigures {
  requested: number;
  connected: number;
  /** Connected ones still connected at the end of the hold. */
  heldToEnd: number;
  /** Connections that dropped during the hold. */
  droppedDuringHold: number;
  /** First dial → last welcome, seconds. */
  totalS: number;
  /** connected / totalS. */
  ratePerS: number;
  peakPerS: number;
  perSecond: number[];
  memory: ProcessMemory[];
  /** Sum over the relay's (or the broker's) processes, bytes per connection. */
  perConnectionTotal: number;
  failedDials: Record<string, number>;
  /** CPU time per connect (relay only): workerd and the edge processes together, ms. */
  cpuPerConnectMs?: { workerd: number; edges: number };
  /** Set when the first dials were stopped short of `requested` because workerd neared its open-file limit. */
  stoppedAtFdLimit: { workerdFds: number; limit: number } | null;
}

/** One job to every registered host, with the fleet connected; times from the POST. */
export interface JobFigures {
  hosts: number;
  /** Agents connected when the job was posted. */
  online: number;
  acceptMs: number;
  /** Every host queued on its relay (or beyond) or, if its agent is not connected, waiting in the job. */
  allHeldS: number;
  /** Every connected host's command succeeded. */
  allDoneS: number;
  waiting: number;
  succeeded: number;
  /** workerd CPU from the POST until all were done, per host. */
  workerdCpuPerHostMs: number;
}

export interface StormFigures {
  agents: number;
  /** SIGKILL → the relay answering again, seconds. */
  restartS: number;
  /** SIGKILL → every agent welcomed again. */
  allBackS: number;
  /** Relay answering again → every agent welcomed again. */
  allBackAfterRestartS: number;
  peakPerS: number;
  /** Welcomes per second from the SIGKILL on. */
  perSecond: number[];
  commandsQueued: number;
  commandsDelivered: number;
  commandsSucceeded: number;
  lost: number;
}

export interface ScaleResult {
  relay: ConnectFigures;
  job: JobFigures | null;
  storm: StormFigures | null;
  mosquitto: (ConnectFigures & { version: string }) | null;
  fdLimit: number;
  /** Open files of workerd per connected agent (fds after − before, / connected). */
  workerdFdsPerAgent: number;
  edgeFdsPerAgent: number;
  sizes: Required<Omit<ScaleOptions, "log" | "mosquitto" | "profileFile">>;
}

// ---------------------------------------------------------------- the relay in a child process

type Sample = Extract<RelayReply, { type: "sample" }>;

interface RelayHandle {
  proc: ChildProcess;
  url: string;
  /** The Worker's direct socket, where the bench's REST calls go. */
  apiUrl: string | null;
  edgeUrl: string;
  caCertPem: string;
  workerdPids: number[];
  sample(gc: boolean): Promise<Sample>;
  stop(): Promise<void>;
}

async function startRelay(stateDir: string, extra: object): Promise<RelayHandle> {
  const child = await forkRelayChild(stateDir, extra, 120_000, killTree);
  const { url, apiUrl, edgeUrl, caCertPem, workerdPids } = child.ready;
  return { proc: child.proc, url, apiUrl, edgeUrl, caCertPem, workerdPids, sample: child.sample, stop: () => child.stop(30_000) };
}

/** SIGKILL to the relay's process and everything below it (workerd, the edge processes) at once. */
function killTree(proc: ChildProcess): number[] {
  if (!proc.pid) return [];
  const pids = [proc.pid, ...descendants(proc.pid)];
  killPids(pids);
  return pids;
}

/** The soft limit on open files of `pid` ("Max open files" in /proc/<pid>/limits). */
function fdLimitOf(pid: number): number {
  const m = /^Max open files\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/limits`, "utf8"));
  return m ? Number(m[1]) : Number.POSITIVE_INFINITY;
}

async function pool<T, R>(items: T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      for (let i = next++; i < items.length; i = next++) out[i] = await fn(items[i]!);
    }),
  );
  return out;
}

const round = (v: number, d = 1) => Math.round(v * 10 ** d) / 10 ** d;

/** Connect figures from a fleet's welcome times and the memory readings. */
function connectFigures(
  fleet: Fleet,
  requested: number,
  memory: ProcessMemory[],
  stoppedAtFdLimit: ConnectFigures["stoppedAtFdLimit"],
): Omit<ConnectFigures, "heldToEnd" | "droppedDuringHold"> {
  const connected = fleet.online;
  const t0 = fleet.firstDial;
  const last = fleet.ups.length ? Math.max(...fleet.ups) : t0;
  const totalS = (last - t0) / 1000;
  const shape = perSecond(fleet.ups, t0, Math.ceil(totalS) + 1);
  return {
    requested,
    connected,
    totalS: round(totalS, 2),
    ratePerS: totalS > 0 ? Math.round(connected / totalS) : 0,
    peakPerS: Math.max(0, ...shape),
    perSecond: shape,
    memory,
    perConnectionTotal: memory.reduce((s, m) => s + m.perConnectionAtConnect, 0),
    failedDials: { ...fleet.failed },
    stoppedAtFdLimit,
  };
}

// ---------------------------------------------------------------- Mosquitto

async function mosquittoRun(bin: string, o: Required<Omit<ScaleOptions, "log" | "mosquitto" | "profileFile">>, log: (l: string) => void) {
  const dir = await mkdtemp(path.join(os.tmpdir(), "scale-mqtt-"));
  const port = await freePort();
  const conf = await writeMosquittoConfig(dir, port, ["max_queued_messages 0"]);
  const proc = spawn(bin, ["-c", conf], { stdio: ["ignore", "ignore", "inherit"] });
  try {
    await waitForPort(port, proc, 5000);
    const version = mosquittoVersion(bin);
    const pid = proc.pid!;
    const rssBefore = rssOf(pid);
    const fdsBefore = fdsOf(pid);
    let fdsPeak = fdsBefore;
    const fleet = Fleet.start({ kind: "mqtt", port, count: o.agents, keepaliveS: 30 }, o.clientProcesses, o.dialConcurrency);
    const watch = setInterval(() => {
      fdsPeak = Math.max(fdsPeak, fdsOf(pid));
    }, 500);
    try {
      await fleet.until(() => fleet.online >= o.agents, 600_000, `${o.agents} MQTT clients connected`);
      await pause(3000);
      const memory: ProcessMemory[] = [
        {
          name: "mosquitto",
          pid,
          rssBefore,
          rssConnected: rssOf(pid),
          rssAfter: 0,
          perConnection: 0,
          perConnectionAtConnect: 0,
          fdsBefore,
          fdsConnected: fdsOf(pid),
          fdsPeak,
        },
      ];
      memory[0]!.perConnectionAtConnect = Math.round((memory[0]!.rssConnected - rssBefore) / Math.max(1, fleet.online));
      const figures = connectFigures(fleet, o.agents, memory, null);
      log(
        `  mosquitto: ${fleet.online} clients in ${figures.totalS} s (${figures.ratePerS}/s), ${bytes(memory[0]!.perConnectionAtConnect)} per client just connected; holding ${o.holdS} s`,
      );
      const downsBefore = fleet.downs.length;
      await pause(o.holdS * 1000);
      memory[0]!.fdsPeak = Math.max(fdsPeak, fdsOf(pid));
      memory[0]!.rssAfter = rssOf(pid);
      memory[0]!.perConnection = Math.round((memory[0]!.rssAfter - rssBefore) / Math.max(1, fleet.online));
      figures.perConnectionTotal = memory[0]!.perConnection;
      return { ...figures, version, heldToEnd: fleet.online, droppedDuringHold: fleet.downs.length - downsBefore };
    } finally {
      clearInterval(watch);
      await fleet.stop();
    }
  } finally {
    proc.kill("SIGKILL");
    await rm(dir, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------- the relay

export async function runScaleBench(opts: ScaleOptions = {}): Promise<ScaleResult> {
  const log = opts.log ?? ((line: string) => console.log(line));
  const agents = opts.agents ?? 10_000;
  const o: Required<Omit<ScaleOptions, "log" | "mosquitto" | "profileFile">> = {
    agents,
    edgeProcesses: opts.edgeProcesses ?? 4,
    clientProcesses: opts.clientProcesses ?? Math.max(2, Math.ceil(agents / 2500)),
    dialConcurrency: opts.dialConcurrency ?? 128,
    holdS: opts.holdS ?? 60,
    job: opts.job ?? true,
    storm: opts.storm ?? true,
    stormSample: Math.min(opts.stormSample ?? Math.min(100, Math.ceil(agents / 20)), agents),
  };
  const mosquitto = opts.mosquitto === undefined ? findMosquitto() : opts.mosquitto;
  log(
    `scale: ${o.agents} idle agents, ${o.edgeProcesses} edge processes, ${o.clientProcesses} client processes, ${o.dialConcurrency} dials in flight, hold ${o.holdS} s`,
  );

  let mqtt: ScaleResult["mosquitto"] = null;
  if (mosquitto) {
    log(`mosquitto (${mosquitto}), ${o.agents} idle clients …`);
    mqtt = await mosquittoRun(mosquitto, o, log);
  } else log(opts.mosquitto === null ? "SKIP mosquitto peer: not asked for" : "SKIP mosquitto peer: no broker binary found");

  const stateDir = await mkdtemp(path.join(os.tmpdir(), "scale-relay-"));
  let relay: RelayHandle | null = null;
  let fleet: Fleet | null = null;
  try {
    // REST on the Worker's direct socket: operators' calls do not wait in the listen queue behind a storm of agents.
    const inspectorPort = opts.profileFile ? await freePort() : undefined;
    relay = await startRelay(stateDir, { port: 0, edgePort: 0, apiPort: 0, edgeProcesses: o.edgeProcesses, inspectorPort });
    const ports = {
      port: Number(new URL(relay.url).port),
      edgePort: Number(new URL(relay.edgeUrl).port),
      apiPort: Number(new URL(relay.apiUrl!).port),
    };
    const limit = fdLimitOf(relay.workerdPids[0]!);
    const secret = (await readJwtSecret(stateDir))!;
    const admin = await signDevToken({ secret, role: "admin", ttlSeconds: 7200, sub: "bench-admin" });
    const operator = await signDevToken({ secret, role: "operator", ttlSeconds: 7200, sub: "bench" });
    const certs = await clientCertFactory(stateDir);

    // ---- hosts: one certificate each, registered over REST
    const tc = Date.now();
    const issued = [];
    for (let i = 0; i < o.agents; i++) issued.push(await certs.issue(`scale-${i}`));
    let rest = new RestClient(relay.apiUrl!, admin, 32);
    const tr = Date.now();
    const hostIds = await pool(issued, 32, async (c) => {
      const h = await rest.json<{ host_id: string }>("POST", "/api/hosts", { hostname: c.cn, cert_fingerprint_sha256: c.fingerprint }, 201);
      return h.host_id;
    });
    log(`  ${o.agents} certificates in ${round((tr - tc) / 1000)} s, registered in ${round((Date.now() - tr) / 1000)} s`);
    await pause(1000);

    // ---- connect
    const before = await relay.sample(true);
    const t0 = Date.now();
    fleet = Fleet.start(
      {
        kind: "agents",
        url: `${relay.edgeUrl.replace("https:", "wss:")}/agent/connect`,
        caPem: relay.caCertPem,
        keyPem: certs.keyPem,
        agents: issued.map((c, i) => ({ i, cn: c.cn, certPem: c.certPem })),
        backoff: AGENT_BACKOFF,
      },
      o.clientProcesses,
      o.dialConcurrency,
    );
    const peaks = { workerd: before.workerdFds, edges: before.edges.map((e) => e.fds) };
    let stoppedAtFdLimit: ConnectFigures["stoppedAtFdLimit"] = null;
    // workerd holds two descriptors per connection (see bench/README.md); first dials stop short of its limit.
    const reserve = 4 * o.dialConcurrency + 500;
    const activeRelay = relay;
    const watchFds = async () => {
      const s = await activeRelay.sample(false).catch(() => null);
      if (!s) return;
      peaks.workerd = Math.max(peaks.workerd, s.workerdFds);
      s.edges.forEach((e, i) => {
        peaks.edges[i] = Math.max(peaks.edges[i] ?? 0, e.fds);
      });
      if (!stoppedAtFdLimit && s.workerdFds + reserve >= limit) {
        stoppedAtFdLimit = { workerdFds: s.workerdFds, limit };
        fleet?.halt();
        log(`  workerd holds ${s.workerdFds} open files (limit ${limit}): no more first dials`);
      }
    };
    const watch = setInterval(() => void watchFds(), 250);
    const progress = setInterval(() => log(`  … ${fleet?.online} connected`), 10_000);
    try {
      await fleet.until(
        () => fleet!.online >= o.agents || (stoppedAtFdLimit !== null && Date.now() - t0 > 5000 && quiet(fleet!, 3000)),
        900_000,
        `${o.agents} agents welcomed`,
      );
    } finally {
      clearInterval(progress);
    }
    await pause(3000);
    const after = await relay.sample(true);
    const connected = fleet.online;
    const per = (a: number, b: number) => Math.round((b - a) / Math.max(1, connected));
    const memory: ProcessMemory[] = [
      {
        name: "workerd",
        pid: relay.workerdPids[0]!,
        rssBefore: before.workerdRss,
        rssConnected: after.workerdRss,
        rssAfter: 0,
        perConnection: 0,
        perConnectionAtConnect: per(before.workerdRss, after.workerdRss),
        fdsBefore: before.workerdFds,
        fdsConnected: after.workerdFds,
        fdsPeak: peaks.workerd,
      },
      ...after.edges.map((e, i) => ({
        name: `edge ${i + 1}`,
        pid: e.pid,
        rssBefore: before.edges[i]!.rss,
        rssConnected: e.rss,
        rssAfter: 0,
        perConnection: 0,
        perConnectionAtConnect: per(before.edges[i]!.rss, e.rss),
        fdsBefore: before.edges[i]!.fds,
        fdsConnected: e.fds,
        fdsPeak: peaks.edges[i] ?? e.fds,
      })),
    ];
    const figures = { ...connectFigures(fleet, o.agents, memory, stoppedAtFdLimit), cpuPerConnectMs: cpuPer(before, after, connected) };
    log(
      `  relay: ${connected} agents in ${figures.totalS} s (${figures.ratePerS}/s, peak ${figures.peakPerS}/s), ${bytes(figures.perConnectionTotal)} per agent just connected; holding ${o.holdS} s`,
    );
    const downsBefore = fleet.downs.length;
    await pause(o.holdS * 1000);
    clearInterval(watch);
    const held = await relay.sample(true);
    memory[0]!.rssAfter = held.workerdRss;
    memory[0]!.perConnection = per(before.workerdRss, held.workerdRss);
    held.edges.forEach((e, i) => {
      const m = memory[i + 1]!;
      m.rssAfter = e.rss;
      m.perConnection = per(before.edges[i]!.rss, e.rss);
    });
    figures.perConnectionTotal = memory.reduce((sum, m) => sum + m.perConnection, 0);
    const relayFigures: ConnectFigures = { ...figures, heldToEnd: fleet.online, droppedDuringHold: fleet.downs.length - downsBefore };
    for (const m of memory) m.fdsPeak = m.name === "workerd" ? peaks.workerd : (peaks.edges[memory.indexOf(m) - 1] ?? m.fdsPeak);

    const edgeAfter = after.edges.reduce((s, e) => s + e.fds, 0);
    const edgeBefore = before.edges.reduce((s, e) => s + e.fds, 0);
    const result: ScaleResult = {
      relay: relayFigures,
      job: null,
      storm: null,
      mosquitto: mqtt,
      fdLimit: limit,
      workerdFdsPerAgent: round((after.workerdFds - before.workerdFds) / Math.max(1, connected), 2),
      edgeFdsPerAgent: round((edgeAfter - edgeBefore) / Math.max(1, connected), 2),
      sizes: o,
    };
    // Printed before the storm, so a storm that does not end still leaves these figures.
    reportConnections(result, log);

    if (o.job && stoppedAtFdLimit !== null) {
      // Each relay the job wakes opens its SQLite database (3 files) for as long as it stays awake; past
      // the limit workerd fails every open and, at 7,249 agents, crashed ("Promise callback destroyed itself").
      log("job to the fleet: skipped, workerd is at its open-files limit (every relay the job wakes opens 3 more)");
    } else if (o.job) {
      const profile = inspectorPort !== undefined && opts.profileFile ? { port: inspectorPort, file: opts.profileFile } : undefined;
      result.job = await jobToFleet(relay, rest, fleet, hostIds.length, log, profile);
      reportJob(result.job, log);
    }

    if (o.storm) {
      rest.close();
      rest = new RestClient(relay.apiUrl!, operator, 32);
      const { relay: restarted, ...figures } = await reconnectStorm({
        relay,
        fleet,
        rest,
        stateDir,
        ports,
        edgeProcesses: o.edgeProcesses,
        hostIds,
        sample: o.stormSample,
        log,
      });
      relay = restarted;
      result.storm = figures;
      reportStorm(figures, log);
    }
    rest.close();
    return result;
  } finally {
    await fleet?.stop();
    await relay?.stop().catch(() => {});
    await rm(stateDir, { recursive: true, force: true }).catch(() => {});
  }
}

function cpuPer(a: Sample, b: Sample, n: number): { workerd: number; edges: number } {
  const edges = b.edges.reduce((s, e) => s + e.cpuMs, 0) - a.edges.reduce((s, e) => s + e.cpuMs, 0);
  return { workerd: round((b.workerdCpuMs - a.workerdCpuMs) / Math.max(1, n), 2), edges: round(edges / Math.max(1, n), 2) };
}

/** No welcome for `ms`. */
function quiet(fleet: Fleet, ms: number): boolean {
  const last = fleet.ups.length ? fleet.ups[fleet.ups.length - 1]! : 0;
  return Date.now() - last > ms;
}

interface StormInput {
  relay: RelayHandle;
  fleet: Fleet;
  rest: RestClient;
  stateDir: string;
  ports: { port: number; edgePort: number; apiPort: number };
  edgeProcesses: number;
  hostIds: string[];
  sample: number;
  log: (line: string) => void;
}

/**
 * Queues one command. While the relay takes in a storm a call may go unanswered for longer than the
 * client's 30 s timeout; it is then sent again under the same Idempotency-Key, so a retry of a call
 * that did land queues nothing twice. Gives up after `patienceMs` (default 5 minutes).
 */
async function postCommand(rest: RestClient, hostId: string, patienceMs = 300_000): Promise<string> {
  const key = crypto.randomUUID();
  const path = `/api/hosts/${hostId}/commands`;
  const deadline = Date.now() + patienceMs;
  for (;;) {
    const reply = await rest
      .request("POST", path, { command_type: "system_info" }, undefined, { "idempotency-key": key })
      .catch((err: Error) => ({ status: 0, body: err.message }));
    if (reply.status === 202) return (JSON.parse(reply.body) as { message_id: string }).message_id;
    // Only an unanswered call or an overloaded relay is worth another try; anything else is a bench bug.
    const retriable = reply.status === 0 || reply.status === 503 || reply.status === 429;
    if (!retriable || Date.now() > deadline) throw new Error(`POST ${path}: HTTP ${reply.status}: ${reply.body.slice(0, 500)}`);
    await pause(1000);
  }
}

/**
 * With the fleet connected: a sample of hosts goes offline and gets one command each; the relay (its
 * process, workerd, the edges) is SIGKILLed and started again on the same state and ports; the sample
 * gets a second command each as soon as the relay answers, then comes back. Every agent redials on its
 * own backoff. Done when every agent is welcomed again and every command has succeeded.
 */
async function reconnectStorm(s: StormInput): Promise<StormFigures & { relay: RelayHandle }> {
  const { fleet, log } = s;
  const online = Array.from({ length: fleet.size }, (_, i) => i).filter((i) => fleet.isOnline(i));
  const step = Math.max(1, Math.floor(online.length / s.sample));
  const sample = online.filter((_, k) => k % step === 0).slice(0, s.sample);
  log(`reconnect storm: ${online.length} agents; ${sample.length} hosts offline with commands queued …`);
  fleet.pause(sample);
  await fleet.until(() => sample.every((i) => !fleet.isOnline(i)), 60_000, "the sample offline");
  const commands: { hostId: string; id: string }[] = [];
  for (const i of sample) commands.push({ hostId: s.hostIds[i]!, id: await postCommand(s.rest, s.hostIds[i]!) });

  const tKill = Date.now();
  const killed = killTree(s.relay.proc);
  await waitGone(killed, 10_000, "the killed relay");
  let relay: RelayHandle | null = null;
  while (!relay) {
    relay = await startRelay(s.stateDir, { ...s.ports, edgeProcesses: s.edgeProcesses }).catch(async (err: Error & { code?: string }) => {
      if (err.code !== "EADDRINUSE" || Date.now() - tKill > 60_000) throw err;
      await pause(200);
      return null;
    });
  }
  const tReady = Date.now();
  log(`  relay killed and started again in ${round((tReady - tKill) / 1000, 2)} s`);
  for (const i of sample) commands.push({ hostId: s.hostIds[i]!, id: await postCommand(s.rest, s.hostIds[i]!) });
  fleet.resume(sample);

  const progress = setInterval(() => log(`  … ${fleet.online} back online`), 10_000);
  try {
    await fleet.until(
      () => {
        if (fleet.online < online.length) return false;
        return commands.every((c) => fleet.commands.has(c.id));
      },
      600_000,
      "every agent back and every command delivered",
    );
  } finally {
    clearInterval(progress);
  }
  // The last welcome after the kill is when the last agent came back.
  const lastUp = Math.max(...fleet.ups.filter((u) => u > tKill));
  const shape = perSecond(
    fleet.ups.filter((u) => u > tKill),
    tKill,
    Math.ceil((lastUp - tKill) / 1000) + 1,
  );
  // Every command must reach `succeeded` (the agent's response stored), bounded.
  const states = new Map<string, string>();
  const deadline = Date.now() + 120_000;
  while (Date.now() < deadline) {
    await pool(
      commands.filter((c) => states.get(c.id) !== "succeeded"),
      16,
      async (c) => {
        const r = await s.rest.request("GET", `/api/hosts/${c.hostId}/commands/${c.id}`);
        if (r.status === 200) states.set(c.id, (JSON.parse(r.body) as { state: string }).state);
      },
    );
    if (commands.every((c) => states.get(c.id) === "succeeded")) break;
    await pause(500);
  }
  const succeeded = commands.filter((c) => states.get(c.id) === "succeeded").length;
  return {
    relay,
    agents: online.length,
    restartS: round((tReady - tKill) / 1000, 2),
    allBackS: round((lastUp - tKill) / 1000, 2),
    allBackAfterRestartS: round((lastUp - tReady) / 1000, 2),
    peakPerS: Math.max(0, ...shape),
    perSecond: shape,
    commandsQueued: commands.length,
    commandsDelivered: commands.filter((c) => fleet.commands.has(c.id)).length,
    commandsSucceeded: succeeded,
    lost: commands.length - succeeded,
  };
}

// ---------------------------------------------------------------- output

function reportConnections(r: ScaleResult, log: (line: string) => void): void {
  const rows: string[][] = [];
  const add = (name: string, f: ConnectFigures | null) => {
    if (!f) return;
    for (const m of f.memory) {
      rows.push([
        `${name}: ${m.name}`,
        bytes(m.rssBefore),
        bytes(m.rssConnected),
        bytes(m.rssAfter),
        bytes(m.perConnectionAtConnect),
        bytes(m.perConnection),
        String(m.fdsBefore),
        String(m.fdsConnected),
        String(m.fdsPeak),
      ]);
    }
  };
  add("relay", r.relay);
  add("mosquitto", r.mosquitto);
  log("");
  log(
    `Memory and open files (RSS before the connects, 3 s after the last welcome, at the end of the hold; per connection = (RSS − before) / connected; open-file limit ${r.fdLimit} per process)`,
  );
  log(
    table(
      [
        "process",
        "RSS before",
        "connected",
        "end of hold",
        "per conn. connected",
        "per conn. idle",
        "fds before",
        "fds connected",
        "fds peak",
      ],
      rows,
    ),
  );
  log("");
  const conn = (f: ConnectFigures) => [
    `${f.connected} / ${f.requested}`,
    `${f.totalS} s`,
    `${f.ratePerS}/s`,
    `${f.peakPerS}/s`,
    bytes(f.perConnectionTotal),
    `${f.heldToEnd} (${f.droppedDuringHold} dropped)`,
  ];
  const crows = [["relay (mTLS edge + workerd)", ...conn(r.relay)]];
  if (r.mosquitto) crows.push([`mosquitto ${r.mosquitto.version}`, ...conn(r.mosquitto)]);
  log("Idle connections");
  log(table(["", "connected", "total time", "connect rate", "peak", "memory / idle conn", "held to the end"], crows));
  if (r.mosquitto) {
    log(
      `  relay / mosquitto: memory per connection ${(r.relay.perConnectionTotal / Math.max(1, r.mosquitto.perConnectionTotal)).toFixed(1)}×, connect rate ${(r.relay.ratePerS / Math.max(1, r.mosquitto.ratePerS)).toFixed(2)}×`,
    );
  }
  log(`  open files per agent: workerd ${r.workerdFdsPerAgent}, edges ${r.edgeFdsPerAgent}`);
  if (r.relay.cpuPerConnectMs)
    log(`  CPU per connect: workerd ${r.relay.cpuPerConnectMs.workerd} ms, edges ${r.relay.cpuPerConnectMs.edges} ms`);
  if (r.relay.stoppedAtFdLimit) {
    log(
      `  LIMIT: first dials stopped at ${r.relay.connected} agents, workerd holding ${r.relay.stoppedAtFdLimit.workerdFds} of ${r.relay.stoppedAtFdLimit.limit} open files`,
    );
  }
  if (Object.keys(r.relay.failedDials).length) log(`  failed first dials (retried): ${JSON.stringify(r.relay.failedDials)}`);
  log(
    `  targets: ≤ 64 KiB per idle agent at 10,000: ${bytes(r.relay.perConnectionTotal)} at ${r.relay.connected} — ${r.relay.perConnectionTotal <= 65_536 && r.relay.connected >= 10_000 ? "met" : "MISSED"}; connect rate ≥ 1,000/s: ${r.relay.ratePerS}/s — ${r.relay.ratePerS >= 1000 ? "met" : "MISSED"}`,
  );
}

/**
 * One job to every registered host (`target: {"all": true}`, all at once). Connected hosts get the
 * command through their relays and answer at once; hosts whose agent never connected (past the open
 * files limit) wait in the job. Done when every connected host succeeded and the rest wait.
 */
async function jobToFleet(
  relay: RelayHandle,
  rest: RestClient,
  fleet: Fleet,
  hosts: number,
  log: (line: string) => void,
  profile?: { port: number; file: string },
): Promise<JobFigures> {
  const online = fleet.online;
  log(`job to the fleet: ${hosts} hosts, ${online} of them connected …`);
  const profiler = profile ? await startProfiler(profile.port) : null;
  const before = await relay.sample(false);
  const t0 = Date.now();
  const job = await rest.json<{ job_id: string }>(
    "POST",
    "/api/jobs",
    { command_type: "system_info", target: { all: true }, expires_in: 3600 },
    202,
  );
  const acceptMs = Date.now() - t0;
  const beyond = [
    "queued",
    "delivered",
    "running",
    "succeeded",
    "failed",
    "timed_out",
    "cancelling",
    "cancelled",
    "dead_lettered",
    "expired",
  ];
  let allHeldS = 0;
  let counts: Record<string, number> = {};
  const deadline = t0 + 600_000;
  for (;;) {
    counts = (await rest.json<{ counts: Record<string, number> }>("GET", `/api/jobs/${job.job_id}`, undefined, 200)).counts;
    const held = beyond.reduce((n, s) => n + (counts[s] ?? 0), counts.waiting ?? 0);
    if (allHeldS === 0 && held >= hosts) allHeldS = (Date.now() - t0) / 1000;
    if ((counts.succeeded ?? 0) + (counts.waiting ?? 0) >= hosts) break;
    if (Date.now() > deadline) throw new Error(`job to the fleet not done after 600 s: ${JSON.stringify(counts)}`);
    await pause(100);
  }
  const allDoneS = (Date.now() - t0) / 1000;
  const after = await relay.sample(false);
  if (profiler && profile) {
    log(`  CPU profile written to ${profile.file}`);
    for (const line of summarizeProfile(await profiler.stop(profile.file), 40)) log(line);
  }
  return {
    hosts,
    online,
    acceptMs,
    allHeldS: round(allHeldS, 2),
    allDoneS: round(allDoneS, 2),
    waiting: counts.waiting ?? 0,
    succeeded: counts.succeeded ?? 0,
    workerdCpuPerHostMs: round((after.workerdCpuMs - before.workerdCpuMs) / Math.max(1, hosts), 2),
  };
}

function reportJob(j: JobFigures, log: (line: string) => void): void {
  log(`job to ${j.hosts} hosts (${j.online} connected): accepted in ${j.acceptMs} ms`);
  log(`  every host queued or waiting after ${j.allHeldS} s; every connected host succeeded after ${j.allDoneS} s`);
  log(`  ${j.succeeded} succeeded, ${j.waiting} waiting (not connected); workerd CPU ${j.workerdCpuPerHostMs} ms per host`);
}

function reportStorm(st: StormFigures, log: (line: string) => void): void {
  log("");
  log(`Reconnect storm (${st.agents} agents, relay SIGKILLed and restarted on the same state and ports)`);
  log(
    `  restart ${st.restartS} s; every agent back ${st.allBackS} s after the kill (${st.allBackAfterRestartS} s after the restart); peak ${st.peakPerS} welcomes/s`,
  );
  log(`  welcomes per second from the kill: ${st.perSecond.join(" ")}`);
  log(
    `  commands queued to offline hosts (before the kill and right after the restart): ${st.commandsQueued}, delivered ${st.commandsDelivered}, succeeded ${st.commandsSucceeded}, lost ${st.lost}`,
  );
}

// ---------------------------------------------------------------- CLI

if (import.meta.main) {
  const mosq = process.env.BENCH_SCALE_MOSQUITTO;
  const result = await runScaleBench({
    agents: intEnv("BENCH_SCALE_AGENTS", 10_000, 1),
    edgeProcesses: intEnv("BENCH_SCALE_EDGES", 4, 1),
    ...(process.env.BENCH_SCALE_CLIENTS ? { clientProcesses: intEnv("BENCH_SCALE_CLIENTS", 2, 1) } : {}),
    dialConcurrency: intEnv("BENCH_SCALE_DIALS", 128, 1),
    holdS: intEnv("BENCH_SCALE_HOLD_S", 60, 0),
    job: process.env.BENCH_SCALE_JOB !== "0",
    profileFile: process.env.BENCH_SCALE_PROFILE || undefined,
    storm: process.env.BENCH_SCALE_STORM !== "0",
    ...(process.env.BENCH_SCALE_STORM_SAMPLE ? { stormSample: intEnv("BENCH_SCALE_STORM_SAMPLE", 100, 1) } : {}),
    ...(mosq === "0" ? { mosquitto: null } : {}),
  });
  await mkdir(path.join(BENCH_DIR, "results"), { recursive: true });
  await writeFile(path.join(BENCH_DIR, "results", "scale.json"), `${JSON.stringify(result, null, 2)}\n`);
  process.exit(result.storm && result.storm.lost > 0 ? 1 : 0);
}
