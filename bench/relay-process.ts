/**
 * Child process of the benchmark: runs the local relay (workerd via Miniflare + the TLS edge) so
 * that its memory is measured apart from the benchmark's clients. Talks to the parent over IPC:
 * `ready` once listening; answers `sample` (RSS and CPU time of this process and of workerd) and `stop`.
 * Started by bench/run.ts with `--expose-gc`, and by bench/soak.ts (which SIGKILLs it and workerd, and
 * starts it again on the same state directory and ports); not meant to be run by hand.
 * Arguments: the state directory, then optionally a JSON object `{ port, edgePort, bindings, inspectorPort, apiPort }`.
 */
import { readFileSync } from "node:fs";
import { startLocalRelay } from "../scripts/local-relay.ts";
import { descendants, fdsOf, rssOf } from "./soak-common.ts";

export type RelayRequest = { type: "sample"; id: number; gc: boolean } | { type: "stop" };
export type RelayReply =
  | {
      type: "ready";
      url: string;
      /** The Worker's direct socket, when started with `apiPort`. */
      apiUrl: string | null;
      edgeUrl: string;
      caCertPem: string;
      caCertPath: string;
      edgeSecret: string;
      workerdPids: number[];
      workerdComm: string[];
    }
  | {
      type: "sample";
      id: number;
      edgeRss: number;
      workerdRss: number;
      edgeCpuMs: number;
      workerdCpuMs: number;
      /** Open files of workerd (summed over its processes) and of this process. */
      workerdFds: number;
      ownFds: number;
      /** The edge's own processes (started with `edgeProcesses`), RSS after a GC there when asked. */
      edges: { pid: number; rss: number; fds: number; cpuMs: number }[];
    }
  | { type: "error"; message: string; code?: string };

const stateDir = process.argv[2];
if (!stateDir || !process.send) {
  console.error("usage: forked by bench/run.ts with a state directory");
  process.exit(2);
}
const send = (m: RelayReply) => process.send!(m);
const extra = JSON.parse(process.argv[3] ?? "{}") as {
  port?: number;
  edgePort?: number;
  bindings?: Record<string, string>;
  edgeProcesses?: number;
  inspectorPort?: number;
  apiPort?: number;
};

function comm(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/comm`, "utf8").trim();
  } catch {
    return "?";
  }
}

const TICKS_PER_S = 100; // USER_HZ on Linux

/** User + system CPU time of `pid` in ms, from /proc/<pid>/stat (0 when gone). */
function cpuMsOf(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    // After the comm: state(0) ppid(1) … utime(11) stime(12).
    return ((Number(f[11]) + Number(f[12])) * 1000) / TICKS_PER_S;
  } catch {
    return 0;
  }
}

try {
  const relay = await startLocalRelay({
    port: extra.port ?? 0,
    edgePort: extra.edgePort ?? 0,
    stateDir,
    quiet: true,
    bindings: extra.bindings,
    edgeProcesses: extra.edgeProcesses ?? 0,
    ...(extra.inspectorPort === undefined ? {} : { inspectorPort: extra.inspectorPort }),
    ...(extra.apiPort === undefined ? {} : { apiPort: extra.apiPort }),
  });
  // workerd is the runtime; anything else below us (none expected) is counted with it.
  const edgePids = new Set(relay.edgeProcesses.map((e) => e.pid));
  const below = descendants(process.pid).filter((pid) => !edgePids.has(pid));
  // esbuild leaves its service process running after bundling; it is not part of the relay.
  const workerdPids = below.some((pid) => comm(pid) === "workerd") ? below.filter((pid) => comm(pid) === "workerd") : below;
  send({
    type: "ready",
    url: relay.url,
    apiUrl: relay.apiUrl,
    edgeUrl: relay.edgeUrl!,
    caCertPem: relay.caCertPem,
    caCertPath: relay.caCertPath,
    edgeSecret: relay.edgeSecret,
    workerdPids,
    workerdComm: workerdPids.map(comm),
  });
  let stopping = false;
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    await relay.stop().catch(() => {});
    process.exit(0);
  };
  process.on("message", async (m: RelayRequest) => {
    if (m.type === "sample") {
      const cpu = process.cpuUsage();
      if (m.gc) {
        const gc = (globalThis as { gc?: () => void }).gc;
        gc?.();
        gc?.();
      }
      const edges = await Promise.all(
        relay.edgeProcesses.map(async (e) => ({
          pid: e.pid,
          rss: m.gc ? await e.gcAndRss().catch(() => rssOf(e.pid)) : rssOf(e.pid),
          fds: fdsOf(e.pid),
          cpuMs: cpuMsOf(e.pid),
        })),
      );
      send({
        workerdFds: workerdPids.reduce((s, pid) => s + fdsOf(pid), 0),
        ownFds: fdsOf(process.pid),
        edges,
        type: "sample",
        id: m.id,
        edgeRss: process.memoryUsage().rss,
        workerdRss: workerdPids.reduce((s, pid) => s + rssOf(pid), 0),
        edgeCpuMs: (cpu.user + cpu.system) / 1000,
        workerdCpuMs: workerdPids.reduce((s, pid) => s + cpuMsOf(pid), 0),
      });
    } else if (m.type === "stop") {
      void stop();
    }
  });
  // The parent went away (crash, Ctrl-C): do not leave workerd behind.
  process.on("disconnect", () => void stop());
  process.on("SIGTERM", () => void stop());
  process.on("SIGINT", () => void stop());
} catch (err) {
  // code EADDRINUSE (PortInUseError): the caller may try the same ports again.
  send({ type: "error", message: (err as Error).stack ?? String(err), code: (err as { code?: string }).code });
  process.exit(1);
}
