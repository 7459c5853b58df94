import { z } from "zod";
import { Rfc3339, Tag, Uuid } from "./primitives.ts";

export const FleetEventType = z
  .enum([
    "host.online",
    "host.offline",
    "command.state",
    "command.output",
    "job.progress",
    "alert.pending",
    "alert.firing",
    "alert.resolved",
  ])
  .meta({ id: "FleetEventType" });
export type FleetEventType = z.infer<typeof FleetEventType>;

/**
 * What a publisher (HostRelay, JobCoordinator) hands FleetEvents. FleetEvents stamps `offset`
 * and `epoch`. `tags` are the host's tags, carried so subscribers can filter by tag.
 */
export const FleetEventInput = z.object({
  type: FleetEventType,
  at: Rfc3339,
  host_id: Uuid.optional().describe("The host it concerns"),
  message_id: Uuid.optional().describe("command.*: the command"),
  job_id: Uuid.optional().describe("job.progress, and commands of a job: the job"),
  tags: z.array(z.string()).optional().describe("The host's tags"),
  state: z
    .string()
    .optional()
    .describe(
      'command.state: the new state; job.progress: the job\'s state; alert.pending: "pending" (waiting out the rule\'s `for`) or "inactive" (stopped before it fired); alert.firing: "firing"; alert.resolved: "resolved"',
    ),
  attempt: z.int().nullable().optional().describe("command.state: the delivery attempt of the transition"),
  detail: z.string().nullable().optional().describe("command.state: why, when there is more to say"),
  output: z.string().optional().describe("command.output: the chunk"),
  output_truncated: z
    .boolean()
    .optional()
    .describe("Set when the chunk was cut to the event limit (64 KiB); the command's stored output keeps all of it"),
  seq: z.int().nullable().optional().describe("command.output: the chunk's sequence number"),
  counts: z.record(z.string(), z.int()).optional().describe("job.progress: hosts per state"),
  errors: z.int().optional().describe("job.progress: failed + timed_out + dead_lettered"),
  completion: z.number().optional().describe("job.progress: hosts in a final state / all hosts, 0..1"),
  rule_id: Uuid.optional().describe("alert.*: the rule that raised the alert"),
  fingerprint: z
    .string()
    .regex(/^[0-9a-f]{16}$/)
    .optional()
    .describe("alert.*: the alert's identity (stable across firing and resolved)"),
  labels: z.record(z.string(), z.string()).optional().describe("alert.*: the alert's labels"),
  annotations: z.record(z.string(), z.string()).optional().describe("alert.*: the alert's annotations"),
});
export type FleetEventInput = z.infer<typeof FleetEventInput>;

/**
 * As delivered to subscribers: `offset` increases by one per stored event and is never reused
 * within an `epoch` (the identity of the event store; a new epoch means offsets start over).
 */
export const FleetEvent = FleetEventInput.extend({
  offset: z.int().min(1).describe("Position in the stream: one more per stored event, never reused within the epoch"),
  epoch: z.string().describe("Identity of the event store; a new epoch means offsets start over"),
}).meta({ id: "FleetEvent", description: "An event as delivered to subscribers, with the ids it concerns" });
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
export const EventStreamAck = z
  .strictObject({ type: z.literal("ack"), offset: z.int().min(0).describe("Everything up to this offset has been read") })
  .meta({ id: "EventStreamAck", description: "Subscriber → relay, optional: frees that much of the subscriber's send budget" });
export type EventStreamAck = z.infer<typeof EventStreamAck>;

/** Why a resume point could not be honoured. */
export const RefetchReason = z
  .enum([
    /** The client's epoch is not the stream's: the event store was recreated. */
    "epoch_changed",
    /** Events after the client's offset were pruned from the bounded history. */
    "history_pruned",
    /** The client's offset is past the newest event (it never came from this stream). */
    "offset_ahead",
  ])
  .meta({
    id: "RefetchReason",
    description:
      "epoch_changed: the event store was recreated; history_pruned: events after the offset left the bounded history; offset_ahead: the offset is past the newest event",
  });
export type RefetchReason = z.infer<typeof RefetchReason>;

/**
 * Control frames on the event stream; `offset` is the stream's newest offset when the frame was
 * sent, so everything up to it has been accounted for (delivered, or not matching the filters).
 * `ready`: replay done (or nothing to replay), live events follow. `refetch`: the requested resume
 * point is not covered (history too short or another epoch) — reload state over REST; live events
 * after `offset` follow, so resume from `offset`/`epoch` on the next reconnect.
 */
export const EventStreamControl = z
  .discriminatedUnion("type", [
    z
      .object({ type: z.literal("ready"), epoch: z.string(), offset: z.int().min(0) })
      .meta({ id: "EventStreamReady", description: "Replay done (or nothing to replay); live events follow" }),
    z.object({ type: z.literal("refetch"), epoch: z.string(), offset: z.int().min(0), reason: RefetchReason }).meta({
      id: "EventStreamRefetch",
      description: "The resume point is not covered: reload state over REST; live events after `offset` follow",
    }),
  ])
  .meta({
    id: "EventStreamControl",
    description: "A control frame; `offset` is the stream's newest offset when it was sent",
  });
export type EventStreamControl = z.infer<typeof EventStreamControl>;

/** Any text frame the relay sends on `/api/events` (besides `pong`). */
export const EventStreamFrame = z
  .union([EventStreamControl, FleetEvent])
  .meta({ id: "EventStreamFrame", description: "Any text frame the relay sends on `/api/events` (besides `pong`)" });
export type EventStreamFrame = z.infer<typeof EventStreamFrame>;

/**
 * Most values per filter. FleetEvents indexes subscribers by host, job and tag, so what one event
 * costs does not grow with these; they bound one subscriber's memory and the request (1,000 host
 * ids are 37 KB of query: past Cloudflare's 16 KB URL limit, so in production a URL holds about
 * 400; tags or a job reach larger sets).
 */
export const EventFilterLimits = { hosts: 1_000, jobs: 100, tags: 100 } as const;

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
