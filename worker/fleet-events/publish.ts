import type { FleetEvent } from "../../schemas/index.ts";
import { FleetEventInput, MAX_EVENT_OUTPUT_CHARS } from "../../schemas/index.ts";
import type { EventsContext } from "./context.ts";
import { fanOut } from "./subscribers.ts";

/**
 * Stores each valid event (stamping its offset), fans the batch out to matching subscribers and
 * enforces the history bounds. Synchronous, so a batch is stored and sent as one step. An invalid
 * event is logged and skipped rather than refused: refusing would make its publisher retry it forever.
 */
export function publish(ec: EventsContext, inputs: unknown, now: number): FleetEvent[] {
  const stored: FleetEvent[] = [];
  for (const input of Array.isArray(inputs) ? inputs : []) {
    const parsed = FleetEventInput.safeParse(input);
    if (!parsed.success) {
      const why = parsed.error.issues.map((i) => `${i.path.join(".") || "(root)"}: ${i.message}`).join("; ");
      console.error(`dropping an invalid fleet event: ${why.slice(0, 500)}`);
      continue;
    }
    const event = parsed.data;
    if (event.output !== undefined && event.output.length > MAX_EVENT_OUTPUT_CHARS) {
      event.output = event.output.slice(0, MAX_EVENT_OUTPUT_CHARS);
      event.output_truncated = true;
    }
    stored.push(ec.store.append(event, now));
  }
  fanOut(ec, stored);
  ec.store.prune(now, ec.bounds);
  scheduleAlarm(ec);
  return stored;
}

/** The alarm: drops events past the age bound even when nothing is published. */
export function pruneDue(ec: EventsContext, now: number): void {
  ec.alarmAt = null;
  ec.store.prune(now, ec.bounds);
  scheduleAlarm(ec);
}

/** Points the single alarm at the moment the oldest kept event ages out (none with no events). */
export function scheduleAlarm(ec: EventsContext): void {
  const oldest = ec.store.oldestAt();
  const next = oldest === null ? null : oldest + ec.bounds.maxAgeMs;
  if (next === ec.alarmAt) return;
  if (next === null) void ec.ctx.storage.deleteAlarm();
  else void ec.ctx.storage.setAlarm(next);
  ec.alarmAt = next;
}
