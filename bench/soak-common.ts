/**
 * Pieces the fault soak (bench/soak.ts) shares between its two runs, ours and Mosquitto's: the seeded
 * PRNG, the fault schedule, a notifier to wait on state changes with a deadline (never a sleep as
 * synchronisation), and process helpers for SIGKILLing a process tree.
 */
import { readdirSync, readFileSync } from "node:fs";

/** The chaos proxy's seeded PRNG: a seed replays every random choice of the soak. */
export { prng } from "../test/helpers/chaos-proxy.ts";

export type Random = () => number;
export const between = (random: Random, lo: number, hi: number): number => lo + Math.floor(random() * (hi - lo + 1));

export type FaultKind = "server" | "agent" | "cut";

export interface Fault {
  /** Injected once this many commands have been accepted. */
  at: number;
  kind: FaultKind;
}

export interface FaultCounts {
  /** Relay (workerd + edge) or broker SIGKILLs, each followed by a restart on the same state. */
  server: number;
  /** Agent SIGKILLs, each followed by a restart on the same state directory. */
  agent: number;
  /** Spells of the chaos proxy cutting every agent connection. */
  cut: number;
}

/**
 * Fault points spread uniformly at random over the accepted-command count, between 2 % and 95 % of
 * `commands`, so every fault lands while commands are flowing; sorted by `at`.
 */
export function faultSchedule(random: Random, commands: number, counts: FaultCounts): Fault[] {
  const lo = Math.floor(commands * 0.02);
  const hi = Math.max(lo, Math.floor(commands * 0.95));
  const out: Fault[] = [];
  for (const kind of ["server", "agent", "cut"] as const) {
    for (let i = 0; i < counts[kind]; i++) out.push({ at: between(random, lo, hi), kind });
  }
  return out.sort((a, b) => a.at - b.at);
}

/** Wakes waiters when something changed; each wait is bounded. */
export class Notifier {
  #waiters = new Set<() => void>();

  notify(): void {
    for (const w of [...this.#waiters]) w();
  }

  /** Resolves once `pred()` holds (checked now and on every notify); rejects after `timeoutMs`. */
  until(pred: () => boolean, timeoutMs: number, what: string): Promise<void> {
    if (pred()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const check = () => {
        if (!pred()) return;
        finish();
        resolve();
      };
      const timer = setTimeout(() => {
        finish();
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`));
      }, timeoutMs);
      const finish = () => {
        clearTimeout(timer);
        this.#waiters.delete(check);
      };
      this.#waiters.add(check);
    });
  }
}

export function intEnv(name: string, fallback: number, min = 0): number {
  const raw = process.env[name];
  if (raw === undefined || raw === "") return fallback;
  const n = Number(raw.replace(/_/g, ""));
  if (!Number.isInteger(n) || n < min) throw new Error(`${name} must be an integer ≥ ${min}, got ${raw}`);
  return n;
}

/** A pause that is part of a fault's shape (how long a killed process stays down), not synchronisation. */
export const pause = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Every descendant of `root`, from /proc (comm may hold spaces or parentheses: fields after the last ')'). */
export function descendants(root: number): number[] {
  const children = new Map<number, number[]>();
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, "utf8");
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      const list = children.get(ppid) ?? [];
      list.push(Number(name));
      children.set(ppid, list);
    } catch {
      // exited meanwhile
    }
  }
  const out: number[] = [];
  const todo = [...(children.get(root) ?? [])];
  while (todo.length) {
    const pid = todo.shift()!;
    out.push(pid);
    todo.push(...(children.get(pid) ?? []));
  }
  return out;
}

/** Open file descriptors of `pid` (0 when it is gone). */
export function fdsOf(pid: number): number {
  try {
    return readdirSync(`/proc/${pid}/fd`).length;
  } catch {
    return 0;
  }
}

/** Resident set size in bytes from /proc/<pid>/status (0 when the process is gone). */
export function rssOf(pid: number): number {
  try {
    const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

/** True while `pid` exists and is not a zombie. */
export function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z";
  } catch {
    return false;
  }
}

/** SIGKILLs each pid (gone ones are skipped). */
export function killPids(pids: number[]): void {
  for (const pid of pids) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // already gone
    }
  }
}

/** Waits (polling /proc, bounded) until none of `pids` is alive. */
export async function waitGone(pids: number[], timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (pids.some(alive)) {
    if (Date.now() > deadline) throw new Error(`${what} still alive after ${timeoutMs} ms: ${pids.filter(alive).join(", ")}`);
    await pause(20);
  }
}

export const fmt = (n: number): string => n.toLocaleString("en-US");
