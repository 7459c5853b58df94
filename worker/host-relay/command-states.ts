import type { CommandState, ResponseStatus } from "../../schemas/index.ts";
import { TERMINAL_STATES } from "../../schemas/index.ts";

/**
 * The command state machine, whole: which moves exist, which states are final, and what a late
 * response means. Pure: storage, frames, operations and the JobCoordinator ask it, and it is
 * table-tested on its own (test/worker/host-relay/command-states.test.ts).
 *
 *   queued ──ack──▶ delivered ──status──▶ running ──response──▶ succeeded | failed | timed_out | cancelled
 *     │                 └──────────────response────────────────▲
 *     ├─ never sent: cancel ─▶ cancelled        expires_at passed ─▶ expired
 *     ├─ attempts spent ─▶ dead_lettered ─requeue─▶ queued
 *     └─ sent at least once / delivered / running: cancel, or execution deadline with the agent
 *        connected ─▶ cancelling ─response─▶ whatever the agent reports
 *   delivered | running | cancelling past the execution deadline, agent away ─▶ timed_out
 *
 * "The API's word is the host's truth": a final state the relay reached without hearing from the
 * agent (expired, dead_lettered, cancelled, timed_out with no response) yields to the agent's
 * response when one arrives, and the history says so.
 */

/** What can happen to a command. */
export type CommandEvent =
  | { kind: "ack" }
  | { kind: "running" }
  | { kind: "response"; status: ResponseStatus }
  | { kind: "cancel" }
  | { kind: "expire" }
  | { kind: "attempts_spent" }
  | { kind: "deadline"; agentConnected: boolean }
  | { kind: "requeue" }
  | { kind: "agent_refused" }
  | { kind: "revoke" };

/** What the machine needs to know of a command. */
export interface CommandFacts {
  state: CommandState;
  /** Sent to an agent at least once (whether or not that send was refunded). */
  sent: boolean;
  /** The agent's response status, once one was recorded. */
  responseStatus: ResponseStatus | null;
}

export type Decision =
  /** Move to `to`; `detail` goes into the history. */
  | { move: true; to: CommandState; detail: string | null }
  /** No move. `note` (if any) is recorded in the history without a state change. */
  | { move: false; reason: string; note?: string };

const TERMINAL: ReadonlySet<CommandState> = new Set(TERMINAL_STATES);

export function isTerminal(state: CommandState): boolean {
  return TERMINAL.has(state);
}

/** States that hold a place on the host: counted in the queue depth. */
export function isActive(state: CommandState): boolean {
  return !TERMINAL.has(state);
}

/** The final states the relay can reach on its own: the only ones an agent's later response overrules. */
export const GIVE_UP_STATES: ReadonlySet<CommandState> = new Set<CommandState>(["expired", "dead_lettered", "cancelled", "timed_out"]);

/** The order of the states before a final one; a reported state never moves back along it. */
export const ACTIVE_ORDER: readonly CommandState[] = ["queued", "delivered", "running", "cancelling"];

/** A final state reached without the agent's word; the agent's response may still overrule it. */
export function relayGaveUp(f: CommandFacts): boolean {
  return f.responseStatus === null && GIVE_UP_STATES.has(f.state);
}

/** Where an agent's response leads. */
export const RESPONSE_STATE: Record<ResponseStatus, CommandState> = {
  success: "succeeded",
  failure: "failed",
  timeout: "timed_out",
  rejected: "failed",
  cancelled: "cancelled",
};

const stay = (reason: string, note?: string): Decision => (note === undefined ? { move: false, reason } : { move: false, reason, note });
const to = (state: CommandState, detail: string | null = null): Decision => ({ move: true, to: state, detail });

export function decide(f: CommandFacts, e: CommandEvent): Decision {
  switch (e.kind) {
    case "ack":
      if (f.state === "queued") return to("delivered");
      return stay(`ack while ${f.state}`);

    case "running":
      if (f.state === "queued") return to("running", "implied by a status frame (the ack was lost)");
      if (f.state === "delivered") return to("running");
      return stay(`status while ${f.state}`);

    case "response": {
      const next = RESPONSE_STATE[e.status];
      if (f.state === "queued") return to(next, `response from the agent (${e.status}); its ack was lost`);
      if (f.state === "delivered" || f.state === "running") return to(next, e.status === "rejected" ? "rejected by the agent" : null);
      if (f.state === "cancelling") return to(next, `response from the agent to the cancel: ${e.status}`);
      if (relayGaveUp(f)) return to(next, `response from the agent after the command was ${f.state}`);
      if (f.responseStatus === null) return stay("final already", `late response from the agent: ${e.status}`);
      return stay("response already recorded");
    }

    case "cancel":
      if (f.state === "queued" && !f.sent) return to("cancelled", "cancelled through the API before it was sent");
      if (f.state === "queued" || f.state === "delivered" || f.state === "running") {
        return to("cancelling", "cancel requested through the API; the agent's response decides the outcome");
      }
      if (f.state === "cancelling") return stay("already cancelling");
      return stay(`already ${f.state}`);

    case "expire":
      if (f.state === "queued") {
        return to("expired", f.sent ? "delivery deadline passed before the agent acked it" : "delivery deadline passed");
      }
      return stay(`expiry while ${f.state}`);

    case "attempts_spent":
      if (f.state === "queued") return to("dead_lettered");
      return stay(`attempts spent while ${f.state}`);

    case "deadline":
      if (f.state === "delivered" || f.state === "running") {
        return e.agentConnected
          ? to("cancelling", "execution deadline passed; cancel sent to the agent")
          : to("timed_out", "no response from the agent");
      }
      if (f.state === "cancelling") return to("timed_out", "no response from the agent to the cancel");
      return stay(`deadline while ${f.state}`);

    case "requeue":
      if (f.state === "dead_lettered") return to("queued", "requeued from dead letters");
      return stay(`requeue while ${f.state}`);

    case "agent_refused":
      if (f.state === "queued") return to("failed");
      return stay(`agent refusal while ${f.state}`);

    case "revoke":
      if (f.state === "queued" && !f.sent) return to("cancelled", "host revoked");
      // Sent but never acked: the agent may hold it, so "cancelled" could be untrue. The relay gives up
      // delivering (a give-up state: a response, should one ever come, still records the truth).
      if (f.state === "queued") return to("expired", "host revoked before the agent acked it; the agent may have received it");
      return stay(`revoked while ${f.state}`);
  }
}

/** The cancel REST answer for a decision: 200 cancelled at once, 202 cancelling, or 409. */
export function cancelOutcome(d: Decision, current: CommandState): "cancelled" | "cancelling" | "refused" {
  if (d.move) return d.to === "cancelled" ? "cancelled" : "cancelling";
  return current === "cancelling" ? "cancelling" : "refused";
}
