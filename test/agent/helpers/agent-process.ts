import { type ChildProcess, spawn } from "node:child_process";
import path from "node:path";

export const CLI = path.resolve(import.meta.dirname, "../../../agent/cli.ts");

export interface AgentProcess {
  child: ChildProcess;
  stdout: () => string;
  stderr: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Resolves once stderr holds `text` (bounded; rejects at the deadline or on exit without it). */
  waitForStderr: (text: string, timeoutMs?: number) => Promise<void>;
}

/** Runs `node agent/cli.ts …args` as a real child process. */
export function spawnAgent(args: string[], env: NodeJS.ProcessEnv = {}): AgentProcess {
  const child = spawn(process.execPath, [CLI, ...args], {
    env: { ...process.env, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  let err = "";
  let closed = false;
  const waiters = new Set<() => void>();
  const notify = () => {
    for (const w of [...waiters]) w();
  };
  child.stdout!.on("data", (d: Buffer) => (out += d.toString()));
  child.stderr!.on("data", (d: Buffer) => {
    err += d.toString();
    notify();
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on("close", (code, signal) => {
      closed = true;
      notify();
      resolve({ code, signal });
    }),
  );
  const waitForStderr = (text: string, timeoutMs = 10_000) =>
    new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () => done(new Error(`no ${JSON.stringify(text)} on stderr within ${timeoutMs} ms; stderr:\n${err}`)),
        timeoutMs,
      );
      const check = () => {
        if (err.includes(text)) done(null);
        else if (closed) done(new Error(`agent exited without ${JSON.stringify(text)} on stderr; stderr:\n${err}`));
      };
      const done = (e: Error | null) => {
        clearTimeout(timer);
        waiters.delete(check);
        if (e) reject(e);
        else resolve();
      };
      waiters.add(check);
      check();
    });
  return { child, stdout: () => out, stderr: () => err, exited, waitForStderr };
}

/** Waits for the process to exit, failing after `timeoutMs`. */
export async function exitOf(p: AgentProcess, timeoutMs = 20_000): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`agent process still running after ${timeoutMs} ms; stderr:\n${p.stderr()}`)), timeoutMs);
  });
  try {
    return await Promise.race([p.exited, timeout]);
  } finally {
    clearTimeout(timer);
  }
}
