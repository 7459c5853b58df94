import { describe, expect, it } from "vitest";
import type { JobHostState } from "../../../schemas/index.ts";
import { mayMove } from "../../../worker/job-coordinator/states.ts";

describe("a job host follows its command's state machine", () => {
  it.each<[JobHostState, JobHostState, boolean]>([
    ["pending", "dispatching", true],
    ["dispatching", "queued", true],
    ["queued", "delivered", true],
    ["running", "cancelling", true],
    ["cancelling", "cancelled", true],
    ["cancelling", "succeeded", true],
    // A stale report never moves a host back.
    ["running", "queued", false],
    ["cancelling", "running", false],
    ["succeeded", "failed", false],
    // The relay gave up; the agent's later answer is the truth.
    ["expired", "succeeded", true],
    ["dead_lettered", "failed", true],
    ["timed_out", "succeeded", true],
    ["cancelled", "succeeded", true],
    ["skipped", "succeeded", false],
  ])("%s → %s: %s", (from, to, allowed) => {
    expect(mayMove(from, 1, to, 2)).toBe(allowed);
  });

  it("a requeued dead letter is queued again only by a newer report", () => {
    expect(mayMove("dead_lettered", 10, "queued", 11)).toBe(true);
    expect(mayMove("dead_lettered", 10, "queued", 9)).toBe(false);
  });
});
