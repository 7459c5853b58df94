/**
 * The command state machine under Deno: the relay's pure modules import only schemas/zod and web
 * standards, so they run unchanged on another runtime. The full table lives in
 * test/worker/host-relay/command-states.test.ts; this is the core of it.
 */
import assert from "node:assert/strict";
import type { CommandState } from "../../schemas/index.ts";
import {
  type CommandEvent,
  type CommandFacts,
  cancelOutcome,
  decide,
  isTerminal,
  relayGaveUp,
} from "../../worker/host-relay/command-states.ts";

const f = (state: CommandState, sent = true, responseStatus: CommandFacts["responseStatus"] = null): CommandFacts => ({
  state,
  sent,
  responseStatus,
});
const target = (facts: CommandFacts, e: CommandEvent): CommandState | null => {
  const d = decide(facts, e);
  return d.move ? d.to : null;
};

Deno.test("delivery: queued → delivered → running → succeeded", () => {
  assert.equal(target(f("queued"), { kind: "ack" }), "delivered");
  assert.equal(target(f("delivered"), { kind: "running" }), "running");
  assert.equal(target(f("running"), { kind: "response", status: "success" }), "succeeded");
  assert.equal(target(f("delivered"), { kind: "response", status: "rejected" }), "failed");
  assert.equal(target(f("delivered"), { kind: "ack" }), null);
});

Deno.test("the API's word is the host's truth: a late response overrules a give-up state", () => {
  for (const state of ["expired", "dead_lettered", "cancelled", "timed_out"] as const) {
    assert.equal(relayGaveUp(f(state)), true, state);
    const d = decide(f(state), { kind: "response", status: "success" });
    assert.deepEqual(d, { move: true, to: "succeeded", detail: `response from the agent after the command was ${state}` });
  }
  // A second response is noted, never applied.
  const again = decide(f("succeeded", true, "success"), { kind: "response", status: "failure" });
  assert.equal(again.move, false);
});

Deno.test("cancel: never sent → cancelled at once; sent → cancelling; final → refused", () => {
  assert.equal(cancelOutcome(decide(f("queued", false), { kind: "cancel" }), "queued"), "cancelled");
  assert.equal(cancelOutcome(decide(f("running"), { kind: "cancel" }), "running"), "cancelling");
  assert.equal(cancelOutcome(decide(f("cancelling"), { kind: "cancel" }), "cancelling"), "cancelling");
  assert.equal(cancelOutcome(decide(f("failed", true, "failure"), { kind: "cancel" }), "failed"), "refused");
});

Deno.test("deadline and revocation", () => {
  assert.equal(target(f("running"), { kind: "deadline", agentConnected: true }), "cancelling");
  assert.equal(target(f("running"), { kind: "deadline", agentConnected: false }), "timed_out");
  assert.equal(target(f("queued", false), { kind: "revoke" }), "cancelled");
  assert.equal(target(f("queued", true), { kind: "revoke" }), "expired");
  assert.equal(target(f("dead_lettered"), { kind: "requeue" }), "queued");
  assert.equal(isTerminal("succeeded"), true);
  assert.equal(isTerminal("cancelling"), false);
});
