import { z } from "zod";
import { Rfc3339, Uuid } from "./primitives.ts";

export const FleetEventType = z.enum(["host.online", "host.offline", "command.state", "command.output", "job.progress"]);
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
  /** command.state: the new state; job.progress: the job's state. */
  state: z.string().optional(),
  /** command.state: attempt and detail of the transition. */
  attempt: z.int().nullable().optional(),
  detail: z.string().nullable().optional(),
  /** command.output: the chunk and its sequence number. */
  output: z.string().optional(),
  seq: z.int().nullable().optional(),
  /** job.progress: hosts per state, errors and completion (0..1). */
  counts: z.record(z.string(), z.int()).optional(),
  errors: z.int().optional(),
  completion: z.number().optional(),
});
export type FleetEventInput = z.infer<typeof FleetEventInput>;

/** As delivered to subscribers: monotonic `offset` within an `epoch`. */
export const FleetEvent = FleetEventInput.extend({
  offset: z.int().min(1),
  epoch: z.string(),
});
export type FleetEvent = z.infer<typeof FleetEvent>;

/**
 * Control frames on the event stream. `ready`: replay done, live from here (`offset` is the last
 * one sent). `refetch`: the requested resume point is not covered (history too short or another
 * epoch) — reload state over REST, then continue from the given offset/epoch.
 */
export const EventStreamControl = z.discriminatedUnion("type", [
  z.object({ type: z.literal("ready"), epoch: z.string(), offset: z.int().min(0) }),
  z.object({ type: z.literal("refetch"), epoch: z.string(), offset: z.int().min(0), reason: z.string() }),
]);
export type EventStreamControl = z.infer<typeof EventStreamControl>;

export const EventStreamQuery = z.object({
  hosts: z.string().optional(),
  tags: z.string().optional(),
  jobs: z.string().optional(),
  types: z.string().optional(),
  after: z.coerce.number().int().min(0).optional(),
  epoch: z.string().max(64).optional(),
});
