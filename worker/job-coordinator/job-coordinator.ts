import { DurableObject } from "cloudflare:workers";
import type { JobHostState } from "../../schemas/index.ts";
import { systemClock } from "../clock.ts";
import { DurableEntry } from "../durable-entry.ts";
import type { Env } from "../env.ts";
import { TestFaults } from "../test-faults.ts";
import type { JobContext } from "./context.ts";
import { runRound } from "./dispatch.ts";
import { scheduleAlarm } from "./lifecycle.ts";
import * as ops from "./operations.ts";
import { JobStorage } from "./storage.ts";
import { applyHostUpdates, type JobHostUpdate, wakeHosts } from "./updates.ts";

export type { JobHostUpdate } from "./updates.ts";

/**
 * One per job (named by job_id): dispatches the job's command to each host's HostRelay within its
 * rollout limits, in alarm-driven batches, and keeps every host's state in its own SQLite.
 * Hooks and RPC methods only hand off to the named handlers in this folder, each through the
 * DurableEntry, which logs what they throw and recomputes the alarm after every call.
 */
export class JobCoordinator extends DurableObject<Env> {
  private readonly rc: JobContext;
  private readonly entry: DurableEntry;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    const store = new JobStorage(ctx.storage);
    this.rc = {
      ctx,
      env,
      store,
      clock: systemClock,
      faults: new TestFaults(env),
      alarmAt: undefined,
      backoffUntil: null,
      rounds: Promise.resolve(),
      woken: new Set(),
    };
    this.entry = new DurableEntry("JobCoordinator", () => scheduleAlarm(this.rc, this.rc.clock.now()));
    ctx.blockConcurrencyWhile(async () => store.openExisting());
  }

  override async alarm(): Promise<void> {
    return this.entry.hook("alarm", () => {
      this.rc.alarmAt = null;
      return runRound(this.rc);
    });
  }

  // ---- RPC, called by the Worker's routes ----

  async create(input: ops.CreateJobInput) {
    const result = await this.entry.rpc("create", () => ops.create(this.rc, input, this.rc.clock.now()));
    // Test-only (inert unless TEST_FAULTS is set): the job is stored, yet the caller sees the call fail.
    this.rc.faults.check("job.create.after_store");
    return result;
  }

  /** For a retry with an Idempotency-Key: the first request's answer, or null if no job is stored here. */
  existing(jobId: string, requestHash: string) {
    return this.entry.rpc("existing", () => ops.existing(this.rc, jobId, requestHash));
  }

  view(jobId: string) {
    return this.entry.rpc("view", () => ops.view(this.rc, jobId));
  }

  listHosts(jobId: string, opts: { states?: JobHostState[] | undefined; limit: number; cursor?: string | undefined }) {
    return this.entry.rpc("listHosts", () => ops.listHosts(this.rc, jobId, opts));
  }

  cancel(jobId: string, by: string, opts: { abort_running?: boolean } = {}) {
    return this.entry.rpc("cancel", () => ops.cancel(this.rc, jobId, by, opts, this.rc.clock.now()));
  }

  // ---- RPC, called by HostRelays through their outbox ----

  /** Batched, in order per host, retried until it returns (a throw reaches the caller, which retries); repeats are harmless. */
  hostUpdates(updates: JobHostUpdate[]): Promise<void> {
    return this.entry.run("hostUpdates", () => applyHostUpdates(this.rc, updates, this.rc.clock.now()));
  }

  /** These hosts' agents said hello: the ones waiting in this job are dispatched now. Repeats are harmless. */
  wake(hostIds: string[]): Promise<void> {
    return this.entry.run("wake", () => wakeHosts(this.rc, hostIds, this.rc.clock.now()));
  }
}
