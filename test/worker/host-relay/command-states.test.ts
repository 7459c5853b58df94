import { describe, expect, it } from "vitest";
import { CommandState as CommandStateSchema } from "../../../schemas/index.ts";
import { type CommandEvent, decide, isTerminal, relayGaveUp } from "../../../worker/host-relay/command-states.ts";

import { f, TRANSITIONS, target } from "../../shared/command-state-cases.ts";

describe("command state machine", () => {
  it.each(TRANSITIONS)("%s", (_name, facts, event, expected) => {
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
