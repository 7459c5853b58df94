import { describe, expect, it } from "vitest";
import type { CommandState } from "../../../schemas/index.ts";
import { CommandState as CommandStateSchema } from "../../../schemas/index.ts";
import { type CommandEvent, type CommandFacts, decide, isTerminal, relayGaveUp } from "../../../worker/host-relay/command-states.ts";

const f = (state: CommandState, sent = true, responseStatus: CommandFacts["responseStatus"] = null): CommandFacts => ({
  state,
  sent,
  responseStatus,
});
const target = (facts: CommandFacts, e: CommandEvent): CommandState | null => {
  const d = decide(facts, e);
  return d.move ? d.to : null;
};

describe("command state machine", () => {
  it.each<[string, CommandFacts, CommandEvent, CommandState | null]>([
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
  ])("%s", (_name, facts, event, expected) => {
    expect(target(facts, event)).toBe(expected);
  });

  it("a late response to a final state the relay chose for itself is noted, not lost", () => {
    const d = decide(f("cancelled", false, null), { kind: "response", status: "success" });
    expect(d).toMatchObject({ move: true, to: "succeeded" });
    const kept = decide(f("succeeded", true, "success"), { kind: "response", status: "failure" });
    expect(kept).toEqual({ move: false, reason: "response already recorded" });
  });

  it("no event leaves a final state the agent reported, except nothing", () => {
    const events: CommandEvent[] = [
      { kind: "ack" },
      { kind: "running" },
      { kind: "response", status: "success" },
      { kind: "cancel" },
      { kind: "expire" },
      { kind: "attempts_spent" },
      { kind: "deadline", agentConnected: true },
      { kind: "requeue" },
      { kind: "agent_refused" },
      { kind: "revoke" },
    ];
    for (const state of CommandStateSchema.options.filter(isTerminal)) {
      for (const e of events) {
        // A dead letter's requeue is its one exit (it never has a response: a response moves it first).
        if (state === "dead_lettered" && e.kind === "requeue") continue;
        expect(target(f(state, true, "success"), e), `${state} + ${e.kind}`).toBeNull();
      }
    }
  });

  it("only final states without the agent's word yield to it", () => {
    expect(relayGaveUp(f("expired"))).toBe(true);
    expect(relayGaveUp(f("dead_lettered"))).toBe(true);
    expect(relayGaveUp(f("timed_out"))).toBe(true);
    expect(relayGaveUp(f("timed_out", true, "timeout"))).toBe(false);
    expect(relayGaveUp(f("failed"))).toBe(false);
    expect(relayGaveUp(f("running"))).toBe(false);
  });
});
