import { z } from "zod";
import { PackageOperationParameters, ShellParameters, SystemInfoParameters } from "./commands.ts";
import { Defaults, Limits } from "./constants.ts";
import { Rfc3339, Tag, Uuid } from "./primitives.ts";
import { CommandState, commaList, Page, PageQuery, TERMINAL_STATES } from "./rest.ts";

const COUNT_OR_PERCENT = 'expected a whole number or a percentage such as "25%"';

/** A count, or a percentage of the job's hosts ("25%"), rounded up and at least 1. */
export const CountOrPercent = z
  .union(
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
  )
  .meta({
    description: 'A count, or a percentage of the job\'s hosts ("25%", over 0% and at most 100%), rounded up and at least 1',
  });
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
    host_ids: z
      .array(Uuid)
      .min(1)
      .max(Limits.MAX_JOB_HOST_IDS)
      .optional()
      .describe("These hosts, dispatched in the order given; each must be registered and not revoked"),
    tags: z.array(Tag).min(1).max(64).optional().describe("The non-revoked hosts carrying these tags"),
    match: z.enum(["any", "all"]).optional().describe("With `tags`: hosts with any of them (default) or with all of them"),
    all: z.literal(true).optional().describe("Every non-revoked host"),
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
  })
  .meta({
    id: "JobTarget",
    description:
      "The hosts a job runs on: exactly one of `host_ids`, `tags` (with `match`) or `all: true`. Revoked hosts are never targeted.",
  });
export type JobTarget = z.infer<typeof JobTarget>;

const jobFields = {
  target: JobTarget,
  timeout: z
    .int()
    .min(Limits.MIN_TIMEOUT_S)
    .max(Limits.MAX_TIMEOUT_S)
    .optional()
    .describe(`Execution timeout on each agent, seconds. Default ${Defaults.TIMEOUT_S}.`),
  expires_at: Rfc3339.optional().describe(
    "Delivery deadline of every host's copy; mutually exclusive with `expires_in`. Default: 24 h after acceptance.",
  ),
  expires_in: z
    .int()
    .min(1)
    .max(Limits.MAX_EXPIRES_IN_S)
    .optional()
    .describe("Delivery deadline in seconds from acceptance (the same instant for every host); mutually exclusive with `expires_at`."),
  max_attempts: z
    .int()
    .min(1)
    .max(Limits.MAX_ATTEMPTS)
    .optional()
    .describe(`Sends without an ack before a host's copy is dead-lettered. Default ${Defaults.MAX_ATTEMPTS}.`),
  max_concurrency: CountOrPercent.optional().describe(
    'Hosts dispatched and not yet final at once: a number ≥ 1 or a percentage of the hosts ("25%"). Default: all at once.',
  ),
  max_errors: CountOrPercent.optional().describe(
    'Errors tolerated; one more stops the rollout: a number or a percentage of the hosts ("10%"). Default: no limit.',
  ),
};

/** Body of `POST /api/jobs`. */
export const JobRequest = z
  .discriminatedUnion("command_type", [
    z
      .strictObject({ command_type: z.literal("package_operation"), parameters: PackageOperationParameters, ...jobFields })
      .meta({ id: "PackageOperationJobRequest" }),
    z
      .strictObject({ command_type: z.literal("system_info"), parameters: SystemInfoParameters.default({}), ...jobFields })
      .meta({ id: "SystemInfoJobRequest" }),
    z.strictObject({ command_type: z.literal("shell"), parameters: ShellParameters, ...jobFields }).meta({ id: "ShellJobRequest" }),
  ])
  .superRefine((v, ctx) => {
    if (v.expires_at !== undefined && v.expires_in !== undefined) {
      ctx.addIssue({ code: "custom", path: ["expires_in"], message: "give expires_at or expires_in, not both" });
    }
    if (v.max_concurrency === 0) ctx.addIssue({ code: "custom", path: ["max_concurrency"], message: "max_concurrency must be at least 1" });
  })
  .meta({
    id: "JobRequest",
    description: "One command for many hosts: the command, its target, delivery controls and rollout limits",
  });
export type JobRequest = z.infer<typeof JobRequest>;

/**
 * A host's part in a job: `pending` until dispatched; `waiting` when the host was offline at its
 * turn, so the job holds its command (durably) until the agent connects; `dispatching` while its
 * HostRelay is being asked to queue it, then its command's state; `skipped` if the host could not
 * take it (revoked or unregistered after the job was accepted).
 */
export const JobHostState = z.enum(["pending", "waiting", "dispatching", "skipped", ...CommandState.options]).meta({
  id: "JobHostState",
  description:
    "A host's part in a job: pending until dispatched; waiting while the host is offline (the job holds its command until the agent connects); dispatching while its relay is asked to queue it, then its command's state; skipped if the host could not take it",
});
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
export const JobState = z.enum(["dispatching", "running", "stopping", "completed", "stopped", "cancelled"]).meta({
  id: "JobState",
  description:
    "dispatching: hosts still wait for a slot; running: every host has its command, some are not final; stopping: cancelled or over max_errors, waiting for delivered commands to finish; completed, stopped, cancelled: every host is final",
});
export type JobState = z.infer<typeof JobState>;

export const JobAccepted = z
  .object({ job_id: Uuid.describe("The job's id"), state: JobState, hosts: z.int().describe("Hosts the target resolved to") })
  .meta({ id: "JobAccepted", description: "A job taken for dispatch (or the first one, for a repeated Idempotency-Key)" });
export type JobAccepted = z.infer<typeof JobAccepted>;

/** `POST /api/jobs/{job_id}/cancel` body (optional). */
export const JobCancelRequest = z
  .strictObject({
    abort_running: z
      .boolean()
      .default(false)
      .describe(
        "Also cancel commands already delivered or running, through the host command cancel (the agent kills the process group and reports). Default false: delivered commands run to their end, because killing a package manager mid-install can break a host.",
      ),
  })
  .meta({ id: "JobCancelRequest", description: "How far a job's cancel reaches" });
export type JobCancelRequest = z.infer<typeof JobCancelRequest>;

export const JobView = z
  .object({
    job_id: Uuid,
    state: JobState,
    command_type: z.string(),
    parameters: z.record(z.string(), z.unknown()).describe("The command's parameters"),
    target: z
      .record(z.string(), z.unknown())
      .describe("The target as resolved: `host_ids` (or `host_ids_count` for long lists), `tags` with `match`, or `all`"),
    created_at: Rfc3339,
    created_by: z.string().describe("Subject of the token that started it"),
    expires_at: Rfc3339.describe("Delivery deadline of every host's copy"),
    finished_at: Rfc3339.nullable().describe("When every host became final"),
    hosts: z.int().describe("Hosts in the job"),
    max_concurrency: z.int().describe("Hosts dispatched and not yet final at once"),
    max_errors: z.int().nullable().describe("Errors tolerated before the rollout stops; null: no limit"),
    counts: z.record(z.string(), z.int()).describe("Hosts per state (every state, zeros included)"),
    errors: z.int().describe("failed + timed_out + dead_lettered"),
    completion: z.number().describe("Hosts in a final state / all hosts, 0..1"),
    stop_reason: z.string().nullable().describe("Why the rollout stopped early, if it did"),
  })
  .meta({ id: "JobView", description: "A job: state, hosts per state, errors and completion" });
export type JobView = z.infer<typeof JobView>;

export const JobHostView = z
  .object({
    host_id: Uuid,
    state: JobHostState,
    message_id: Uuid.nullable().describe("The host's command, once dispatched"),
    dispatched_at: Rfc3339.nullable(),
    updated_at: Rfc3339,
    response_status: z.string().nullable().describe("The agent's verdict, once it answered"),
    detail: z.string().nullable().describe("Why, when there is more to say"),
  })
  .meta({ id: "JobHostView", description: "One host's part in a job" });
export type JobHostView = z.infer<typeof JobHostView>;

/** A row of `GET /api/jobs`: the job's record; its live state is at `GET /api/jobs/{job_id}`. */
export const JobSummary = z
  .object({
    job_id: Uuid,
    created_at: Rfc3339,
    created_by: z.string().describe("Subject of the token that started it"),
    command_type: z.string(),
    host_count: z.int().describe("Hosts in the job"),
  })
  .meta({ id: "JobSummary", description: "A job as listed: its record; the live state is at `GET /api/jobs/{job_id}`" });
export type JobSummary = z.infer<typeof JobSummary>;

export const JobListQuery = z.strictObject({ ...PageQuery });

export const JobHostsQuery = z.strictObject({
  ...PageQuery,
  state: commaList(JobHostState).optional().describe("Only hosts in these states: comma-separated, e.g. `queued,delivered`"),
});

export const JobPage = Page(JobSummary, "JobPage");
export const JobHostPage = Page(JobHostView, "JobHostPage");

// ---- tags ----

/** Body of `PUT /api/hosts/{host_id}/tags`: the host's complete new tag set. */
export const HostTagsUpdate = z
  .strictObject({ tags: z.array(Tag).max(64).describe("Every tag the host should carry (at most 64)") })
  .meta({ id: "HostTagsUpdate", description: "A host's complete new tag set" });
export type HostTagsUpdate = z.infer<typeof HostTagsUpdate>;

export const HostTags = z
  .object({ host_id: Uuid, tags: z.array(z.string()).describe("The host's tags, sorted") })
  .meta({ id: "HostTags", description: "A host's tags" });
export type HostTags = z.infer<typeof HostTags>;

/** A tag and how many non-revoked hosts carry it. */
export const TagCount = z
  .object({ tag: z.string(), hosts: z.int().describe("Non-revoked hosts carrying the tag") })
  .meta({ id: "TagCount", description: "A tag in use" });
export type TagCount = z.infer<typeof TagCount>;

export const TagListQuery = z.strictObject({ ...PageQuery });

export const TagPage = Page(TagCount, "TagPage");
