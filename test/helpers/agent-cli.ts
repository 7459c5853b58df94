/**
 * The agent CLI as a real child process, the way an operator runs it:
 * `node --experimental-strip-types --experimental-sqlite agent/cli.ts enroll|run …`, the same
 * sources under `deno run` (spawnAgentDeno), or any other command line, such as the single
 * executable (spawnAgentProcess). Output is captured; JSON log lines on stderr can be awaited
 * with a deadline.
 */
import { type ChildProcess, spawn } from "node:child_process";
import path from "node:path";
import { denoBinary, denoEnv } from "../../scripts/deno.ts";

export const AGENT_CLI = path.resolve(import.meta.dirname, "../../agent/cli.ts");
const NODE_FLAGS = ["--experimental-strip-types", "--experimental-sqlite", "--no-warnings=ExperimentalWarning"];

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface AgentChild {
  child: ChildProcess;
  pid: number;
  stdout(): string;
  stderr(): string;
  /** stderr's JSON log lines, parsed (non-JSON lines skipped). */
  logs(): { msg: string; level: string; [k: string]: unknown }[];
  exited: Promise<Exit>;
  running(): boolean;
  /** Waits (bounded) for a log line with `msg` (and `pred`), counting lines seen so far. */
  waitForLog(
    msg: string,
    opts?: { timeoutMs?: number; nth?: number; pred?: (line: Record<string, unknown>) => boolean },
  ): Promise<Record<string, unknown>>;
  /** Waits (bounded) for the exit. */
  exit(timeoutMs?: number): Promise<Exit>;
  /** SIGKILL if still running; resolves on exit. For cleanup. */
  kill(): Promise<void>;
}

const children = new Set<AgentChild>();

/** Kills every agent child still running (afterAll / afterEach cleanup). */
export async function killAllAgents(): Promise<void> {
  await Promise.all([...children].map((c) => c.kill()));
}

export function spawnAgentCli(args: string[], env: NodeJS.ProcessEnv = {}): AgentChild {
  return spawnAgentProcess(process.execPath, [...NODE_FLAGS, AGENT_CLI, ...args], { ...process.env, ...env });
}

/**
 * Permissions the agent needs under Deno: its state directory and CA file (read, write), the relay
 * (net), its FLEET_AGENT_* settings (env), package managers (run), and host facts (sys).
 */
export const DENO_AGENT_FLAGS = [
  "--allow-read",
  "--allow-write",
  "--allow-net",
  "--allow-env",
  "--allow-run",
  "--allow-sys",
  "--cached-only",
  "--no-prompt",
];

/** The agent's TypeScript sources under `deno run` (Deno from node_modules, offline). */
export function spawnAgentDeno(args: string[], env: NodeJS.ProcessEnv = {}): AgentChild {
  return spawnAgentProcess(denoBinary(), ["run", ...DENO_AGENT_FLAGS, AGENT_CLI, ...args], denoEnv({ ...process.env, ...env }));
}

/** Any agent command line (the full environment is the caller's). */
export function spawnAgentProcess(command: string, argv: string[], env: NodeJS.ProcessEnv): AgentChild {
  const child = spawn(command, argv, {
    env,
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  let err = "";
  const waiters = new Set<() => void>();
  const notify = () => {
    for (const w of [...waiters]) w();
  };
  child.stdout!.on("data", (d: Buffer) => {
    out += d.toString();
    notify();
  });
  child.stderr!.on("data", (d: Buffer) => {
    err += d.toString();
    notify();
  });
  let done = false;
  const exited = new Promise<Exit>((resolve) =>
    child.on("close", (code, signal) => {
      done = true;
      children.delete(handle);
      notify();
      resolve({ code, signal });
    }),
  );
  const logs = () =>
    err
      .split("\n")
      .filter((l) => l.startsWith("{"))
      .flatMap((l) => {
        try {
          return [JSON.parse(l)];
        } catch {
          return [];
        }
      });

  const handle: AgentChild = {
    child,
    pid: child.pid!,
    stdout: () => out,
    stderr: () => err,
    logs,
    exited,
    running: () => !done,
    waitForLog(msg, opts = {}) {
      const { timeoutMs = 15_000, nth = 1, pred = () => true } = opts;
      return new Promise((resolve, reject) => {
        const check = () => {
          const hit = logs().filter((l) => l.msg === msg && pred(l))[nth - 1];
          if (hit) {
            finish();
            resolve(hit);
          } else if (done) {
            finish();
            reject(new Error(`agent exited before logging "${msg}" #${nth}; stderr:\n${err}`));
          }
        };
        const timer = setTimeout(() => {
          finish();
          reject(new Error(`no "${msg}" #${nth} from the agent within ${timeoutMs} ms; stderr:\n${err}`));
        }, timeoutMs);
        const finish = () => {
          clearTimeout(timer);
          waiters.delete(check);
        };
        waiters.add(check);
        check();
      });
    },
    async exit(timeoutMs = 20_000) {
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`agent still running after ${timeoutMs} ms; stderr:\n${err}`)), timeoutMs);
      });
      try {
        return await Promise.race([exited, timeout]);
      } finally {
        clearTimeout(timer);
      }
    },
    async kill() {
      if (!done) child.kill("SIGKILL");
      await exited;
    },
  };
  children.add(handle);
  return handle;
}
