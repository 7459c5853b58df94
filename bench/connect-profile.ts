/**
 * Where workerd's CPU goes when agents connect: V8's sampling profiler (through workerd's inspector)
 * over BENCH_PROFILE_AGENTS first connects (hello → welcome) through the TLS edge, then the same
 * agents reconnecting. Prints self time and total time by function, the figures in bench/README.md's
 * "Scale" section. Not part of `npm run bench`; run it on an idle machine:
 *
 *   node --experimental-strip-types bench/connect-profile.ts
 */
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import WebSocket from "ws";
import { signDevToken } from "../scripts/dev-token.ts";
import { readJwtSecret } from "../scripts/jwt-secret.ts";
import { startLocalRelay } from "../scripts/local-relay.ts";
import { freePort } from "./mqtt-peer.ts";
import { clientCertFactory } from "./pki.ts";
import { ProtocolAgent } from "./protocol-agent.ts";
import { RestClient } from "./rest.ts";
import { intEnv } from "./soak-common.ts";
import { table } from "./stats.ts";

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

/** A minimal Chrome DevTools protocol session. */
async function devtools(port: number) {
  const targets = (await (await fetch(`http://127.0.0.1:${port}/json/list`)).json()) as {
    id: string;
    title: string;
    webSocketDebuggerUrl?: string;
  }[];
  const target = targets.find((t) => t.title.includes("fleet-relay")) ?? targets[0]!;
  const ws = new WebSocket(target.webSocketDebuggerUrl ?? `ws://127.0.0.1:${port}/${target.id}`);
  await new Promise((resolve, reject) => {
    ws.once("open", resolve);
    ws.once("error", reject);
  });
  let seq = 0;
  const waiting = new Map<number, (result: unknown) => void>();
  ws.on("message", (data) => {
    const m = JSON.parse(String(data)) as { id?: number; result?: unknown };
    if (m.id !== undefined) waiting.get(m.id)?.(m.result);
  });
  return {
    call: <T>(method: string, params: object = {}) =>
      new Promise<T>((resolve) => {
        const id = ++seq;
        waiting.set(id, resolve as (r: unknown) => void);
        ws.send(JSON.stringify({ id, method, params }));
      }),
    close: () => ws.close(),
  };
}

/** Milliseconds of self and total time by function (name and bundle line). */
function byFunction(p: Profile): { self: Map<string, number>; total: Map<string, number>; natives: Map<string, number>; all: number } {
  const selfUs = new Map<number, number>();
  p.samples.forEach((id, i) => selfUs.set(id, (selfUs.get(id) ?? 0) + (p.timeDeltas[i] ?? 0)));
  const nodes = new Map(p.nodes.map((n) => [n.id, n]));
  const key = (n: ProfileNode) => `${n.callFrame.functionName || "(anonymous)"}${n.callFrame.url ? `:${n.callFrame.lineNumber + 1}` : ""}`;
  const self = new Map<string, number>();
  const total = new Map<string, number>();
  const natives = new Map<string, number>();
  const subtree = (id: number, onStack: Set<string>, parent: string): number => {
    const n = nodes.get(id)!;
    const k = key(n);
    let t = selfUs.get(id) ?? 0;
    self.set(k, (self.get(k) ?? 0) + t / 1000);
    // A native's self time by its JavaScript caller: which statement site the SQLite time is spent at.
    if (!n.callFrame.url && t > 0) natives.set(`${k} ← ${parent}`, (natives.get(`${k} ← ${parent}`) ?? 0) + t / 1000);
    const fresh = !onStack.has(k);
    if (fresh) onStack.add(k);
    for (const c of n.children ?? []) t += subtree(c, onStack, k);
    if (fresh) {
      onStack.delete(k);
      total.set(k, (total.get(k) ?? 0) + t / 1000);
    }
    return t;
  };
  const all = subtree(p.nodes[0]!.id, new Set(), "") / 1000;
  return { self, total, natives, all };
}

function top(m: Map<string, number>, n: number, per: number): string[][] {
  return [...m.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, n)
    .map(([k, v]) => [k.slice(0, 90), (v / per).toFixed(3)]);
}

const N = intEnv("BENCH_PROFILE_AGENTS", 200, 1);
const stateDir = await mkdtemp(path.join(os.tmpdir(), "connect-profile-"));
const inspectorPort = await freePort();
const relay = await startLocalRelay({ port: 0, edgePort: 0, stateDir, quiet: true, inspectorPort });
try {
  const secret = (await readJwtSecret(stateDir))!;
  const rest = new RestClient(relay.url, await signDevToken({ secret, role: "admin", ttlSeconds: 3600 }), 16);
  const certs = await clientCertFactory(stateDir);
  const issued = [];
  for (let i = 0; i < N; i++) issued.push(await certs.issue(`profile-${i}`));
  for (const c of issued) await rest.json("POST", "/api/hosts", { hostname: c.cn, cert_fingerprint_sha256: c.fingerprint }, 201);
  const url = `${relay.edgeUrl!.replace("https:", "wss:")}/agent/connect`;
  const dt = await devtools(inspectorPort);
  await dt.call("Profiler.enable");
  await dt.call("Profiler.setSamplingInterval", { interval: 100 });
  for (const round of ["first connect", "reconnect"]) {
    await dt.call("Profiler.start");
    const agents: ProtocolAgent[] = [];
    // One at a time: the profile is of the connect path, not of a queue.
    for (const c of issued) {
      agents.push(
        await ProtocolAgent.connect({ url, ca: relay.caCertPem, cert: c.certPem, key: certs.keyPem, hostname: c.cn, heartbeat: false }),
      );
    }
    // What the connects left to do after welcome (outbox flushes, registry writes) is part of their cost.
    await new Promise((r) => setTimeout(r, 2000));
    const { profile } = await dt.call<{ profile: Profile }>("Profiler.stop");
    for (const a of agents) await a.close();
    await new Promise((r) => setTimeout(r, 2000));
    const { self, total, natives, all } = byFunction(profile);
    const idle = (self.get("(idle)") ?? 0) / N;
    console.log(`\n${round}: ${N} agents, ${(all / N - idle).toFixed(2)} ms of workerd's main thread per agent (profile, idle excluded)`);
    console.log("self time, ms per connect");
    console.log(table(["function", "ms"], top(self, 25, N)));
    console.log("total time (with callees), ms per connect");
    console.log(table(["function", "ms"], top(total, 40, N)));
    console.log("natives (SQLite's exec and others) by caller, ms per connect");
    console.log(table(["native ← caller", "ms"], top(natives, 25, N)));
  }
  dt.close();
  rest.close();
} finally {
  await relay.stop();
  if (!process.env.KEEP) await rm(stateDir, { recursive: true, force: true });
  else console.log("state", stateDir);
}
