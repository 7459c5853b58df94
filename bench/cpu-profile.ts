/**
 * A V8 CPU profile of workerd's Worker isolate over one stretch of a benchmark, taken through
 * workerd's inspector (the DevTools protocol, `inspectorPort` of the local relay), written as a
 * `.cpuprofile` (opens in Chrome DevTools) and summarised as self and total time per function.
 */
import { writeFile } from "node:fs/promises";

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number; columnNumber: number };
  hitCount?: number;
  children?: number[];
}
interface Profile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples?: number[];
  timeDeltas?: number[];
}

export interface Profiler {
  stop(file: string): Promise<Profile>;
}

/** Connects to the first isolate workerd's inspector lists and starts sampling every `intervalUs`. */
export async function startProfiler(inspectorPort: number, intervalUs = 200): Promise<Profiler> {
  const targets = (await (await fetch(`http://127.0.0.1:${inspectorPort}/json/list`)).json()) as { webSocketDebuggerUrl: string }[];
  const url = targets[0]?.webSocketDebuggerUrl;
  if (!url) throw new Error(`workerd's inspector on port ${inspectorPort} lists no isolate`);
  const ws = new WebSocket(url);
  await new Promise((resolve, reject) => {
    ws.addEventListener("open", resolve, { once: true });
    ws.addEventListener("error", () => reject(new Error(`cannot open ${url}`)), { once: true });
  });
  let id = 0;
  const pending = new Map<number, (result: unknown) => void>();
  ws.addEventListener("message", (ev) => {
    const msg = JSON.parse(String(ev.data)) as { id?: number; result?: unknown };
    if (msg.id !== undefined) pending.get(msg.id)?.(msg.result);
  });
  const call = <T>(method: string, params: object = {}) =>
    new Promise<T>((resolve) => {
      const n = ++id;
      pending.set(n, resolve as (r: unknown) => void);
      ws.send(JSON.stringify({ id: n, method, params }));
    });
  await call("Profiler.enable");
  await call("Profiler.setSamplingInterval", { interval: intervalUs });
  await call("Profiler.start");
  return {
    async stop(file) {
      const { profile } = await call<{ profile: Profile }>("Profiler.stop");
      ws.close();
      await writeFile(file, JSON.stringify(profile));
      return profile;
    },
  };
}

/** Self and total milliseconds per function (name and bundle location), the top `n` by self time. */
export function summarizeProfile(profile: Profile, n = 30): string[] {
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const parent = new Map<number, number>();
  for (const node of profile.nodes) for (const c of node.children ?? []) parent.set(c, node.id);
  const dt = new Map<number, number>();
  const samples = profile.samples ?? [];
  const deltas = profile.timeDeltas ?? [];
  // Each sample's time is the gap to the next one.
  for (let i = 0; i < samples.length; i++) dt.set(samples[i]!, (dt.get(samples[i]!) ?? 0) + (deltas[i + 1] ?? 0) / 1000);
  const key = (node: ProfileNode) =>
    `${node.callFrame.functionName || "(anonymous)"} ${node.callFrame.url.split("/").pop()}:${node.callFrame.lineNumber + 1}`;
  const self = new Map<string, number>();
  const total = new Map<string, number>();
  let all = 0;
  for (const [nodeId, ms] of dt) {
    all += ms;
    const node = byId.get(nodeId)!;
    self.set(key(node), (self.get(key(node)) ?? 0) + ms);
    // Total: once per function on the stack, however often it recurs.
    const seen = new Set<string>();
    for (let cur: number | undefined = nodeId; cur !== undefined; cur = parent.get(cur)) {
      const k = key(byId.get(cur)!);
      if (seen.has(k)) continue;
      seen.add(k);
      total.set(k, (total.get(k) ?? 0) + ms);
    }
  }
  const rows = [...self.entries()].sort((a, b) => b[1] - a[1]).slice(0, n);
  const pct = (ms: number) => `${((ms / all) * 100).toFixed(1).padStart(5)} %`;
  return [
    `profile: ${all.toFixed(0)} ms sampled; self and total time per function (top ${n} by self):`,
    ...rows.map(([k, ms]) => `  ${pct(ms)} self ${pct(total.get(k) ?? 0)} total  ${k}`),
  ];
}

/** Total time of the functions whose name matches, for a per-step breakdown. */
export function totalsOf(profile: Profile, names: string[]): Record<string, number> {
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const parent = new Map<number, number>();
  for (const node of profile.nodes) for (const c of node.children ?? []) parent.set(c, node.id);
  const out: Record<string, number> = Object.fromEntries(names.map((n) => [n, 0]));
  const samples = profile.samples ?? [];
  const deltas = profile.timeDeltas ?? [];
  for (let i = 0; i < samples.length; i++) {
    const ms = (deltas[i + 1] ?? 0) / 1000;
    const seen = new Set<string>();
    for (let cur: number | undefined = samples[i]; cur !== undefined; cur = parent.get(cur)) {
      const name = byId.get(cur)!.callFrame.functionName;
      if (name in out && !seen.has(name)) {
        seen.add(name);
        out[name] = out[name]! + ms;
      }
    }
  }
  return out;
}
