/**
 * `node bench/profile.ts`: where workerd's CPU goes for one command. Starts the local relay in this
 * process with workerd's V8 inspector on, connects one protocol-only agent through the TLS edge,
 * sends PROFILE_WARMUP commands (default 100), then records a V8 CPU profile of the Worker's isolate
 * (the Worker and every Durable Object run in it) over PROFILE_COMMANDS more (default 400), one at a
 * time like the latency run. Prints workerd's CPU per command from /proc, the profiled JavaScript
 * time per command, and the time per source module (self and inclusive) read back from the bundle's
 * module comments, and the same per step of the path (bench/README.md); writes the raw profile to
 * <tmp>/fleet-worker-0.cpuprofile (loadable in DevTools). PROFILE_ASSETS=0 starts the relay without
 * the dashboard assets (no Miniflare asset router in front of the Worker).
 * Figures, not judgements; wrap in `flock /tmp/fleet-bench.lock` like the benchmark.
 */
import { readFileSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import WebSocket from "ws";
import { signDevToken } from "../scripts/dev-token.ts";
import { readJwtSecret, startLocalRelay } from "../scripts/local-relay.ts";
import { clientCertFactory } from "./pki.ts";
import { ProtocolAgent } from "./protocol-agent.ts";
import { RestClient } from "./rest.ts";
import { descendants } from "./soak-common.ts";
import { Tracker } from "./tracker.ts";

const WARMUP = Number(process.env.PROFILE_WARMUP ?? 100);
const COMMANDS = Number(process.env.PROFILE_COMMANDS ?? 400);
/** Sampling interval; finer samples cost workerd more CPU than the code being measured. */
const INTERVAL_US = Number(process.env.PROFILE_INTERVAL_US ?? 200);
/** Only the Worker's own isolate: Miniflare's entry, router and proxy isolates share its thread, and
 * a sampler attached to them records the Worker's time as theirs. */
const TARGET = process.env.PROFILE_TARGET ?? "core:user:";
const out = (line = "") => process.stdout.write(`${line}\n`);

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}
interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
    s.on("error", reject);
  });
}

function cpuMsOf(pids: number[]): number {
  let total = 0;
  for (const pid of pids) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
      const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      total += ((Number(f[11]) + Number(f[12])) * 1000) / 100;
    } catch {
      // gone
    }
  }
  return total;
}

/** One DevTools-protocol session over the inspector's WebSocket. */
class Cdp {
  #seq = 0;
  readonly #waiting = new Map<number, (r: { result?: unknown; error?: unknown }) => void>();
  readonly ws: WebSocket;
  private constructor(ws: WebSocket) {
    this.ws = ws;
    ws.on("message", (data) => {
      const m = JSON.parse(String(data)) as { id?: number; result?: unknown; error?: unknown };
      if (m.id !== undefined) this.#waiting.get(m.id)?.(m);
    });
  }
  static open(url: string): Promise<Cdp> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url);
      ws.once("open", () => resolve(new Cdp(ws)));
      ws.once("error", reject);
    });
  }
  call<T>(method: string, params: object = {}): Promise<T> {
    const id = ++this.#seq;
    return new Promise((resolve, reject) => {
      this.#waiting.set(id, (m) => (m.error ? reject(new Error(`${method}: ${JSON.stringify(m.error)}`)) : resolve(m.result as T)));
      this.ws.send(JSON.stringify({ id, method, params }));
    });
  }
}

/** Line (0-based) → module path, from the `// path/to/module.ts` comments esbuild writes before each module. */
function moduleLines(bundle: string): (line: number) => string {
  const starts: { line: number; name: string }[] = [];
  bundle.split("\n").forEach((text, line) => {
    const m = /^\/\/ ((?:worker|schemas|node_modules)\/\S+)$/.exec(text);
    if (m) starts.push({ line, name: m[1]!.replace(/^node_modules\/((?:@[^/]+\/)?[^/]+).*/, "npm:$1") });
  });
  return (line) => {
    let lo = 0;
    let hi = starts.length - 1;
    let found = "(bundle prelude)";
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (starts[mid]!.line <= line) {
        found = starts[mid]!.name;
        lo = mid + 1;
      } else hi = mid - 1;
    }
    return found;
  };
}

type Frame = { mod: string; fn: string };

/** The step of one command's path a sample belongs to, from its stack (root first). */
export function stepOf(stack: Frame[]): string {
  const has = (mod: string, fn?: string) => stack.some((f) => f.mod.startsWith(mod) && (fn === undefined || f.fn === fn));
  const deepest = (choices: [string, string][]) => {
    for (let i = stack.length - 1; i >= 0; i--) {
      for (const [mod, name] of choices) if (stack[i]!.mod.startsWith(mod)) return name;
    }
    return null;
  };
  if (!stack.some((f) => f.mod.startsWith("worker/") || f.mod.startsWith("schemas/") || f.mod.startsWith("npm:"))) {
    return "outside the bundle (runtime, GC, natives at the top)";
  }
  if (has("worker/fleet-events/")) return has("worker/metrics/") ? "FleetEvents: metrics apply" : "FleetEvents: publish (events)";
  if (has("worker/audit-log/audit-log.ts")) return "AuditLog: writes (chain)";
  if (has("worker/host-relay/")) {
    if (has("worker/host-relay/host-relay.ts", "webSocketMessage")) return "HostRelay: agent ack/response";
    if (has("worker/host-relay/notify.ts", "flushRounds")) return "HostRelay: outbox flush (RPCs out)";
    if (has("worker/host-relay/operations.ts", "enqueue")) {
      return has("worker/host-relay/delivery.ts", "pump") ? "HostRelay: send over WebSocket" : "HostRelay: enqueue transaction";
    }
    return "HostRelay: other (alarm, settle, webSocket hooks)";
  }
  const step = deepest([
    ["worker/auth/", "Worker: JWT verify"],
    ["npm:jose", "Worker: JWT verify"],
    ["worker/audit-log/", "Worker: audit trail"],
    ["worker/metrics/", "Worker: http metrics"],
    ["worker/request-id.ts", "Worker: request id"],
    ["worker/security-headers.ts", "Worker: security headers"],
    ["worker/strict-body.ts", "Worker: body parsing/zod"],
    ["npm:zod", "Worker: body parsing/zod"],
    ["npm:@hono/zod", "Worker: body parsing/zod"],
    ["schemas/", "Worker: body parsing/zod"],
    ["worker/routes/", "Worker: route handler (RPC to HostRelay)"],
  ]);
  return step ?? "Worker: routing, other";
}

function summarise(profile: Profile, moduleOf: (line: number) => string, perCommand: number) {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const label = (n: ProfileNode) => {
    const { url, functionName, lineNumber } = n.callFrame;
    if (!url) return functionName || "(anonymous native)";
    if (url.endsWith("worker.mjs")) return moduleOf(lineNumber);
    return `(${url.split("/").pop()})`;
  };
  const self = new Map<string, number>();
  const incl = new Map<string, number>();
  const fnSelf = new Map<string, number>();
  const fnIncl = new Map<string, number>();
  const steps = new Map<string, number>();
  let busy = 0;
  for (let i = 0; i < profile.samples.length; i++) {
    const dt = (profile.timeDeltas[i + 1] ?? 0) / 1000; // µs → ms, the time until the next sample
    let node = byId.get(profile.samples[i]!)!;
    if (node.callFrame.functionName === "(idle)") continue;
    busy += dt;
    const leaf = label(node);
    self.set(leaf, (self.get(leaf) ?? 0) + dt);
    const leafFn = `${node.callFrame.functionName || "(anon)"} @ ${leaf}`;
    fnSelf.set(leafFn, (fnSelf.get(leafFn) ?? 0) + dt);
    const seen = new Set<string>();
    const seenFn = new Set<string>();
    const stack: Frame[] = [];
    for (let n: ProfileNode | undefined = node; n; n = parent.has(n.id) ? byId.get(parent.get(n.id)!) : undefined) {
      stack.unshift({ mod: label(n), fn: n.callFrame.functionName });
    }
    const step = stepOf(stack);
    steps.set(step, (steps.get(step) ?? 0) + dt);
    for (;;) {
      const l = label(node);
      if (!seen.has(l)) {
        seen.add(l);
        incl.set(l, (incl.get(l) ?? 0) + dt);
      }
      const f = `${node.callFrame.functionName || "(anon)"} @ ${l}`;
      if (!seenFn.has(f)) {
        seenFn.add(f);
        fnIncl.set(f, (fnIncl.get(f) ?? 0) + dt);
      }
      const p = parent.get(node.id);
      if (p === undefined) break;
      node = byId.get(p)!;
    }
  }
  const top = (m: Map<string, number>, n: number) =>
    [...m.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, n)
      .map(([k, v]) => `${(v / perCommand).toFixed(3).padStart(8)}  ${k}`);
  return { busy, steps: top(steps, 30), self: top(self, 30), incl: top(incl, 45), fnSelf: top(fnSelf, 40), fnIncl: top(fnIncl, 60) };
}

async function main() {
  const work = await mkdtemp(path.join(os.tmpdir(), "fleet-profile-"));
  const stateDir = path.join(work, "relay");
  const inspectorPort = await freePort();
  const relay = await startLocalRelay({
    port: 0,
    edgePort: 0,
    stateDir,
    quiet: process.env.PROFILE_VERBOSE !== "1",
    inspectorPort,
    assets: process.env.PROFILE_ASSETS !== "0",
  });
  try {
    const workerd = descendants(process.pid).filter((pid) => {
      try {
        return readFileSync(`/proc/${pid}/comm`, "utf8").trim() === "workerd";
      } catch {
        return false;
      }
    });
    const secret = (await readJwtSecret(stateDir))!;
    const admin = await signDevToken({ secret, role: "admin", ttlSeconds: 7200, sub: "profile-admin" });
    const operator = await signDevToken({ secret, role: "operator", ttlSeconds: 7200, sub: "profile" });
    const rest = new RestClient(relay.url, operator, 4);
    const certs = await clientCertFactory(stateDir);
    const issued = await certs.issue("profile-proto");
    const host = await rest.json<{ host_id: string }>(
      "POST",
      "/api/hosts",
      { hostname: "profile-proto", cert_fingerprint_sha256: issued.fingerprint },
      201,
      admin,
    );
    const tracker = new Tracker();
    const agent = await ProtocolAgent.connect({
      url: `${relay.edgeUrl!.replace("https:", "wss:")}/agent/connect`,
      ca: relay.caCertPem,
      cert: issued.certPem,
      key: certs.keyPem,
      hostname: "profile-proto",
      tracker,
    });
    const one = async () => {
      const r = await rest.request("POST", `/api/hosts/${host.host_id}/commands`, { command_type: "system_info" });
      if (r.status !== 202) throw new Error(`POST: HTTP ${r.status} ${r.body}`);
      const id = (JSON.parse(r.body) as { message_id: string }).message_id;
      await tracker.waitStored(id);
      tracker.forget(id);
    };
    for (let i = 0; i < WARMUP; i++) await one();

    // Unprofiled first: the CPU figure to quote. Then the same count with the sampler on.
    const plain0 = cpuMsOf(workerd);
    const tp0 = performance.now();
    for (let i = 0; i < COMMANDS; i++) await one();
    const plainWall = performance.now() - tp0;
    const plainCpu = cpuMsOf(workerd) - plain0;
    const targets = (
      (await (await fetch(`http://127.0.0.1:${inspectorPort}/json`)).json()) as { title: string; webSocketDebuggerUrl: string }[]
    ).filter((t) => t.title.includes(TARGET));
    const sessions = await Promise.all(targets.map((t) => Cdp.open(t.webSocketDebuggerUrl)));
    for (const s of sessions) {
      await s.call("Profiler.enable");
      await s.call("Profiler.setSamplingInterval", { interval: INTERVAL_US });
      await s.call("Profiler.start");
    }
    const cpu0 = cpuMsOf(workerd);
    const t0 = performance.now();
    for (let i = 0; i < COMMANDS; i++) await one();
    const wall = performance.now() - t0;
    const cpu1 = cpuMsOf(workerd);
    const bundle = readFileSync(path.join(stateDir, "build", "worker.mjs"), "utf8");
    const moduleOf = moduleLines(bundle);
    out(`${COMMANDS} commands (+${WARMUP} warm-up), one at a time, protocol-only agent`);
    out(
      `without the profiler: wall per command ${(plainWall / COMMANDS).toFixed(3)} ms, workerd CPU per command (/proc) ${(plainCpu / COMMANDS).toFixed(3)} ms`,
    );
    out(
      `with the profiler (${INTERVAL_US} µs): wall per command ${(wall / COMMANDS).toFixed(3)} ms, workerd CPU per command ${((cpu1 - cpu0) / COMMANDS).toFixed(3)} ms`,
    );
    for (const [i, s] of sessions.entries()) {
      const { profile } = await s.call<{ profile: Profile }>("Profiler.stop");
      const file = path.join(os.tmpdir(), `fleet-worker-${i}.cpuprofile`);
      await writeFile(file, JSON.stringify(profile));
      const r = summarise(profile, moduleOf, COMMANDS);
      out();
      out(`== target ${targets[i]!.title}: busy ${(r.busy / COMMANDS).toFixed(3)} ms per command (profile: ${file})`);
      out("-- per step (ms per command, sampled)");
      for (const l of r.steps) out(l);
      out("-- self time per module (ms per command)");
      for (const l of r.self) out(l);
      out("-- inclusive time per module (ms per command)");
      for (const l of r.incl) out(l);
      out("-- self time per function");
      for (const l of r.fnSelf) out(l);
      out("-- inclusive time per function");
      for (const l of r.fnIncl) out(l);
      s.ws.close();
    }
    await agent.close();
    rest.close();
  } finally {
    await relay.stop();
    await rm(work, { recursive: true, force: true });
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error((err as Error).stack ?? String(err));
    process.exit(1);
  },
);
