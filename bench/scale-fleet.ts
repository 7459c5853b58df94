/**
 * The scale benchmark's clients: idle agents (or MQTT clients) spread over child processes
 * (bench/scale-client.ts), with the state of each one as their events report it.
 */
import { type ChildProcess, fork } from "node:child_process";
import path from "node:path";
import type { AgentSpec, ClientReply, ClientRequest } from "./scale-client.ts";

export type FleetStart =
  | {
      kind: "agents";
      url: string;
      caPem: string;
      keyPem: string;
      agents: AgentSpec[];
      backoff: { baseMs: number; capMs: number; stableAfterMs: number };
    }
  | { kind: "mqtt"; port: number; count: number; keepaliveS: number };

export class Fleet {
  readonly size: number;
  /** Epoch ms of every welcome (CONNACK), in arrival order at this process. */
  readonly ups: number[] = [];
  readonly downs: number[] = [];
  readonly failed: Record<string, number> = {};
  /** Command ids received by the agents (with repeats, as resends arrive). */
  readonly commands = new Set<string>();
  readonly #online: Uint8Array;
  #onlineCount = 0;
  /** The index of every agent's child. */
  readonly #owner: number[] = [];
  readonly #children: ChildProcess[] = [];

  private constructor(size: number) {
    this.size = size;
    this.#online = new Uint8Array(size);
  }

  get online(): number {
    return this.#onlineCount;
  }

  isOnline(i: number): boolean {
    return this.#online[i] === 1;
  }

  /** Forks `processes` children and gives each a contiguous share of the fleet. */
  static start(start: FleetStart, processes: number, dialConcurrency: number): Fleet {
    const size = start.kind === "agents" ? start.agents.length : start.count;
    const fleet = new Fleet(size);
    const per = Math.ceil(size / processes);
    for (let p = 0; p < processes && p * per < size; p++) {
      const lo = p * per;
      const hi = Math.min(size, lo + per);
      const child = fork(path.join(import.meta.dirname, "scale-client.ts"), [], {
        execArgv: ["--experimental-strip-types", "--no-warnings=ExperimentalWarning", "--max-old-space-size=4096"],
        stdio: ["ignore", "inherit", "inherit", "ipc"],
      });
      fleet.#children.push(child);
      for (let i = lo; i < hi; i++) fleet.#owner[i] = p;
      child.on("message", (m: ClientReply) => fleet.#onReply(m));
      const concurrency = Math.max(1, Math.round(dialConcurrency / processes));
      const request: ClientRequest =
        start.kind === "agents"
          ? {
              type: "agents",
              url: start.url,
              caPem: start.caPem,
              keyPem: start.keyPem,
              agents: start.agents.slice(lo, hi),
              dialConcurrency: concurrency,
              backoff: start.backoff,
            }
          : {
              type: "mqtt",
              port: start.port,
              ids: Array.from({ length: hi - lo }, (_, k) => lo + k),
              dialConcurrency: concurrency,
              keepaliveS: start.keepaliveS,
            };
      child.send(request);
    }
    return fleet;
  }

  get pids(): number[] {
    return this.#children.map((c) => c.pid!);
  }

  /** Epoch ms of the first dial of any child (NaN before). */
  firstDial = Number.NaN;

  #onReply(m: ClientReply): void {
    if (m.type === "dialling") this.firstDial = Number.isNaN(this.firstDial) ? m.at : Math.min(this.firstDial, m.at);
    if (m.type !== "events") return;
    for (const [i, t] of m.up) {
      this.ups.push(t);
      if (this.#online[i] === 0) {
        this.#online[i] = 1;
        this.#onlineCount++;
      }
    }
    for (const [i, t] of m.down) {
      this.downs.push(t);
      if (this.#online[i] === 1) {
        this.#online[i] = 0;
        this.#onlineCount--;
      }
    }
    for (const [why, n] of Object.entries(m.failed)) this.failed[why] = (this.failed[why] ?? 0) + n;
    for (const id of m.commands) this.commands.add(id);
  }

  /** Resolves once `ok()` holds (looked at every 100 ms, as events arrive in batches), or rejects after `timeoutMs`. */
  until(ok: () => boolean, timeoutMs: number, what: string): Promise<void> {
    return new Promise((resolve, reject) => {
      const deadline = Date.now() + timeoutMs;
      const check = () => {
        if (ok()) {
          clearInterval(timer);
          resolve();
        } else if (Date.now() > deadline) {
          clearInterval(timer);
          reject(new Error(`${what}: not within ${Math.round(timeoutMs / 1000)} s`));
        }
      };
      const timer = setInterval(check, 100);
      check();
    });
  }

  #sendTo(indexes: number[], type: "pause" | "resume"): void {
    const byChild = new Map<number, number[]>();
    for (const i of indexes) {
      const p = this.#owner[i]!;
      byChild.set(p, [...(byChild.get(p) ?? []), i]);
    }
    for (const [p, list] of byChild) this.#children[p]!.send({ type, indexes: list } satisfies ClientRequest);
  }

  pause(indexes: number[]): void {
    this.#sendTo(indexes, "pause");
  }

  resume(indexes: number[]): void {
    this.#sendTo(indexes, "resume");
  }

  /** No more first dials. */
  halt(): void {
    for (const c of this.#children) if (c.connected) c.send({ type: "halt" } satisfies ClientRequest);
  }

  async stop(): Promise<void> {
    await Promise.all(
      this.#children.map(
        (c) =>
          new Promise<void>((resolve) => {
            if (c.exitCode !== null || c.signalCode !== null) return resolve();
            const timer = setTimeout(() => c.kill("SIGKILL"), 30_000);
            c.once("exit", () => {
              clearTimeout(timer);
              resolve();
            });
            if (c.connected) c.send({ type: "stop" } satisfies ClientRequest);
            else c.kill("SIGKILL");
          }),
      ),
    );
  }
}

/** Connects per whole second since `from` (epoch ms), for `seconds` seconds. */
export function perSecond(times: number[], from: number, seconds: number): number[] {
  const out = new Array<number>(Math.max(0, seconds)).fill(0);
  for (const t of times) {
    const s = Math.floor((t - from) / 1000);
    if (s >= 0 && s < out.length) out[s]!++;
  }
  return out;
}
