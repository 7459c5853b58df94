import { runInDurableObject } from "cloudflare:test";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { CommandState } from "../../../schemas/index.ts";
import { CommandStore } from "../../../worker/host-relay/command-store.ts";
import { HostRelayStorage } from "../../../worker/host-relay/storage.ts";
import { relayStub } from "../helpers.ts";
import { countingSql } from "./relay-helpers.ts";

/**
 * CommandStore remembers `nextDue` until its next write to `commands`. These runs check the
 * remembered answer against a fresh store's (which computes it from the table) after random
 * sequences of every write the relay makes.
 */

type Op =
  | { op: "insert"; expiresIn: number }
  | { op: "move"; pick: number; to: CommandState; deadlineIn: number | null }
  | { op: "markSent"; pick: number; retryIn: number }
  | { op: "setLimits"; pick: number; expiresIn: number }
  | { op: "cancelSent"; pick: number }
  | { op: "cancelAcked"; pick: number }
  | { op: "setDeadline"; pick: number; deadlineIn: number }
  | { op: "clearInFlight" }
  | { op: "prune"; retentionMs: number }
  | { op: "tick"; ms: number };

const pick = fc.nat();
const ms = fc.integer({ min: 0, max: 100_000 });
const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ op: fc.constant("insert" as const), expiresIn: ms }) },
  {
    weight: 4,
    arbitrary: fc.record({
      op: fc.constant("move" as const),
      pick,
      to: fc.oneof(fc.constantFrom(...CommandState.options), fc.constant("cancelling" as const)),
      deadlineIn: fc.option(ms),
    }),
  },
  { weight: 3, arbitrary: fc.record({ op: fc.constant("markSent" as const), pick, retryIn: ms }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant("setLimits" as const), pick, expiresIn: ms }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant("cancelSent" as const), pick }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant("cancelAcked" as const), pick }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant("setDeadline" as const), pick, deadlineIn: ms }) },
  { weight: 1, arbitrary: fc.constant({ op: "clearInFlight" as const }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant("prune" as const), retentionMs: ms }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant("tick" as const), ms }) },
);

const RETENTION_MS = 5_000;
const ACK_TIMEOUT_MS = 1_000;

describe("CommandStore.nextDue", () => {
  it("remembers the answer only until the next write: it always equals a fresh store's", async () => {
    await runInDurableObject(relayStub(crypto.randomUUID()), (_instance, state) => {
      new HostRelayStorage(state.storage).initialize();
      const sql = state.storage.sql;
      fc.assert(
        fc.property(fc.array(opArb, { minLength: 1, maxLength: 40 }), (ops) => {
          sql.exec("DELETE FROM transitions");
          sql.exec("DELETE FROM commands");
          const store = new CommandStore(sql);
          let now = 1_000_000;
          const ids: string[] = [];
          const row = (n: number) => (ids.length === 0 ? null : store.get(ids[n % ids.length]!));
          // Asked before the writes too, so a stale memo would be there to be caught.
          expect(store.nextDue(RETENTION_MS, ACK_TIMEOUT_MS)).toBeNull();
          for (const op of ops) {
            const r = op.op === "insert" || op.op === "clearInFlight" || op.op === "prune" || op.op === "tick" ? null : row(op.pick);
            switch (op.op) {
              case "insert": {
                const id = crypto.randomUUID();
                store.insert(
                  {
                    message_id: id,
                    command_type: "system_info",
                    parameters: {},
                    timeout_s: 60,
                    max_attempts: 3,
                    expires_at: now + op.expiresIn,
                    idempotency_key: null,
                    request_hash: null,
                    job_id: null,
                  },
                  now,
                );
                ids.push(id);
                break;
              }
              case "move":
                if (r) store.move(r, op.to, now, null, op.deadlineIn === null ? {} : { deadline_at: now + op.deadlineIn });
                break;
              case "markSent":
                if (r) store.markSent(r, r.attempts + 1, now, now + op.retryIn);
                break;
              case "setLimits":
                if (r) store.setLimits(r, now + op.expiresIn, 5);
                break;
              case "cancelSent":
                if (r) store.markCancelSent(r, crypto.randomUUID(), now);
                break;
              case "cancelAcked":
                if (r) store.markCancelAcked(r);
                break;
              case "setDeadline":
                if (r) store.setDeadline(r, now + op.deadlineIn);
                break;
              case "clearInFlight":
                store.clearInFlight();
                break;
              case "prune":
                store.prune(now, op.retentionMs);
                break;
              case "tick":
                now += op.ms;
                break;
            }
            expect(store.nextDue(RETENTION_MS, ACK_TIMEOUT_MS)).toBe(new CommandStore(sql).nextDue(RETENTION_MS, ACK_TIMEOUT_MS));
          }
        }),
        { numRuns: 100 },
      );
    });
  });

  it("asked again with no write in between, it runs no statement", async () => {
    await runInDurableObject(relayStub(crypto.randomUUID()), (_instance, state) => {
      new HostRelayStorage(state.storage).initialize();
      const counting = countingSql(state.storage.sql);
      const store = new CommandStore(counting.sql);
      const first = store.nextDue(RETENTION_MS, ACK_TIMEOUT_MS);
      expect(counting.statements()).toBe(1);
      expect(store.nextDue(RETENTION_MS, ACK_TIMEOUT_MS)).toBe(first);
      expect(store.queued()).toEqual([]);
      expect(store.nextDue(RETENTION_MS, ACK_TIMEOUT_MS)).toBe(first);
      // A read in between (queued) is one statement; nextDue added none.
      expect(counting.statements()).toBe(2);
      // Other arguments are another question: a terminal command's prune time moves with the retention.
      const id = crypto.randomUUID();
      const { row } = store.insert(
        {
          message_id: id,
          command_type: "system_info",
          parameters: {},
          timeout_s: 60,
          max_attempts: 3,
          expires_at: 9e12,
          idempotency_key: null,
          request_hash: null,
          job_id: null,
        },
        1_000,
      );
      // A cancel frame awaiting its ack is due at its send + the ack timeout, and not once acked.
      store.move(row, "cancelling", 1_500, null);
      store.markCancelSent(row, crypto.randomUUID(), 1_500);
      expect(store.nextDue(RETENTION_MS, ACK_TIMEOUT_MS)).toBe(1_500 + ACK_TIMEOUT_MS);
      store.markCancelAcked(row);
      expect(store.nextDue(RETENTION_MS, ACK_TIMEOUT_MS)).toBeNull();
      store.move(row, "cancelled", 2_000, null);
      expect(store.nextDue(RETENTION_MS, ACK_TIMEOUT_MS)).toBe(2_000 + RETENTION_MS);
      expect(store.nextDue(RETENTION_MS * 2, ACK_TIMEOUT_MS)).toBe(2_000 + RETENTION_MS * 2);
    });
  });
});
