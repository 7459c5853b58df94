/**
 * Our half of the fault soak: commands through the real local stack — workerd (Worker + HostRelay
 * Durable Objects, via Miniflare) and the TLS edge, in a child process (bench/relay-process.ts) — to
 * real agents (`agent/cli.ts run`, child processes with their SQLite journals), while faults are
 * injected at seeded random points:
 *
 * - the relay SIGKILLed (the edge's Node process, workerd and anything else below it, all at once,
 *   no graceful stop) and started again on the same state directory and ports;
 * - an agent SIGKILLed and started again on the same state directory;
 * - the chaos proxy (test/helpers/chaos-proxy.ts), through which every agent dials the edge, cutting
 *   every agent connection (FIN or RST, mid-record) for a spell of 1–4 s.
 *
 * The operator POSTs `system_info` commands with an `Idempotency-Key`, retrying through relay outages,
 * and keeps at most `maxOpen` accepted commands unfinished. Afterwards: a bounded drain, every command's
 * state from REST, every execution from the agents' journals.
 */
import { type ChildProcess, fork, spawn } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { DatabaseSync } from "node:sqlite";
import { enroll, JOURNAL_FILE, openJournal, UNKNOWN_OUTCOME_REASON } from "../agent/index.ts";
import { signDevToken } from "../scripts/dev-token.ts";
import { readJwtSecret } from "../scripts/jwt-secret.ts";
import { type ChaosProxy, type ChaosStats, startChaosProxy } from "../test/helpers/chaos-proxy.ts";
import type { RelayReply } from "./relay-process.ts";
import { RestClient } from "./rest.ts";
import {
  between,
  descendants,
  type Fault,
  type FaultCounts,
  faultSchedule,
  fmt,
  killPids,
  Notifier,
  pause,
  prng,
  waitGone,
} from "./soak-common.ts";

const BENCH_DIR = import.meta.dirname;
const REPO_ROOT = path.resolve(BENCH_DIR, "..");
const AGENT_CLI = path.join(REPO_ROOT, "agent", "cli.ts");
const NODE_FLAGS = ["--experimental-strip-types", "--experimental-sqlite", "--no-warnings=ExperimentalWarning"];
const TERMINAL = new Set(["succeeded", "failed", "timed_out", "expired", "cancelled", "dead_lettered"]);

export interface RelaySoakOptions {
  commands: number;
  agents: number;
  /** REST callers in flight. */
  concurrency: number;
  /** Accepted commands not yet final, at most (the operator waits below it). */
  maxOpen: number;
  seed: number;
  faults: FaultCounts;
  /** Bound of the drain after the last command was accepted. */
  drainMs: number;
  /** Bound of any single wait in the run (backlog, fault point). */
  stallMs: number;
  progressEveryMs: number;
  log(line: string): void;
  /** Cleanups registered here run even when the run is aborted from outside. */
  cleanups: (() => Promise<unknown> | unknown)[];
}

export interface RelaySoakResult {
  system: "fleet-relay";
  seed: number;
  commands: number;
  agents: number;
  accepted: number;
  /** POSTs given up after their retry budget (never seen accepted). */
  abandoned: number;
  postRetries: number;
  /** Accepted and, after the drain, without the agent's answer (not final, or final without a response). */
  lost: number;
  lostByState: Record<string, number>;
  /** Executions beyond the first of one message_id, summed over all agents' journals. */
  duplicated: number;
  /** Commands the relay holds that the operator never had accepted (a retried POST queued twice). */
  unexpectedCommands: number;
  /** Journaled executions of ids the operator never sent. */
  unexpectedExecutions: number;
  /** Answered `failure` "agent restarted during execution; outcome unknown". */
  outcomeUnknown: number;
  states: Record<string, number>;
  /** Succeeded at the relay but no execution in the host's journal (must be 0). */
  succeededWithoutExecution: number;
  /** Responses still waiting in an agent's outbox after the drain (which waits for them) and a graceful stop. */
  unackedResponses: number;
  unexpectedAgentExits: number;
  faults: {
    serverKills: number;
    agentKills: number;
    cutSpells: number;
    chaos: ChaosStats;
    relayRestartMs: number[];
    relayStartFailures: string[];
  };
  drained: boolean;
  sendS: number;
  drainS: number;
  totalS: number;
  commandsPerS: number;
}

interface RelayChild {
  proc: ChildProcess;
  url: string;
  edgeUrl: string;
  caCertPath: string;
}

/**
 * Forks the relay process; on a port still held by the one just killed, tries again (bounded). Any
 * other failure to start is reported through `onFailure` and tried again up to 4 more times, 2 s
 * apart (a start that keeps failing — say, state the SIGKILL left unreadable — still ends the run).
 */
async function startRelay(
  stateDir: string,
  ports: { port: number; edgePort: number } | null,
  cleanups: RelaySoakOptions["cleanups"],
  onFailure: (err: Error) => void = () => {},
): Promise<RelayChild> {
  const deadline = Date.now() + 60_000;
  let failures = 0;
  for (;;) {
    try {
      return await forkRelay(stateDir, ports, cleanups);
    } catch (err) {
      if ((err as { code?: string }).code === "EADDRINUSE" && Date.now() < deadline) {
        await pause(100);
        continue;
      }
      onFailure(err as Error);
      if (++failures >= 5) throw err;
      await pause(2000);
    }
  }
}

function forkRelay(
  stateDir: string,
  ports: { port: number; edgePort: number } | null,
  cleanups: RelaySoakOptions["cleanups"],
): Promise<RelayChild> {
  const proc = fork(path.join(BENCH_DIR, "relay-process.ts"), [stateDir, JSON.stringify(ports ?? {})], {
    execArgv: ["--experimental-strip-types", "--no-warnings=ExperimentalWarning"],
    stdio: ["ignore", "inherit", "inherit", "ipc"],
    cwd: REPO_ROOT,
  });
  // Whatever happens to the run, nothing of this relay stays behind.
  cleanups.push(() => killTree(proc));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      killTree(proc);
      reject(new Error("the relay did not start within 60 s"));
    }, 60_000);
    proc.once("exit", (code, signal) => {
      clearTimeout(timer);
      reject(Object.assign(new Error(`the relay process exited (${code ?? signal}) before it was ready`), { code: "EXITED" }));
    });
    proc.on("message", (m: RelayReply) => {
      if (m.type === "ready") {
        clearTimeout(timer);
        proc.removeAllListeners("exit");
        resolve({ proc, url: m.url, edgeUrl: m.edgeUrl, caCertPath: m.caCertPath });
      } else if (m.type === "error") {
        clearTimeout(timer);
        proc.removeAllListeners("exit");
        killTree(proc);
        reject(Object.assign(new Error(`the relay failed to start: ${m.message}`), { code: m.code }));
      }
    });
  });
}

/** SIGKILL to the process and everything below it (workerd, esbuild's service), at once. */
function killTree(proc: ChildProcess): number[] {
  if (proc.pid === undefined || proc.exitCode !== null || proc.signalCode !== null) return [];
  const pids = [proc.pid, ...descendants(proc.pid)];
  killPids(pids);
  return pids;
}

/** One agent: its state directory and host, and the `fleet-agent run` child currently serving it. */
class SoakAgent {
  readonly index: number;
  readonly dir: string;
  readonly hostId: string;
  readonly relayUrl: string;
  child: ChildProcess | null = null;
  #exited: Promise<void> = Promise.resolve();
  #expectExit = false;
  #stderrTail = "";
  unexpectedExits: string[] = [];
  #onUnexpected: () => void;

  constructor(index: number, dir: string, hostId: string, relayUrl: string, onUnexpected: () => void) {
    this.index = index;
    this.dir = dir;
    this.hostId = hostId;
    this.relayUrl = relayUrl;
    this.#onUnexpected = onUnexpected;
  }

  start(): void {
    this.#expectExit = false;
    const child = spawn(
      process.execPath,
      [
        ...NODE_FLAGS,
        AGENT_CLI,
        "run",
        "--state-dir",
        this.dir,
        "--relay",
        this.relayUrl,
        "--reconnect-base",
        "50ms",
        "--reconnect-cap",
        "1s",
        "--stable-after",
        "10s",
        "--log-level",
        "warn",
      ],
      { stdio: ["ignore", "ignore", "pipe"], cwd: REPO_ROOT },
    );
    this.child = child;
    child.stderr!.on("data", (d: Buffer) => {
      this.#stderrTail = (this.#stderrTail + d.toString()).slice(-8192);
    });
    this.#exited = new Promise((resolve) =>
      child.once("close", (code, signal) => {
        if (this.child === child) this.child = null;
        if (!this.#expectExit) {
          // An agent that dies by itself is a finding: recorded, reported, and started again (bounded).
          this.unexpectedExits.push(`agent ${this.index} exited by itself (${code ?? signal}); stderr: ${this.#stderrTail.slice(-2000)}`);
          if (this.unexpectedExits.length <= 10) {
            this.#onUnexpected();
            this.start();
          }
        }
        resolve();
      }),
    );
  }

  async #waitExit(timeoutMs: number): Promise<boolean> {
    let timer: NodeJS.Timeout | undefined;
    const ok = await Promise.race([
      this.#exited.then(() => true),
      new Promise<boolean>((r) => (timer = setTimeout(() => r(false), timeoutMs))),
    ]);
    clearTimeout(timer);
    return ok;
  }

  async kill(): Promise<void> {
    if (!this.child) return;
    this.#expectExit = true;
    this.child.kill("SIGKILL");
    if (!(await this.#waitExit(10_000))) throw new Error(`agent ${this.index} still running 10 s after SIGKILL`);
  }

  /** SIGTERM (the agent finishes, flushes and exits 0); SIGKILL after 40 s. Returns the exit code. */
  async stop(): Promise<number | null> {
    const child = this.child;
    if (!child) return null;
    this.#expectExit = true;
    child.kill("SIGTERM");
    if (!(await this.#waitExit(40_000))) {
      child.kill("SIGKILL");
      await this.#waitExit(10_000);
      return -1;
    }
    return child.exitCode;
  }
}

export async function runRelaySoak(o: RelaySoakOptions): Promise<RelaySoakResult> {
  const random = prng(o.seed);
  const schedule: Fault[] = faultSchedule(random, o.commands, o.faults);
  const tmp = await mkdtemp(path.join(os.tmpdir(), "fleet-soak-"));
  o.cleanups.push(() => rm(tmp, { recursive: true, force: true }));
  const stateDir = path.join(tmp, "relay");

  // First start on ephemeral ports; every restart reuses them (agents and the proxy keep their addresses).
  let relay = await startRelay(stateDir, null, o.cleanups);
  const ports = { port: Number(new URL(relay.url).port), edgePort: Number(new URL(relay.edgeUrl).port) };
  o.log(`  relay: REST ${relay.url}, edge ${relay.edgeUrl}, state in ${stateDir}`);
  const secret = (await readJwtSecret(stateDir))!;
  const ttlSeconds = 6 * 3600;
  const admin = await signDevToken({ secret, role: "admin", ttlSeconds, sub: "soak-admin" });
  const operator = await signDevToken({ secret, role: "operator", ttlSeconds, sub: "soak" });
  const rest = new RestClient(relay.url, operator, o.concurrency + o.agents + 8);
  o.cleanups.push(() => rest.close());

  const proxy: ChaosProxy = await startChaosProxy({
    target: { host: "127.0.0.1", port: ports.edgePort },
    // The same shape as the e2e fault test: a connection dies after 50–400 ms or 32 KiB–1 MiB.
    minLifeMs: 50,
    maxLifeMs: 400,
    minBytes: 32 * 1024,
    maxBytes: 1024 * 1024,
    cutForMs: 0,
    seed: o.seed,
  });
  o.cleanups.push(() => proxy.close());

  let unexpectedAgentExits = 0;
  const agents: SoakAgent[] = [];
  for (let i = 0; i < o.agents; i++) {
    const dir = path.join(tmp, `agent-${i}`);
    const { token } = await rest.json<{ token: string }>("POST", "/api/enrollment-tokens", { ttl_seconds: 600 }, 201, admin);
    const { hostId } = await enroll({ relay: relay.edgeUrl, token, stateDir: dir, caFile: relay.caCertPath, hostname: `soak-${i}` });
    const agent = new SoakAgent(i, dir, hostId, proxy.url, () => unexpectedAgentExits++);
    agents.push(agent);
    agent.start();
    o.cleanups.push(() => agent.kill().catch(() => {}));
  }

  // --- state shared by the operator, the monitor and the fault injector ---
  const changed = new Notifier();
  const acceptedIds: (string | null)[] = new Array(o.commands).fill(null);
  const hostOf = (i: number) => agents[i % agents.length]!;
  let accepted = 0;
  let abandoned = 0;
  let postRetries = 0;
  let next = 0;
  let sending = true;
  let relayUp = true;
  let failure: Error | null = null;
  // Open (accepted, not final) commands per host, from each host's queue_depth; plus what was accepted
  // since the poll that produced the figure began.
  const depth = new Map<string, number>();
  let acceptedAtPoll = 0;
  let pollSeq = 0;
  let lastFullPoll = -1;
  const openEstimate = () => [...depth.values()].reduce((s, n) => s + n, 0) + (accepted - acceptedAtPoll);

  // The monitor: polls every host's queue_depth (GET /api/hosts/{id}), bounded by `running`.
  let monitoring = true;
  const monitor = (async () => {
    while (monitoring) {
      const seq = ++pollSeq;
      const before = accepted;
      const replies = await Promise.all(
        agents.map((a) =>
          rest
            .request("GET", `/api/hosts/${a.hostId}`)
            .then((r) => (r.status === 200 ? (JSON.parse(r.body) as { queue_depth: number }).queue_depth : null))
            .catch(() => null),
        ),
      );
      if (replies.every((n) => n !== null)) {
        agents.forEach((a, i) => depth.set(a.hostId, replies[i]!));
        acceptedAtPoll = before;
        lastFullPoll = seq;
      }
      changed.notify();
      if (!monitoring) break;
      await pause(replies.every((n) => n !== null) ? 200 : 100);
    }
  })();

  const t0 = performance.now();
  const elapsed = () => ((performance.now() - t0) / 1000).toFixed(0);

  // --- the operator ---
  async function post(i: number): Promise<string | null> {
    const hostId = hostOf(i).hostId;
    const key = `soak-${o.seed}-${i}`;
    const deadline = Date.now() + 180_000;
    let delay = 50;
    for (;;) {
      try {
        const r = await rest.request("POST", `/api/hosts/${hostId}/commands`, { command_type: "system_info" }, operator, {
          "idempotency-key": key,
        });
        if (r.status === 202) return (JSON.parse(r.body) as { message_id: string }).message_id;
        if (r.status < 500 && r.status !== 429) throw new Error(`POST command: HTTP ${r.status}: ${r.body.slice(0, 300)}`);
      } catch (err) {
        if ((err as Error).message.startsWith("POST command: HTTP")) throw err;
        // The relay is down or was killed mid-request: the key makes the retry safe.
      }
      postRetries++;
      if (Date.now() > deadline || failure) return null;
      await pause(Math.floor(Math.random() * delay)); // retry backoff with full jitter
      delay = Math.min(delay * 2, 1000);
    }
  }
  async function sender(): Promise<void> {
    while (next < o.commands && !failure) {
      await changed.until(() => openEstimate() < o.maxOpen || failure !== null, o.stallMs, `fewer than ${o.maxOpen} open commands`);
      // Never ahead of the fault schedule: every fault due by this point has been started.
      await changed.until(
        () => injected >= schedule.length || schedule[injected]!.at > accepted || failure !== null,
        o.stallMs,
        "the fault due",
      );
      if (failure || next >= o.commands) return;
      const i = next++;
      const id = await post(i);
      if (id === null) abandoned++;
      else {
        acceptedIds[i] = id;
        accepted++;
      }
      changed.notify();
    }
  }

  // --- the fault injector: one fault at a time, each at its point of the accepted count ---
  const counters = { serverKills: 0, agentKills: 0, cutSpells: 0, relayRestartMs: [] as number[], relayStartFailures: [] as string[] };
  async function inject(f: Fault): Promise<void> {
    if (f.kind === "server") {
      const downMs = between(random, 0, 2000);
      const killed = killTree(relay.proc);
      relayUp = false;
      await waitGone(killed, 10_000, "the killed relay");
      counters.serverKills++;
      o.log(
        `  [${elapsed()} s] relay SIGKILL #${counters.serverKills} (pids ${killed.join(", ")}) at ${fmt(accepted)} accepted; down ${downMs} ms`,
      );
      await pause(downMs);
      const t = performance.now();
      relay = await startRelay(stateDir, ports, o.cleanups, (err) => {
        counters.relayStartFailures.push(err.message.split("\n").slice(0, 2).join(" / "));
        o.log(`  [${elapsed()} s] relay start FAILED (tried again): ${err.message.split("\n").slice(0, 3).join(" / ")}`);
      });
      relayUp = true;
      counters.relayRestartMs.push(Math.round(performance.now() - t));
    } else if (f.kind === "agent") {
      const agent = agents[between(random, 0, agents.length - 1)]!;
      const downMs = between(random, 0, 1000);
      await agent.kill();
      counters.agentKills++;
      await pause(downMs);
      agent.start();
    } else {
      counters.cutSpells++;
      proxy.cutFor(between(random, 1000, 4000));
    }
  }
  // Faults started so far; the operator waits for the one due before it sends more.
  let injected = 0;
  const injector = (async () => {
    for (const f of schedule) {
      await changed.until(() => accepted >= f.at || !sending || failure !== null, o.stallMs, `fault point ${f.at}`);
      if (!sending || failure) break;
      injected++;
      changed.notify();
      await inject(f);
    }
  })().catch((err: Error) => {
    failure ??= err;
    changed.notify();
  });

  const progress = setInterval(() => {
    const c = proxy.stats();
    o.log(
      `  [${elapsed()} s] accepted ${fmt(accepted)}/${fmt(o.commands)}, open ≈${fmt(openEstimate())}, relay ${relayUp ? "up" : "down"}, ` +
        `faults: relay ${counters.serverKills}, agent ${counters.agentKills}, cut spells ${counters.cutSpells} (${fmt(c.cuts)} cuts)`,
    );
  }, o.progressEveryMs);
  o.cleanups.push(() => clearInterval(progress));

  try {
    await Promise.all(Array.from({ length: o.concurrency }, () => sender().catch((err: Error) => void (failure ??= err))));
  } finally {
    sending = false;
    changed.notify();
  }
  await injector;
  if (failure) throw failure;
  const sendS = (performance.now() - t0) / 1000;

  // --- the drain: no more faults; every accepted command final, on a poll begun after the last accept ---
  proxy.stopCutting();
  const tDrain = performance.now();
  const drainFrom = pollSeq + 1;
  let drained = true;
  try {
    await changed.until(() => lastFullPoll >= drainFrom && [...depth.values()].every((n) => n === 0), o.drainMs, "the drain");
  } catch {
    drained = false;
  }
  // Every response is stored once the queues are empty, but an agent whose connection the last cut
  // spell broke may still be waiting to redial, holding responses whose ack the cut took: it resends
  // them on reconnect and the relay acks them again. Wait (bounded) for the agents' outboxes to empty,
  // read from their journals beside the running agents.
  const outboxes = agents.map((a) => new DatabaseSync(path.join(a.dir, JOURNAL_FILE), { readOnly: true }));
  const pendingResponses = () =>
    outboxes.reduce(
      (n, db) => n + Number((db.prepare("SELECT COUNT(*) AS n FROM outbox WHERE kind = 'response'").get() as { n: number }).n),
      0,
    );
  const outboxDeadline = Date.now() + Math.max(10_000, o.drainMs - (performance.now() - tDrain));
  while (drained && pendingResponses() > 0 && Date.now() < outboxDeadline) await pause(100);
  for (const db of outboxes) db.close();
  const drainS = (performance.now() - tDrain) / 1000;
  const totalS = (performance.now() - t0) / 1000;
  monitoring = false;
  clearInterval(progress);
  await monitor;

  // --- what the relay says ---
  const relayView = new Map<string, { state: string; response_status: string | null; host: string }>();
  for (const a of agents) {
    let cursor: string | null = null;
    do {
      const q = new URLSearchParams({ limit: "500" });
      if (cursor) q.set("cursor", cursor);
      const page = await rest.json<{
        items: { message_id: string; state: string; response_status: string | null }[];
        next_cursor: string | null;
      }>("GET", `/api/hosts/${a.hostId}/commands?${q}`, undefined, 200);
      for (const c of page.items) relayView.set(c.message_id, { state: c.state, response_status: c.response_status, host: a.hostId });
      cursor = page.next_cursor;
    } while (cursor);
  }
  const states: Record<string, number> = {};
  const lostByState: Record<string, number> = {};
  let lost = 0;
  const failedIds: { host: string; id: string }[] = [];
  const acceptedSet = new Set<string>();
  for (let i = 0; i < o.commands; i++) {
    const id = acceptedIds[i];
    if (!id) continue;
    acceptedSet.add(id);
    const v = relayView.get(id);
    const state = v?.state ?? "unknown to the relay";
    states[state] = (states[state] ?? 0) + 1;
    // Lost: not final, or final without the agent's answer (expired, dead-lettered, … by the relay alone).
    if (!v || !TERMINAL.has(v.state) || v.response_status === null) {
      lost++;
      lostByState[state] = (lostByState[state] ?? 0) + 1;
    }
    if (v?.state === "failed") failedIds.push({ host: hostOf(i).hostId, id });
  }
  const unexpectedCommands = [...relayView.keys()].filter((id) => !acceptedSet.has(id)).length;
  let outcomeUnknown = 0;
  for (const f of failedIds) {
    const c = await rest.json<{ result: { reason?: string } | null }>("GET", `/api/hosts/${f.host}/commands/${f.id}`, undefined, 200);
    if (c.result?.reason === UNKNOWN_OUTCOME_REASON) outcomeUnknown++;
  }

  // --- what the agents did: stop them gracefully, then read their journals ---
  const exitCodes = await Promise.all(agents.map((a) => a.stop()));
  let duplicated = 0;
  let unexpectedExecutions = 0;
  let succeededWithoutExecution = 0;
  let unackedResponses = 0;
  const unackedDetail: string[] = [];
  for (const a of agents) {
    const journal = openJournal(a.dir);
    try {
      const counts = journal.executionCounts();
      for (const [id, n] of counts) {
        if (n > 1) duplicated += n - 1;
        if (!acceptedSet.has(id)) unexpectedExecutions++;
      }
      for (const [id, v] of relayView) {
        if (v.host === a.hostId && v.state === "succeeded" && !counts.has(id)) succeededWithoutExecution++;
      }
      for (const e of journal.outbox()) {
        if (e.kind !== "response") continue;
        unackedResponses++;
        const v = e.command_id ? relayView.get(e.command_id) : undefined;
        const j = e.command_id ? journal.get(e.command_id) : null;
        if (unackedDetail.length < 10) {
          unackedDetail.push(
            `agent ${a.index}: response ${e.frame_id} (outbox seq ${e.seq}) for ${e.command_id}: relay ${v?.state}/${v?.response_status}, journal ${j?.state} seq ${j?.seq}, frame ${e.frame.slice(0, 160)}`,
          );
        }
      }
    } finally {
      journal.close();
    }
  }
  for (const d of unackedDetail) o.log(`  unacked: ${d}`);
  if (exitCodes.some((c) => c !== 0)) o.log(`  note: agent exit codes on SIGTERM: ${exitCodes.join(", ")}`);
  for (const a of agents) for (const e of a.unexpectedExits) o.log(`  ${e}`);

  killTree(relay.proc);
  return {
    system: "fleet-relay",
    seed: o.seed,
    commands: o.commands,
    agents: o.agents,
    accepted,
    abandoned,
    postRetries,
    lost,
    lostByState,
    duplicated,
    unexpectedCommands,
    unexpectedExecutions,
    outcomeUnknown,
    states,
    succeededWithoutExecution,
    unackedResponses,
    unexpectedAgentExits,
    faults: { ...counters, chaos: proxy.stats() },
    drained,
    sendS,
    drainS,
    totalS,
    commandsPerS: accepted / totalS,
  };
}
