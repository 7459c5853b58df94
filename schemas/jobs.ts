import { z } from "zod";
import { PackageOperationParameters, ShellParameters, SystemInfoParameters } from "./commands.ts";
import { Limits } from "./constants.ts";
import { Rfc3339, Tag, Uuid } from "./primitives.ts";
import { CommandState, commaList, PageQuery, TERMINAL_STATES } from "./rest.ts";

const COUNT_OR_PERCENT = 'expected a whole number or a percentage such as "25%"';

/** A count, or a percentage of the job's hosts ("25%"), rounded up and at least 1. */
export const CountOrPercent = z.union(
  [
    z.int({ error: COUNT_OR_PERCENT }).min(0).max(1_000_000),
    z
      .string()
      .regex(/^[0-9]{1,3}(\.[0-9]{1,6})?%$/, { message: COUNT_OR_PERCENT, abort: true })
      .refine((s) => Number.parseFloat(s) > 0 && Number.parseFloat(s) <= 100, {
        message: "percentages are between 0% (exclusive) and 100%",
      }),
  ],
  { error: COUNT_OR_PERCENT },
);
export type CountOrPercent = z.infer<typeof CountOrPercent>;

/** Resolves a count-or-percentage against `total`. */
export function resolveCount(value: CountOrPercent | undefined, total: number, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value === "number") return value;
  return Math.max(1, Math.ceil((Number.parseFloat(value) / 100) * total));
}

export const TARGET_KINDS = ["host_ids", "tags", "all"] as const;

/**
 * Exactly one way to pick the hosts: `host_ids` (dispatched in the order given), `tags` with
 * `match` any (default) or all, or `all: true` (every non-revoked host).
 */
export const JobTarget = z
  .strictObject({
    host_ids: z.array(Uuid).min(1).max(Limits.MAX_JOB_HOST_IDS).optional(),
    tags: z.array(Tag).min(1).max(64).optional(),
    match: z.enum(["any", "all"]).optional(),
    all: z.literal(true).optional(),
  })
  .superRefine((t, ctx) => {
    const kinds = TARGET_KINDS.filter((k) => t[k] !== undefined);
    if (kinds.length !== 1) {
      ctx.addIssue({
        code: "custom",
        path: [],
        message: kinds.length === 0 ? "give one of host_ids, tags or all" : `give one of host_ids, tags or all, not ${kinds.join(" and ")}`,
      });
    }
    if (t.match !== undefined && t.tags === undefined) {
      ctx.addIssue({ code: "custom", path: ["match"], message: "match applies to tags only" });
    }
  });
export type JobTarget = z.infer<typeof JobTarget>;

const jobFields = {
  target: JobTarget,
  timeout: z.int().min(Limits.MIN_TIMEOUT_S).max(Limits.MAX_TIMEOUT_S).optional(),
  /** Delivery deadline of every host's copy. Default: 24 h after acceptance. */
  expires_at: Rfc3339.optional(),
  /** Delivery deadline in seconds from acceptance (the same instant for every host). */
  expires_in: z.int().min(1).max(Limits.MAX_EXPIRES_IN_S).optional(),
  max_attempts: z.int().min(1).max(Limits.MAX_ATTEMPTS).optional(),
  /** Hosts dispatched and not yet final at once (a number ≥ 1 or "N%"). Default: all at once. */
  max_concurrency: CountOrPercent.optional(),
  /** Errors tolerated; one more stops the rollout (a number or "N%"). Default: no limit. */
  max_errors: CountOrPercent.optional(),
};

/** Body of `POST /api/jobs`. */
export const JobRequest = z
  .discriminatedUnion("command_type", [
    z.strictObject({ command_type: z.literal("package_operation"), parameters: PackageOperationParameters, ...jobFields }),
    z.strictObject({ command_type: z.literal("system_info"), parameters: SystemInfoParameters.default({}), ...jobFields }),
    z.strictObject({ command_type: z.literal("shell"), parameters: ShellParameters, ...jobFields }),
  ])
  .superRefine((v, ctx) => {
    if (v.expires_at !== undefined && v.expires_in !== undefined) {
      ctx.addIssue({ code: "custom", path: ["expires_in"], message: "give expires_at or expires_in, not both" });
    }
    if (v.max_concurrency === 0) ctx.addIssue({ code: "custom", path: ["max_concurrency"], message: "max_concurrency must be at least 1" });
  });
export type JobRequest = z.infer<typeof JobRequest>;

/**
 * A host's part in a job: `pending` until dispatched, `dispatching` while its HostRelay is being
 * asked to queue it, then its command's state; `skipped` if the host could not take it (revoked or
 * unregistered after the job was accepted).
 */
export const JobHostState = z.enum(["pending", "dispatching", "skipped", ...CommandState.options]);
export type JobHostState = z.infer<typeof JobHostState>;

/** Host states that never change again (but see the notes on expired/dead_lettered in the README). */
export const FINAL_JOB_HOST_STATES: readonly JobHostState[] = [...TERMINAL_STATES, "skipped"];
/** Host states that count against `max_errors`: the command was delivered (or retried to exhaustion) and did not succeed. */
export const ERROR_JOB_HOST_STATES: readonly JobHostState[] = ["failed", "timed_out", "dead_lettered"];

/**
 * `dispatching`: hosts are still waiting for a slot in the window; `running`: every host has its
 * command, some are not final; `stopping`: cancelled or over max_errors, waiting for commands
 * already delivered to finish; `completed` / `stopped` / `cancelled`: every host is final.
 */
export const JobState = z.enum(["dispatching", "running", "stopping", "completed", "stopped", "cancelled"]);
export type JobState = z.infer<typeof JobState>;

export const JobAccepted = z.object({ job_id: Uuid, state: JobState, hosts: z.int() });
export type JobAccepted = z.infer<typeof JobAccepted>;

/** `POST /api/jobs/{job_id}/cancel` body (optional). */
export const JobCancelRequest = z.strictObject({
  /**
   * Also cancel commands already delivered or running, through the same cancel the host command
   * route uses (the agent kills the process group and reports). Default false: delivered commands
   * run to their end, because killing a package manager mid-install can break a host.
   */
  abort_running: z.boolean().default(false),
});
export type JobCancelRequest = z.infer<typeof JobCancelRequest>;

export const JobView = z.object({
  job_id: Uuid,
  state: JobState,
  command_type: z.string(),
  parameters: z.record(z.string(), z.unknown()),
  target: z.record(z.string(), z.unknown()),
  created_at: Rfc3339,
  created_by: z.string(),
  /** Delivery deadline of every host's copy. */
  expires_at: Rfc3339,
  finished_at: Rfc3339.nullable(),
  hosts: z.int(),
  max_concurrency: z.int(),
  max_errors: z.int().nullable(),
  /** Hosts per state (every state, zeros included). */
  counts: z.record(z.string(), z.int()),
  /** failed + timed_out + dead_lettered. */
  errors: z.int(),
  /** Hosts in a final state / all hosts, 0..1. */
  completion: z.number(),
  stop_reason: z.string().nullable(),
});
export type JobView = z.infer<typeof JobView>;

export const JobHostView = z.object({
  host_id: Uuid,
  state: JobHostState,
  message_id: Uuid.nullable(),
  dispatched_at: Rfc3339.nullable(),
  updated_at: Rfc3339,
  response_status: z.string().nullable(),
  detail: z.string().nullable(),
});
export type JobHostView = z.infer<typeof JobHostView>;

/** A row of `GET /api/jobs`: the job's record; its live state is at `GET /api/jobs/{job_id}`. */
export const JobSummary = z.object({
  job_id: Uuid,
  created_at: Rfc3339,
  created_by: z.string(),
  command_type: z.string(),
  host_count: z.int(),
});
export type JobSummary = z.infer<typeof JobSummary>;

export const JobListQuery = z.strictObject({ ...PageQuery });

export const JobHostsQuery = z.strictObject({
  ...PageQuery,
  /** Comma-separated host states, e.g. `queued,delivered`. */
  state: commaList(JobHostState).optional(),
});

// ---- tags ----

/** Body of `PUT /api/hosts/{host_id}/tags`: the host's complete new tag set. */
export const HostTagsUpdate = z.strictObject({ tags: z.array(Tag).max(64) });
export type HostTagsUpdate = z.infer<typeof HostTagsUpdate>;

export const HostTags = z.object({ host_id: Uuid, tags: z.array(z.string()) });
export type HostTags = z.infer<typeof HostTags>;

/** A tag and how many non-revoked hosts carry it. */
export const TagCount = z.object({ tag: z.string(), hosts: z.int() });
export type TagCount = z.infer<typeof TagCount>;

export const TagListQuery = z.strictObject({ ...PageQuery });
