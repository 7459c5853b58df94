/**
 * The command state machine under Deno: the relay's pure modules import only schemas/zod and web
 * standards, so they run unchanged on another runtime. The full table lives in
 * test/shared/command-state-cases.ts and runs here whole, as in the workerd tests.
 */
import assert from "node:assert/strict";
import { cancelOutcome, decide, isTerminal, relayGaveUp } from "../../worker/host-relay/command-states.ts";
import { f, TRANSITIONS, target } from "../shared/command-state-cases.ts";

Deno.test("every row of the shared transition table", () => {
  for (const [name, facts, event, expected] of TRANSITIONS) assert.equal(target(facts, event), expected, name);
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
