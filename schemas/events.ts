import { z } from "zod";
import { Rfc3339, Tag, Uuid } from "./primitives.ts";

export const FleetEventType = z.enum([
  "host.online",
  "host.offline",
  "command.state",
  "command.output",
  "job.progress",
  "alert.firing",
  "alert.resolved",
]);
export type FleetEventType = z.infer<typeof FleetEventType>;

/**
 * What a publisher (HostRelay, JobCoordinator) hands FleetEvents. FleetEvents stamps `offset`
 * and `epoch`. `tags` are the host's tags, carried so subscribers can filter by tag.
 */
export const FleetEventInput = z.object({
  type: FleetEventType,
  at: Rfc3339,
  host_id: Uuid.optional(),
  message_id: Uuid.optional(),
  job_id: Uuid.optional(),
  tags: z.array(z.string()).optional(),
  /** command.state: the new state; job.progress: the job's state; alert.*: "firing" or "resolved". */
  state: z.string().optional(),
  /** command.state: attempt and detail of the transition. */
  attempt: z.int().nullable().optional(),
  detail: z.string().nullable().optional(),
  /** command.output: the chunk and its sequence number. */
  output: z.string().optional(),
  /** Set by FleetEvents when it cut `output` to MAX_EVENT_OUTPUT_CHARS; the command keeps all of it. */
  output_truncated: z.boolean().optional(),
  seq: z.int().nullable().optional(),
  /** job.progress: hosts per state, errors and completion (0..1). */
  counts: z.record(z.string(), z.int()).optional(),
  errors: z.int().optional(),
  completion: z.number().optional(),
  /** alert.firing / alert.resolved: the rule, the alert's fingerprint (its identity), its labels and annotations. */
  rule_id: Uuid.optional(),
  fingerprint: z
    .string()
    .regex(/^[0-9a-f]{16}$/)
    .optional(),
  labels: z.record(z.string(), z.string()).optional(),
  annotations: z.record(z.string(), z.string()).optional(),
});
export type FleetEventInput = z.infer<typeof FleetEventInput>;

/**
 * As delivered to subscribers: `offset` increases by one per stored event and is never reused
 * within an `epoch` (the identity of the event store; a new epoch means offsets start over).
 */
export const FleetEvent = FleetEventInput.extend({
  offset: z.int().min(1),
  epoch: z.string(),
});
export type FleetEvent = z.infer<typeof FleetEvent>;

/** Most `output` one command.output event carries (the command's stored output is complete). */
export const MAX_EVENT_OUTPUT_CHARS = 64 * 1024;

/** Close codes FleetEvents uses on `/api/events` (besides 1000 when a subscriber closes). */
export const EventStreamCloseCode = {
  /** The socket refused a frame or errored; reconnect with `after` and `epoch` to catch up. */
  SEND_FAILED: 1011,
  /**
   * The subscriber fell too far behind: more bytes were sent to it than it has acknowledged
   * (`EventStreamAck`) by the relay's budget. Nothing past its last received frame was sent;
   * reconnect with `after` (the last offset it received) and `epoch` to resume without a gap.
   */
  TOO_FAR_BEHIND: 4008,
} as const;

/**
 * subscriber → relay, optional: "I have read everything up to `offset`". Frees that much of the
 * subscriber's send budget; a subscriber that never acknowledges is closed with
 * `TOO_FAR_BEHIND` once the budget is spent, and resumes from its offset.
 */
export const EventStreamAck = z.strictObject({ type: z.literal("ack"), offset: z.int().min(0) });
export type EventStreamAck = z.infer<typeof EventStreamAck>;

/** Why a resume point could not be honoured. */
export const RefetchReason = z.enum([
  /** The client's epoch is not the stream's: the event store was recreated. */
  "epoch_changed",
  /** Events after the client's offset were pruned from the bounded history. */
  "history_pruned",
  /** The client's offset is past the newest event (it never came from this stream). */
  "offset_ahead",
]);
export type RefetchReason = z.infer<typeof RefetchReason>;

/**
 * Control frames on the event stream; `offset` is the stream's newest offset when the frame was
 * sent, so everything up to it has been accounted for (delivered, or not matching the filters).
 * `ready`: replay done (or nothing to replay), live events follow. `refetch`: the requested resume
 * point is not covered (history too short or another epoch) — reload state over REST; live events
 * after `offset` follow, so resume from `offset`/`epoch` on the next reconnect.
 */
export const EventStreamControl = z.discriminatedUnion("type", [
  z.object({ type: z.literal("ready"), epoch: z.string(), offset: z.int().min(0) }),
  z.object({ type: z.literal("refetch"), epoch: z.string(), offset: z.int().min(0), reason: RefetchReason }),
]);
export type EventStreamControl = z.infer<typeof EventStreamControl>;

/** Any text frame the relay sends on `/api/events` (besides `pong`). */
export const EventStreamFrame = z.union([EventStreamControl, FleetEvent]);
export type EventStreamFrame = z.infer<typeof EventStreamFrame>;

/**
 * Most values per filter. A subscriber's filters live in its socket's attachment, which the
 * runtime caps at 2,048 bytes; these bounds keep the worst case (63-character tags) inside it.
 */
export const EventFilterLimits = { hosts: 20, jobs: 5, tags: 10 } as const;

/** Parsed subscriber filters: an absent list matches everything; a present one must match. */
export const EventFilter = z.strictObject({
  hosts: z.array(Uuid).min(1).max(EventFilterLimits.hosts).optional(),
  jobs: z.array(Uuid).min(1).max(EventFilterLimits.jobs).optional(),
  tags: z.array(Tag).min(1).max(EventFilterLimits.tags).optional(),
  types: z.array(FleetEventType).min(1).optional(),
});
export type EventFilter = z.infer<typeof EventFilter>;

/** A comma-separated query value → distinct items, each checked by `item`. */
function csv<T extends z.ZodType<string, string>>(item: T, max: number, lowerCase = false) {
  return z
    .string()
    .transform((s) => [...new Set(s.split(",").map((v) => (lowerCase ? v.trim().toLowerCase() : v.trim())))])
    .pipe(z.array(item).min(1).max(max));
}

/** Query of `GET /api/events`. */
export const EventStreamQuery = z
  .strictObject({
    hosts: csv(Uuid, EventFilterLimits.hosts, true).optional().describe(`Comma-separated host ids (at most ${EventFilterLimits.hosts})`),
    tags: csv(Tag, EventFilterLimits.tags)
      .optional()
      .describe(`Comma-separated host tags; an event matches if its host has any of them (at most ${EventFilterLimits.tags})`),
    jobs: csv(Uuid, EventFilterLimits.jobs, true).optional().describe(`Comma-separated job ids (at most ${EventFilterLimits.jobs})`),
    types: csv(FleetEventType, FleetEventType.options.length)
      .optional()
      .describe(`Comma-separated event types: ${FleetEventType.options.join(", ")}`),
    after: z
      .string()
      .regex(/^(0|[1-9][0-9]{0,14})$/, { message: "expected a non-negative integer offset" })
      .transform(Number)
      .optional()
      .describe("Resume after this offset (the last one seen); needs epoch"),
    epoch: z.string().min(1).max(64).optional().describe("The epoch the offset belongs to, from an earlier event or control frame"),
  })
  .superRefine((q, ctx) => {
    if (q.after !== undefined && q.epoch === undefined) {
      ctx.addIssue({ code: "custom", path: ["epoch"], message: "resuming with after needs the epoch it belongs to" });
    }
  });
export type EventStreamQuery = z.infer<typeof EventStreamQuery>;
