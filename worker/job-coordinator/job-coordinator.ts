import { DurableObject } from "cloudflare:workers";
import type { JobHostState } from "../../schemas/index.ts";
import type { Env } from "../env.ts";
import type { JobContext } from "./context.ts";
import { runRound } from "./dispatch.ts";
import * as ops from "./operations.ts";
import { JobStorage } from "./storage.ts";
import { type JobHostUpdate, applyHostUpdates } from "./updates.ts";

export type { JobHostUpdate } from "./updates.ts";

/**
 * One per job (named by job_id): dispatches the job's command to each host's HostRelay within its
 * rollout limits, in alarm-driven batches, and keeps every host's state in its own SQLite.
 * Hooks and RPC methods only hand off to the named handlers in this folder.
 */
export class JobCoordinator extends DurableObject<Env> {
  private readonly rc: JobContext;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    const store = new JobStorage(ctx.storage);
    this.rc = { ctx, env, store, alarmAt: undefined, rounds: Promise.resolve() };
    ctx.blockConcurrencyWhile(async () => store.openExisting());
  }

  override async alarm(): Promise<void> {
    this.rc.alarmAt = null;
    await runRound(this.rc);
  }

  // ---- RPC, called by the Worker's routes ----

  create(input: ops.CreateJobInput) {
    return ops.create(this.rc, input, Date.now());
  }

  view(jobId: string) {
    return ops.view(this.rc, jobId);
  }

  listHosts(jobId: string, opts: { states?: JobHostState[] | undefined; limit: number; cursor?: string | undefined }) {
    return ops.listHosts(this.rc, jobId, opts);
  }

  cancel(jobId: string, by: string) {
    return ops.cancel(this.rc, jobId, by, Date.now());
  }

  // ---- RPC, called by HostRelays through their outbox ----

  /** Batched, in order per host, retried until it returns; repeats are harmless. */
  async hostUpdates(updates: JobHostUpdate[]): Promise<void> {
    applyHostUpdates(this.rc, updates, Date.now());
  }
}
