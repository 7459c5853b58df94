import { createRoute, z } from "@hono/zod-openapi";
import {
  Defaults,
  JobAccepted,
  JobCancelRequest,
  JobHostPage,
  JobHostsQuery,
  JobListQuery,
  JobPage,
  JobRequest,
  type JobTarget,
  JobView,
  resolveCount,
} from "../../schemas/index.ts";
import { Cursor } from "../cursor.ts";
import { assertDeadlineWithinBound } from "../deadline.ts";
import type { Env } from "../env.ts";
import { ErrorCode, RelayError, unwrap } from "../errors.ts";
import { jobIdForKey } from "../job-coordinator/contract.ts";
import { activeHosts, checkHostIds, hostsWithTags, jobExists, listJobs } from "../registry-targets.ts";
import { jobCoordinator } from "../stubs.ts";
import { BEARER, createRouter, JobIdempotencyHeader, jsonBody, jsonContent, problems, requestHash, requireRole } from "./common.ts";

const JobIdParam = z.object({
  job_id: z.uuid().openapi({ param: { name: "job_id", in: "path" }, description: "The job's id" }),
});

const createJobRoute = createRoute({
  method: "post",
  path: "/api/jobs",
  operationId: "createJob",
  tags: ["jobs"],
  summary: "Run one command on many hosts: by id, by tag, or all of them",
  description:
    "Resolves the target now (revoked hosts are never targeted), records the job and returns; a JobCoordinator dispatches in batches, " +
    "keeping at most `max_concurrency` hosts dispatched and not yet final, and stops the rollout (cancelling hosts not yet started) " +
    "once errors (failed, timed_out, dead_lettered) exceed `max_errors`. An offline host whose delivery deadline passes is `expired`, not an error. " +
    "With an `Idempotency-Key`, a retry of the same request answers with the first job (same `job_id`), whichever step of the first attempt failed.",
  security: BEARER,
  middleware: [requireRole("operator")] as const,
  request: { headers: JobIdempotencyHeader, body: jsonBody(JobRequest, "Command, target, delivery controls and rollout limits") },
  responses: {
    202: {
      description: "Accepted; `Location` points at the job",
      headers: z.object({ Location: z.string().openapi({ description: "URL of the job" }) }),
      content: { "application/json": { schema: JobAccepted } },
    },
    ...problems(400, 401, 403, 409, 413, 415, 422),
  },
});

const listJobsRoute = createRoute({
  method: "get",
  path: "/api/jobs",
  operationId: "listJobs",
  tags: ["jobs"],
  summary: "Jobs, newest first",
  security: BEARER,
  middleware: [requireRole("viewer")] as const,
  request: { query: JobListQuery },
  responses: { 200: jsonContent(JobPage, "One page; pass next_cursor as cursor for the next"), ...problems(400, 401, 403) },
});

const getJobRoute = createRoute({
  method: "get",
  path: "/api/jobs/{job_id}",
  operationId: "getJob",
  tags: ["jobs"],
  summary: "A job: state, hosts per state, errors and completion",
  security: BEARER,
  middleware: [requireRole("viewer")] as const,
  request: { params: JobIdParam },
  responses: { 200: jsonContent(JobView, "The job"), ...problems(400, 401, 403, 404) },
});

const listJobHostsRoute = createRoute({
  method: "get",
  path: "/api/jobs/{job_id}/hosts",
  operationId: "listJobHosts",
  tags: ["jobs"],
  summary: "Each host's part in a job, in dispatch order, optionally filtered by state",
  security: BEARER,
  middleware: [requireRole("viewer")] as const,
  request: { params: JobIdParam, query: JobHostsQuery },
  responses: { 200: jsonContent(JobHostPage, "One page; pass next_cursor as cursor for the next"), ...problems(400, 401, 403, 404) },
});

const cancelJobRoute = createRoute({
  method: "post",
  path: "/api/jobs/{job_id}/cancel",
  operationId: "cancelJob",
  tags: ["jobs"],
  summary: "Cancel a job",
  description:
    "Hosts not yet dispatched are cancelled at once; commands queued on a host but not delivered are cancelled there (best effort); " +
    'a command already delivered finishes, and the job is `stopping` until it has. With `{"abort_running": true}` delivered and running commands are cancelled too, ' +
    "through the host command cancel (the agent kills the process group and reports what really happened). Cancelling again is harmless (and may add `abort_running`); a finished job answers 409.",
  security: BEARER,
  middleware: [requireRole("operator")] as const,
  request: { params: JobIdParam, body: jsonBody(JobCancelRequest, "Optional: abort_running (default false)", false) },
  responses: { 200: jsonContent(JobView, "The job, stopping or cancelled"), ...problems(400, 401, 403, 404, 409, 413, 415) },
});

/** Explicit lists longer than this are summarised in the job's view; its hosts are listed at /hosts. */
const MAX_LISTED_TARGET_IDS = 100;

/** The hosts a target names, in dispatch order; refuses ids that are unknown or revoked, naming them. */
async function resolveTarget(env: Env, target: JobTarget): Promise<{ hostIds: string[]; summary: Record<string, unknown> }> {
  if (target.host_ids) {
    const firstIndex = new Map<string, number>();
    target.host_ids.forEach((id, i) => {
      const key = id.toLowerCase();
      if (!firstIndex.has(key)) firstIndex.set(key, i);
    });
    const unique = [...firstIndex.keys()];
    const checked = await checkHostIds(env.DB, unique);
    const bad = checked.filter((h) => h.problem !== null);
    if (bad.length > 0) {
      const why = (p: string | null) => (p === "unknown" ? "is not registered" : "is revoked");
      throw new RelayError(
        ErrorCode.UNKNOWN_HOSTS,
        `target.host_ids: ${bad.length} of the hosts cannot take commands: ${bad
          .slice(0, 20)
          .map((b) => `${b.host_id} ${why(b.problem)}`)
          .join(", ")}${bad.length > 20 ? ", …" : ""}`,
        {
          errors: bad.slice(0, 100).map((b) => ({
            path: `target.host_ids.${firstIndex.get(b.host_id)}`,
            message: `host ${b.host_id} ${why(b.problem)}`,
          })),
        },
      );
    }
    const summary = unique.length <= MAX_LISTED_TARGET_IDS ? { host_ids: unique } : { host_ids_count: unique.length };
    return { hostIds: unique, summary };
  }
  if (target.tags) {
    const match = target.match ?? "any";
    const tags = [...new Set(target.tags)];
    return { hostIds: await hostsWithTags(env.DB, tags, match), summary: { tags, match } };
  }
  return { hostIds: await activeHosts(env.DB), summary: { all: true } };
}

/** Jobs list position: creation time and job id (`j<iso>_<uuid>`). */
const JOB_POSITION = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z_[0-9a-f-]{36}$/;

function badCursor(): RelayError {
  return Cursor.invalid();
}

/** JSON with object keys sorted, so two requests that differ only in key order hash alike. */
function canonical(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(canonical);
  if (value !== null && typeof value === "object") {
    return Object.fromEntries(
      Object.entries(value as Record<string, unknown>)
        .filter(([, v]) => v !== undefined)
        .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
        .map(([k, v]) => [k, canonical(v)]),
    );
  }
  return value;
}

/**
 * 404 for a job the registry does not list, without waking (or creating storage for) a JobCoordinator.
 * A job is listed before it dispatches anything, so an unlisted one has nothing to show.
 */
async function requireJob(env: Env, jobId: string): Promise<void> {
  if (!(await jobExists(env.DB, jobId))) throw new RelayError(ErrorCode.JOB_NOT_FOUND, `no job ${jobId}`);
}

export const jobRoutes = createRouter()
  .openapi(createJobRoute, async (c) => {
    const body = c.req.valid("json");
    const key = c.req.valid("header")["idempotency-key"];
    // A keyed request names its job by the key, so a retry reaches the same coordinator whatever failed before.
    const jobId = key ? await jobIdForKey(key) : crypto.randomUUID();
    const hash = key ? await requestHash(canonical(["job", body])) : null;
    const coordinator = jobCoordinator(c.env, jobId);
    c.header("Location", `/api/jobs/${jobId}`);
    if (hash !== null) {
      // The first attempt's job, if it was stored: answered before the target is resolved again.
      const prior = unwrap(await coordinator.existing(jobId, hash));
      if (prior) return c.json(prior, 202);
    }
    const now = Date.now();
    assertDeadlineWithinBound(body.expires_at, now);
    const expiresAt = body.expires_at ? Date.parse(body.expires_at) : now + (body.expires_in ?? Defaults.EXPIRES_IN_S) * 1000;
    if (!(expiresAt > now)) {
      throw new RelayError(ErrorCode.DEADLINE_IN_PAST, `expires_at: ${body.expires_at} is not in the future`, {
        errors: [{ path: "expires_at", message: "is not in the future" }],
      });
    }
    const { hostIds, summary } = await resolveTarget(c.env, body.target);
    if (hostIds.length === 0) {
      throw new RelayError(ErrorCode.EMPTY_TARGET, `target: no registered, non-revoked host matches ${JSON.stringify(summary)}`, {
        errors: [{ path: "target", message: "matches no registered, non-revoked host" }],
      });
    }
    const total = hostIds.length;
    // The coordinator stores the job, then lists it in the registry (D1) before dispatching anything,
    // retrying that write from its alarm: a failure at any step leaves no job or one listed job, never
    // a running unlisted one. Nothing here deletes a registry row.
    const accepted: JobAccepted = unwrap(
      await coordinator.create({
        job_id: jobId,
        command_type: body.command_type,
        parameters: body.parameters,
        target: summary,
        created_at: now,
        created_by: c.get("principal").sub,
        timeout_s: body.timeout ?? null,
        max_attempts: body.max_attempts ?? null,
        expires_at: expiresAt,
        max_concurrency: resolveCount(body.max_concurrency, total, total),
        max_errors: body.max_errors === undefined ? null : resolveCount(body.max_errors, total, 0),
        host_ids: hostIds,
        request_hash: hash,
      }),
    );
    return c.json(accepted, 202);
  })
  .openapi(listJobsRoute, async (c) => {
    const q = c.req.valid("query");
    const position = Cursor.decodeString("j", q.cursor, JOB_POSITION);
    if (position === "invalid") throw badCursor();
    const after = position === null ? undefined : { created_at: position.slice(0, 24), job_id: position.slice(25) };
    const page = await listJobs(c.env.DB, { limit: q.limit, after });
    return c.json(
      { items: page.items, next_cursor: Cursor.encode("j", page.last ? `${page.last.created_at}_${page.last.job_id}` : null) },
      200,
    );
  })
  .openapi(getJobRoute, async (c) => {
    const { job_id } = c.req.valid("param");
    await requireJob(c.env, job_id);
    return c.json(unwrap(await jobCoordinator(c.env, job_id).view(job_id)), 200);
  })
  .openapi(listJobHostsRoute, async (c) => {
    const { job_id } = c.req.valid("param");
    const q = c.req.valid("query");
    await requireJob(c.env, job_id);
    const result = await jobCoordinator(c.env, job_id).listHosts(job_id, { states: q.state, limit: q.limit, cursor: q.cursor });
    if (!result.ok && result.code === ErrorCode.VALIDATION) throw badCursor();
    return c.json(unwrap(result), 200);
  })
  .openapi(cancelJobRoute, async (c) => {
    const { job_id } = c.req.valid("param");
    await requireJob(c.env, job_id);
    const body = (c.req.valid("json") as JobCancelRequest | undefined) ?? { abort_running: false };
    return c.json(
      unwrap(await jobCoordinator(c.env, job_id).cancel(job_id, c.get("principal").sub, { abort_running: body.abort_running === true })),
      200,
    );
  });
