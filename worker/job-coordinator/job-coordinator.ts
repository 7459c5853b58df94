import { DurableObject } from "cloudflare:workers";
import type { Env } from "../env.ts";

/** What a HostRelay reports about a job's command on one host. */
export interface JobHostUpdate {
  host_id: string;
  message_id: string;
  state: string;
  response_status: string | null;
  detail: string | null;
  at: number;
}

/** One per job: dispatches the job's command to each host's HostRelay within its rollout limits. */
export class JobCoordinator extends DurableObject<Env> {
  async hostUpdates(updates: JobHostUpdate[]): Promise<void> {
    void updates;
  }
}
