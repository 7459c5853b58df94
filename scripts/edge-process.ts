/**
 * One TLS edge (scripts/edge.ts) in a process of its own, forked by `startLocalRelay` when it is
 * asked for more than one edge process. The processes listen on the same port with SO_REUSEPORT:
 * each agent costs an edge two open files (its TLS socket and the socket to workerd), and one
 * process may hold only so many. Talks to its parent over IPC; exits when the parent goes away.
 */
import { type Edge, type EdgeOptions, startEdge } from "./edge.ts";

export type EdgeProcessRequest = { type: "start"; options: Omit<EdgeOptions, "log">; quiet: boolean } | { type: "gc"; id: number };
export type EdgeProcessReply =
  | { type: "listening"; port: number }
  | { type: "error"; message: string; code?: string }
  | { type: "gc"; id: number; rss: number };

if (!process.send) {
  console.error("scripts/edge-process.ts is forked by startLocalRelay; not meant to be run by hand");
  process.exit(2);
}
const send = (m: EdgeProcessReply) => process.send!(m);
let edge: Edge | null = null;

process.on("message", (m: EdgeProcessRequest) => {
  if (m.type === "start") {
    startEdge({ ...m.options, log: m.quiet ? undefined : (line) => console.error(line) }).then(
      (started) => {
        edge = started;
        send({ type: "listening", port: started.port });
      },
      (err: NodeJS.ErrnoException) => {
        send({ type: "error", message: err.message, code: err.code });
        process.exit(1);
      },
    );
  } else if (m.type === "gc") {
    // Run with --expose-gc, so a memory reading is not inflated by garbage waiting for collection.
    const gc = (globalThis as { gc?: () => void }).gc;
    gc?.();
    gc?.();
    send({ type: "gc", id: m.id, rss: process.memoryUsage().rss });
  }
});

const stop = () => {
  const closing = edge?.close() ?? Promise.resolve();
  void closing.finally(() => process.exit(0));
};
// The relay's process is gone (stopped, crashed, killed): never leave an edge behind.
process.on("disconnect", stop);
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
