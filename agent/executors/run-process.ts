import { spawn } from "node:child_process";
import { StringDecoder } from "node:string_decoder";
import { OutputTail } from "./output-tail.ts";

/** SIGTERM first; whatever is still alive this long after gets SIGKILL. */
export const KILL_GRACE_MS = 5000;
/** After the main process exits, how long to keep reading pipes held open by its leftovers. */
const DRAIN_MS = 250;

export interface RunProcessOptions {
  /** Program and arguments; never run through a shell. */
  argv: readonly string[];
  cwd?: string;
  /** Full environment of the child. */
  env: NodeJS.ProcessEnv;
  /** Execution timeout; the whole process group is killed when it passes. */
  timeoutMs: number;
  /** Output kept for the result (the tail), bytes. */
  maxOutputBytes: number;
  /** Aborting kills the process group as a timeout does (agent shutdown). */
  signal?: AbortSignal;
  /** Called once the process exists, with its pid (= its process group id). */
  onSpawn?: (pid: number) => void;
  /** Every piece of output as it arrives (stdout and stderr interleaved). */
  onOutput?: (text: string) => void;
  /** SIGTERM → SIGKILL grace. Default 5 s. */
  killGraceMs?: number;
}

export interface ProcessOutcome {
  exitCode: number | null;
  /** Signal that ended the main process, if any. */
  signal: NodeJS.Signals | null;
  timedOut: boolean;
  aborted: boolean;
  /** The process could not be started (e.g. ENOENT). */
  spawnError: Error | null;
  output: string;
  outputTruncatedBytes: number;
  pid: number | null;
  /** Wall-clock seconds from spawn to exit. */
  executionTime: number;
}

/**
 * Runs one process in its own process group (`detached`), so a timeout or shutdown can kill
 * everything it started (`kill(-pgid)`), not just the direct child.
 */
export function runProcess(opts: RunProcessOptions): Promise<ProcessOutcome> {
  const started = performance.now();
  const tail = new OutputTail(opts.maxOutputBytes);
  const graceMs = opts.killGraceMs ?? KILL_GRACE_MS;
  const [file, ...args] = opts.argv;
  if (file === undefined) throw new TypeError("argv must not be empty");

  return new Promise((resolve) => {
    let timedOut = false;
    let aborted = false;
    let spawnError: Error | null = null;
    let killTimer: NodeJS.Timeout | null = null;

    const child = spawn(file, args, {
      cwd: opts.cwd,
      env: opts.env,
      detached: true,
      stdio: ["ignore", "pipe", "pipe"],
    });
    const pid = child.pid ?? null;

    const killGroup = (sig: NodeJS.Signals) => {
      if (pid === null) return;
      try {
        process.kill(-pid, sig);
      } catch {
        // ESRCH: the group is already gone.
      }
    };
    const terminate = () => {
      if (killTimer) return;
      killGroup("SIGTERM");
      // Unref'd: leftovers that ignore SIGTERM must not keep the agent alive on their own.
      killTimer = setTimeout(() => killGroup("SIGKILL"), graceMs);
      killTimer.unref();
    };

    const timeout = setTimeout(() => {
      timedOut = true;
      terminate();
    }, opts.timeoutMs);
    const onAbort = () => {
      aborted = true;
      terminate();
    };
    if (opts.signal?.aborted) onAbort();
    else opts.signal?.addEventListener("abort", onAbort, { once: true });

    for (const stream of [child.stdout, child.stderr]) {
      const decoder = new StringDecoder("utf8");
      stream.on("data", (data: Buffer) => {
        const text = decoder.write(data);
        if (text === "") return;
        tail.push(text);
        opts.onOutput?.(text);
      });
      stream.on("end", () => {
        const rest = decoder.end();
        if (rest) {
          tail.push(rest);
          opts.onOutput?.(rest);
        }
      });
    }
    if (pid !== null) opts.onSpawn?.(pid);

    let finished = false;
    const finish = (exitCode: number | null, signal: NodeJS.Signals | null) => {
      if (finished) return;
      finished = true;
      clearTimeout(timeout);
      opts.signal?.removeEventListener("abort", onAbort);
      // A timed-out group keeps its SIGKILL timer; an exited one has nothing left to kill.
      if (killTimer && !timedOut && !aborted) clearTimeout(killTimer);
      resolve({
        exitCode,
        signal,
        timedOut,
        aborted,
        spawnError,
        output: spawnError ? `${tail.text()}${spawnError.message}\n` : tail.text(),
        outputTruncatedBytes: tail.droppedBytes,
        pid,
        executionTime: (performance.now() - started) / 1000,
      });
    };

    child.on("error", (err) => {
      spawnError = err;
      if (pid === null) finish(null, null);
    });
    child.on("exit", (code, signal) => {
      // Background children may hold the pipes open; read what arrives shortly, then let go.
      const drain = setTimeout(() => {
        child.stdout.destroy();
        child.stderr.destroy();
        finish(code, signal);
      }, DRAIN_MS);
      child.on("close", () => {
        clearTimeout(drain);
        finish(code, signal);
      });
    });
  });
}
