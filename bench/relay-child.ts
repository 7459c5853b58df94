/**
 * The relay in a child process (bench/relay-process.ts), as every benchmark starts it: fork, wait
 * for `ready` (or its error), read samples by id, stop with a SIGKILL after a grace period.
 */
import { type ChildProcess, fork } from "node:child_process";
import path from "node:path";
import type { RelayReply, RelayRequest } from "./relay-process.ts";

export type ReadyReply = Extract<RelayReply, { type: "ready" }>;
export type SampleReply = Extract<RelayReply, { type: "sample" }>;

export interface RelayChildHandle {
  proc: ChildProcess;
  ready: ReadyReply;
  /** One reading of the relay's processes (RSS, CPU, open files); `gc` collects garbage in the edge first. */
  sample(gc?: boolean): Promise<SampleReply>;
  /** Asks the child to stop and waits for it; SIGKILL after `graceMs` (default 15 s). */
  stop(graceMs?: number): Promise<void>;
}

const BENCH_DIR = import.meta.dirname;
const REPO_ROOT = path.resolve(BENCH_DIR, "..");

/**
 * `extra` is relay-process.ts's optional JSON argument (`{ port, edgePort, bindings, … }`). `kill`
 * ends the child when it fails to start or does not stop in time; default: SIGKILL to the child
 * alone (bench/scale.ts passes one that takes workerd and the edge processes with it).
 */
export async function forkRelayChild(
  stateDir: string,
  extra?: object,
  startTimeoutMs = 60_000,
  kill: (proc: ChildProcess) => void = (proc) => proc.kill("SIGKILL"),
): Promise<RelayChildHandle> {
  const proc = fork(path.join(BENCH_DIR, "relay-process.ts"), [stateDir, ...(extra ? [JSON.stringify(extra)] : [])], {
    execArgv: ["--experimental-strip-types", "--no-warnings=ExperimentalWarning", "--expose-gc"],
    stdio: ["ignore", "inherit", "inherit", "ipc"],
    cwd: REPO_ROOT,
  });
  const ready = await new Promise<ReadyReply>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the relay did not start within ${startTimeoutMs / 1000} s`)), startTimeoutMs);
    proc.once("exit", (code) => reject(new Error(`the relay process exited (code ${code}) before it was ready`)));
    proc.on("message", (m: RelayReply) => {
      if (m.type !== "ready" && m.type !== "error") return;
      clearTimeout(timer);
      if (m.type === "ready") resolve(m);
      else reject(Object.assign(new Error(`the relay failed to start: ${m.message}`), { code: m.code }));
    });
  }).catch((err) => {
    kill(proc);
    throw err;
  });
  proc.removeAllListeners("exit");
  let seq = 0;
  const waiting = new Map<number, (m: SampleReply) => void>();
  proc.on("message", (m: RelayReply) => {
    if (m.type !== "sample") return;
    waiting.get(m.id)?.(m);
    waiting.delete(m.id);
  });
  return {
    proc,
    ready,
    sample: (gc = false) =>
      new Promise((resolve, reject) => {
        const id = ++seq;
        const timer = setTimeout(() => reject(new Error("no reading from the relay process")), 30_000);
        waiting.set(id, (m) => {
          clearTimeout(timer);
          resolve(m);
        });
        proc.send({ type: "sample", id, gc } satisfies RelayRequest);
      }),
    stop: async (graceMs = 15_000) => {
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      const exited = new Promise((r) => proc.once("exit", r));
      if (proc.connected) proc.send({ type: "stop" } satisfies RelayRequest);
      const timer = setTimeout(() => kill(proc), graceMs);
      await exited;
      clearTimeout(timer);
    },
  };
}
