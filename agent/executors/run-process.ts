import { spawn } from "node:child_process";
import { accessSync, constants, statSync } from "node:fs";
import path from "node:path";
import { StringDecoder } from "node:string_decoder";
import { OutputTail } from "./output-tail.ts";

/** SIGTERM first; whatever is still alive this long after gets SIGKILL. */
export const KILL_GRACE_MS = 5000;
/** After the main process exits, how long to keep reading pipes held open by its leftovers. */
const DRAIN_MS = 250;
/**
 * The start gate: the process group's leader waits for one line on stdin before it becomes the
 * command (exec, same pid, stdin back to /dev/null). `onSpawn` runs in between, so the group is
 * recorded before the command does anything; if the agent dies first, stdin hits EOF and the
 * command never runs.
 */
const GATE_SCRIPT = 'read -r go || exit 126; exec "$@" </dev/null';
const GATE_NAME = "fleet-agent-gate";

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
  /**
   * Called once the process exists, with its pid (= its process group id), before the command
   * itself starts (it waits at the start gate until this returns). If it throws, the command never
   * starts: the group is killed and the outcome is a spawn error.
   */
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
  const program = resolveProgram(file, opts.cwd, opts.env);
  if (program === null) {
    // Found out here, not by the gate's `exec`, so a missing program is still "could not start".
    const err = Object.assign(new Error(`spawn ${file} ENOENT`), { code: "ENOENT" });
    return Promise.resolve({
      exitCode: null,
      signal: null,
      timedOut: false,
      aborted: false,
      spawnError: err,
      output: `${err.message}\n`,
      outputTruncatedBytes: 0,
      pid: null,
      executionTime: (performance.now() - started) / 1000,
    });
  }

  return new Promise((resolve) => {
    let timedOut = false;
    let aborted = false;
    let spawnError: Error | null = null;
    let killTimer: NodeJS.Timeout | null = null;

    const child = spawn("/bin/sh", ["-c", GATE_SCRIPT, GATE_NAME, program, ...args], {
      cwd: opts.cwd,
      env: opts.env,
      detached: true,
      stdio: ["pipe", "pipe", "pipe"],
    });
    const pid = child.pid ?? null;
    // The gate may be gone (killed, aborted) before it reads: a broken pipe is not an agent error.
    child.stdin.on("error", () => {});

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
    if (pid !== null) {
      try {
        opts.onSpawn?.(pid);
        child.stdin.end("go\n");
      } catch (err) {
        // Not recorded, so not allowed to run: EOF at the gate, and the group is killed.
        spawnError = err as Error;
        child.stdin.destroy();
        killGroup("SIGKILL");
      }
    } else {
      child.stdin.destroy();
    }

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

/** The program's path as `exec` would find it (PATH of the child's environment), or null. */
function resolveProgram(file: string, cwd: string | undefined, env: NodeJS.ProcessEnv): string | null {
  const candidates = file.includes("/")
    ? [path.resolve(cwd ?? process.cwd(), file)]
    : (env.PATH ?? "/usr/local/bin:/usr/bin:/bin").split(":").map((dir) => path.resolve(cwd ?? process.cwd(), dir || ".", file));
  for (const candidate of candidates) {
    try {
      if (!statSync(candidate).isFile()) continue;
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  return null;
}
