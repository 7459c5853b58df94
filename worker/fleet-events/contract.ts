import { z } from "zod";
import { EventFilter as EventFilterSchema } from "../../schemas/index.ts";

/** The FleetEvents object's contract with the Worker's routes and its publishers. */
export type { PublishedEvent } from "./publish.ts";

/** Set only by the Worker's `/api/events` route, on a request it builds itself after checking the token. */
export const INTERNAL_SUBSCRIPTION_HEADER = "x-fleet-events-subscription";

/** What the route hands the object: parsed filters and the resume point, if any. */
export const Subscription = z.strictObject({
  filter: EventFilterSchema,
  after: z.int().min(0).optional(),
  epoch: z.string().max(64).optional(),
});
export type Subscription = z.infer<typeof Subscription>;
