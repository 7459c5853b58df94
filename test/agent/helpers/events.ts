import type { Agent, AgentEventMap } from "../../../agent/index.ts";

type Name = keyof AgentEventMap;
type Payload<N extends Name> = AgentEventMap[N][0];

const NAMES: Name[] = [
  "connecting",
  "connected",
  "welcome",
  "disconnected",
  "reconnect_scheduled",
  "command",
  "ack_sent",
  "execution_started",
  "cancel",
  "response",
  "outbox_acked",
  "frame_invalid",
  "renewed",
  "renewal_failed",
  "revoked",
  "stopped",
  "clock_skew",
  "cert_expired",
  "storage_fault",
  "storage_recovered",
];

/** Records an agent's events from now on, and waits on past or future ones with a deadline. */
export class EventRecorder {
  readonly log: { name: Name; data: unknown }[] = [];
  #waiters: (() => void)[] = [];

  constructor(agent: Pick<Agent, "events">) {
    for (const name of NAMES) {
      agent.events.on(name, (data: unknown) => {
        this.log.push({ name, data });
        for (const w of [...this.#waiters]) w();
      });
    }
  }

  all<N extends Name>(name: N): Payload<N>[] {
    return this.log.filter((e) => e.name === name).map((e) => e.data as Payload<N>);
  }

  /** The `nth` (1-based) event `name` matching `pred`. */
  waitFor<N extends Name>(name: N, pred: (d: Payload<N>) => boolean = () => true, timeoutMs = 10_000, nth = 1): Promise<Payload<N>> {
    return new Promise((resolve, reject) => {
      const check = () => {
        const hit = this.all(name).filter(pred)[nth - 1];
        if (hit === undefined) return false;
        clearTimeout(timer);
        this.#waiters = this.#waiters.filter((w) => w !== check);
        resolve(hit);
        return true;
      };
      const timer = setTimeout(() => {
        this.#waiters = this.#waiters.filter((w) => w !== check);
        reject(
          new Error(`timed out after ${timeoutMs} ms waiting for event ${name} #${nth}; saw ${this.log.map((e) => e.name).join(", ")}`),
        );
      }, timeoutMs);
      if (!check()) this.#waiters.push(check);
    });
  }
}
