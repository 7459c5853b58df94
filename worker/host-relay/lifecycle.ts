import type { CommandEvent } from "./command-states.ts";
import { decide, isTerminal } from "./command-states.ts";
import type { CommandRow, MoveExtra } from "./command-store.ts";
import { factsOf } from "./command-store.ts";
import type { RelayContext } from "./context.ts";
import { type Caused, recordFinalOutcome, recordTransition } from "./notify.ts";

/**
 * The only way a command changes state: the state machine (command-states.ts) decides, the command
 * store records the move, and the notifications it causes are written to the outbox in the same
 * synchronous step. Returns what the move caused, or null when the machine refused it (a refusal
 * that deserves a note, such as a late response, is written to the history).
 */
export function apply(
  rc: RelayContext,
  row: CommandRow,
  event: CommandEvent,
  now: number,
  opts: MoveExtra & { detail?: string } = {},
): Caused | null {
  const decision = decide(factsOf(row), event);
  if (!decision.move) {
    if (decision.note) rc.store.commands.addHistory(row.message_id, row.state, now, null, decision.note);
    return null;
  }
  const from = row.state;
  const t = rc.store.commands.move(row, decision.to, now, opts.detail ?? decision.detail, opts);
  // The dead-letter table lists exactly the commands in dead_lettered.
  if (decision.to === "dead_lettered") rc.store.deadLetters.add(row.message_id, now, t.detail ?? "attempts spent");
  if (from === "dead_lettered") rc.store.deadLetters.remove(row.message_id);
  if (isTerminal(decision.to)) recordFinalOutcome(rc, t, now);
  return recordTransition(rc, row, t, now);
}

/** `timeout + grace` from `from`: how long the relay waits for an executing command's response. */
export function executionDeadline(rc: RelayContext, row: CommandRow, from: number): number {
  return from + row.timeout_s * 1000 + rc.config.executionGraceMs;
}
