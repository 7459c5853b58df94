import { z } from "zod";
import { Limits } from "./constants.ts";
import { PackageOperationParameters, ShellParameters, SystemInfoParameters } from "./commands.ts";
import { Rfc3339, Tag, Uuid } from "./primitives.ts";
import { CommandState } from "./rest.ts";

/** A count, or a percentage of the job's hosts ("25%"), rounded up and at least 1. */
export const CountOrPercent = z.union([
  z.int().min(0).max(1_000_000),
  z
    .string()
    .regex(/^(100|[1-9]?[0-9])(\.[0-9]+)?%$/, { message: "expected a percentage such as \"10%\"" })
    .refine((s) => Number.parseFloat(s) > 0 && Number.parseFloat(s) <= 100, { message: "percentages are between 0% (exclusive) and 100%" }),
]);
export type CountOrPercent = z.infer<typeof CountOrPercent>;

/** Resolves a count-or-percentage against `total`. */
export function resolveCount(value: CountOrPercent | undefined, total: number, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value === "number") return value;
  return Math.max(1, Math.ceil((Number.parseFloat(value) / 100) * total));
}

/** Exactly one way to pick the hosts. */
export const JobTarget = z.union([
  z.strictObject({ host_ids: z.array(Uuid).min(1).max(Limits.MAX_JOB_HOST_IDS) }),
  z.strictObject({ tags: z.array(Tag).min(1).max(64), match: z.enum(["any", "all"]).default("any") }),
  z.strictObject({ all: z.literal(true) }),
]);
export type JobTarget = z.infer<typeof JobTarget>;

const jobFields = {
  target: JobTarget,
  timeout: z.int().min(Limits.MIN_TIMEOUT_S).max(Limits.MAX_TIMEOUT_S).optional(),
  expires_at: Rfc3339.optional(),
  expires_in: z.int().min(1).max(Limits.MAX_EXPIRES_IN_S).optional(),
  max_attempts: z.int().min(1).max(Limits.MAX_ATTEMPTS).optional(),
  /** Hosts running at once (a number or "N%"). Default: all at once. */
  max_concurrency: CountOrPercent.optional(),
  /** Errors tolerated before hosts not yet started are cancelled (a number or "N%"). Default: no limit. */
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

/** A host's part in a job: `pending` until dispatched, then its command's state; `skipped` if it could not take it. */
export const JobHostState = z.union([z.enum(["pending", "dispatching", "skipped"]), CommandState]);
export type JobHostState = z.infer<typeof JobHostState>;

export const JobState = z.enum(["dispatching", "running", "stopping", "completed", "stopped", "cancelled"]);
export type JobState = z.infer<typeof JobState>;

export const JobAccepted = z.object({ job_id: Uuid, state: JobState, hosts: z.int() });
export type JobAccepted = z.infer<typeof JobAccepted>;

export const JobView = z.object({
  job_id: Uuid,
  state: JobState,
  command_type: z.string(),
  parameters: z.record(z.string(), z.unknown()),
  target: z.record(z.string(), z.unknown()),
  created_at: Rfc3339,
  created_by: z.string(),
  finished_at: Rfc3339.nullable(),
  hosts: z.int(),
  max_concurrency: z.int(),
  max_errors: z.int().nullable(),
  /** Hosts per state. */
  counts: z.record(z.string(), z.int()),
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
