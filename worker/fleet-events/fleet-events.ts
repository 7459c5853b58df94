import { DurableObject } from "cloudflare:workers";
import type { FleetEventInput } from "../../schemas/index.ts";
import type { Env } from "../env.ts";

/** The fleet's live event stream: stamps offsets, keeps a bounded history, fans out to subscribers. */
export class FleetEvents extends DurableObject<Env> {
  /** Publishers (HostRelay, JobCoordinator) hand over events in their own order. */
  async publish(events: FleetEventInput[]): Promise<void> {
    void events;
  }
}
