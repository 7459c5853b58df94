/**
 * The command state machine's table: [case, facts, event, the state it moves to (null: no move)].
 * Shared by the workerd tests (test/worker/host-relay/command-states.test.ts) and the Deno run
 * (test/deno/command-states.test.ts), so both runtimes check the same rules.
 */
import type { CommandState } from "../../schemas/index.ts";
import { type CommandEvent, type CommandFacts, decide } from "../../worker/host-relay/command-states.ts";

export const f = (state: CommandState, sent = true, responseStatus: CommandFacts["responseStatus"] = null): CommandFacts => ({
  state,
  sent,
  responseStatus,
});

export const target = (facts: CommandFacts, e: CommandEvent): CommandState | null => {
  const d = decide(facts, e);
  return d.move ? d.to : null;
};

export const TRANSITIONS: [string, CommandFacts, CommandEvent, CommandState | null][] = [
  // Delivery.
  ["ack of a queued command", f("queued"), { kind: "ack" }, "delivered"],
  ["ack while delivered", f("delivered"), { kind: "ack" }, null],
  ["ack while cancelling", f("cancelling"), { kind: "ack" }, null],
  ["running after delivery", f("delivered"), { kind: "running" }, "running"],
  ["running while cancelling stays cancelling", f("cancelling"), { kind: "running" }, null],
  ["running of a final command", f("succeeded", true, "success"), { kind: "running" }, null],
  // Responses decide.
  ["success while running", f("running"), { kind: "response", status: "success" }, "succeeded"],
  ["failure while delivered", f("delivered"), { kind: "response", status: "failure" }, "failed"],
  ["timeout while running", f("running"), { kind: "response", status: "timeout" }, "timed_out"],
  ["rejected while delivered", f("delivered"), { kind: "response", status: "rejected" }, "failed"],
  ["cancelled while cancelling", f("cancelling"), { kind: "response", status: "cancelled" }, "cancelled"],
  ["success while cancelling: the truth wins", f("cancelling"), { kind: "response", status: "success" }, "succeeded"],
  ["success after the relay expired it", f("expired"), { kind: "response", status: "success" }, "succeeded"],
  ["success after dead-lettering", f("dead_lettered"), { kind: "response", status: "success" }, "succeeded"],
  ["success after the relay timed it out", f("timed_out"), { kind: "response", status: "success" }, "succeeded"],
  ["a second response keeps the first", f("succeeded", true, "success"), { kind: "response", status: "failure" }, null],
  ["a response after an agent timeout keeps it", f("timed_out", true, "timeout"), { kind: "response", status: "success" }, null],
  // Cancel.
  ["cancel of a never-sent command", f("queued", false), { kind: "cancel" }, "cancelled"],
  ["cancel of a sent, refunded command", f("queued", true), { kind: "cancel" }, "cancelling"],
  ["cancel of a delivered command", f("delivered"), { kind: "cancel" }, "cancelling"],
  ["cancel of a running command", f("running"), { kind: "cancel" }, "cancelling"],
  ["cancel while cancelling", f("cancelling"), { kind: "cancel" }, null],
  ["cancel of a final command", f("failed", true, "failure"), { kind: "cancel" }, null],
  // The relay's own bounds.
  ["expiry of a queued command", f("queued", false), { kind: "expire" }, "expired"],
  ["expiry does not touch a delivered command", f("delivered"), { kind: "expire" }, null],
  ["attempts spent", f("queued"), { kind: "attempts_spent" }, "dead_lettered"],
  ["deadline, agent connected", f("running"), { kind: "deadline", agentConnected: true }, "cancelling"],
  ["deadline, agent away", f("running"), { kind: "deadline", agentConnected: false }, "timed_out"],
  ["deadline of a delivered command, agent away", f("delivered"), { kind: "deadline", agentConnected: false }, "timed_out"],
  ["deadline while cancelling", f("cancelling"), { kind: "deadline", agentConnected: true }, "timed_out"],
  ["deadline of a queued command", f("queued"), { kind: "deadline", agentConnected: true }, null],
  ["requeue of a dead letter", f("dead_lettered"), { kind: "requeue" }, "queued"],
  ["requeue of anything else", f("failed"), { kind: "requeue" }, null],
  ["agent refusal of a queued frame", f("queued"), { kind: "agent_refused" }, "failed"],
  ["revocation of a never-sent command", f("queued", false), { kind: "revoke" }, "cancelled"],
  ["revocation of a sent, unacked command: the relay gives up, never claims cancelled", f("queued", true), { kind: "revoke" }, "expired"],
];
