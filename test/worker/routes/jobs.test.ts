import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { jobIdForKey } from "../../../worker/job-coordinator/job-id.ts";
import { api, errorPaths, expectProblem, getCommand, getHostView, listHostCommands, registerHost, waitFor } from "../helpers.ts";
import {
  armCoordinatorFault,
  coordinatorSql,
  expireOnRelay,
  getJob,
  type HoldingAgent,
  holdingHosts,
  hostStates,
  jobHosts,
  postJob,
  runCoordinatorAlarm,
  startJob,
  uniqueTag,
  waitJob,
} from "../job-coordinator/job-helpers.ts";

async function jobCount(): Promise<number> {
  return (await env.DB.prepare("SELECT COUNT(*) AS n FROM jobs").first<{ n: number }>())!.n;
}

/** Posts a job that must be refused with `status` (and `code`), and checks nothing was recorded. */
async function refused(body: unknown, status: number, code?: string, role = "operator"): Promise<any> {
  const before = await jobCount();
  const problem = await expectProblem(await postJob(body, role), status, code);
  expect(await jobCount()).toBe(before);
  return problem;
}

const SYSTEM_INFO = { command_type: "system_info" };

describe("POST /api/jobs: validation", () => {
  const id = "7d0c5b1e-6f1a-4a57-9a0e-3b8f4f2c9d11";

  it.each([
    ["two target kinds", { host_ids: [id], tags: ["web"] }, "target"],
    ["all three target kinds", { host_ids: [id], tags: ["web"], all: true }, "target"],
    ["no target kind", {}, "target"],
    ["empty tags", { tags: [] }, "target.tags"],
    ["empty host_ids", { host_ids: [] }, "target.host_ids"],
    ["a bad uuid", { host_ids: [id, "not-a-uuid"] }, "target.host_ids.1"],
    ["a bad tag", { tags: ["Web Servers"] }, "target.tags.0"],
    ["all: false", { all: false }, "target.all"],
    ["match without tags", { all: true, match: "all" }, "target.match"],
    ["an unknown match", { tags: ["web"], match: "most" }, "target.match"],
    ["an unknown selector", { hosts: [id] }, "target"],
  ])("refuses %s, naming the field", async (_name, target, path) => {
    const problem = await refused({ ...SYSTEM_INFO, target }, 400, "ERR_VALIDATION");
    expect(errorPaths(problem)).toContain(path);
  });

  it("refuses a missing target", async () => {
    const problem = await refused(SYSTEM_INFO, 400, "ERR_VALIDATION");
    expect(errorPaths(problem)).toContain("target");
  });

  it.each([
    ["max_concurrency", "150%"],
    ["max_concurrency", -1],
    ["max_concurrency", "abc"],
    ["max_concurrency", 0],
    ["max_concurrency", "0%"],
    ["max_concurrency", 1.5],
    ["max_concurrency", "10"],
    ["max_errors", "150%"],
    ["max_errors", -1],
    ["max_errors", "abc"],
    ["max_errors", "%"],
  ])("refuses %s = %j, naming the field", async (field, value) => {
    const problem = await refused({ ...SYSTEM_INFO, target: { all: true }, [field]: value }, 400, "ERR_VALIDATION");
    expect(errorPaths(problem)).toEqual([field]);
  });

  it("refuses expires_at together with expires_in, and a deadline in the past", async () => {
    const host = await registerHost();
    const target = { host_ids: [host.host_id] };
    let problem = await refused({ ...SYSTEM_INFO, target, expires_in: 60, expires_at: "2099-01-01T00:00:00Z" }, 400, "ERR_VALIDATION");
    expect(errorPaths(problem)).toContain("expires_in");
    problem = await refused({ ...SYSTEM_INFO, target, expires_at: "2020-01-01T00:00:00Z" }, 400, "ERR_DEADLINE_IN_PAST");
    expect(errorPaths(problem)).toEqual(["expires_at"]);
  });

  it("refuses host ids that are not registered or revoked, naming each", async () => {
    const known = await registerHost();
    const revoked = await registerHost();
    expect((await api(`/api/hosts/${revoked.host_id}/revoke`, { method: "POST" })).status).toBe(200);
    const unknown = crypto.randomUUID();
    const problem = await refused(
      { ...SYSTEM_INFO, target: { host_ids: [known.host_id, unknown, revoked.host_id] } },
      400,
      "ERR_UNKNOWN_HOSTS",
    );
    expect(problem.errors).toEqual([
      { path: "target.host_ids.1", message: `host ${unknown} is not registered` },
      { path: "target.host_ids.2", message: `host ${revoked.host_id} is revoked` },
    ]);
    expect(problem.detail).toContain(unknown);
    expect(problem.detail).toContain(revoked.host_id);
    // Nothing was queued on the valid host either.
    expect((await listHostCommands(known.host_id)).items).toEqual([]);
  });

  it("refuses a target that matches no host with 422", async () => {
    const revoked = await registerHost([uniqueTag("gone")]);
    const tag = (await getHostView(revoked.host_id)).tags[0];
    expect((await api(`/api/hosts/${revoked.host_id}/revoke`, { method: "POST" })).status).toBe(200);
    for (const target of [{ tags: [uniqueTag("nobody")] }, { tags: [tag] }]) {
      const problem = await refused({ ...SYSTEM_INFO, target }, 422, "ERR_EMPTY_TARGET");
      expect(errorPaths(problem)).toEqual(["target"]);
    }
  });

  it("refuses an invalid command, naming the field", async () => {
    const host = await registerHost();
    const problem = await refused(
      {
        command_type: "package_operation",
        parameters: { operation: "install", packages: ["bad;rm -rf"] },
        target: { host_ids: [host.host_id] },
      },
      400,
      "ERR_VALIDATION",
    );
    expect(errorPaths(problem)).toEqual(["parameters.packages.0"]);
  });
});

describe("jobs: roles", () => {
  it("a viewer can read jobs but not start or cancel one", async () => {
    const host = await registerHost();
    await refused({ ...SYSTEM_INFO, target: { host_ids: [host.host_id] } }, 403, "ERR_FORBIDDEN", "viewer");
    expect((await listHostCommands(host.host_id)).items).toEqual([]);

    const job = await startJob({ target: { host_ids: [host.host_id] } });
    expect((await getJob(job.job_id)).job_id).toBe(job.job_id);
    expect((await api(`/api/jobs/${job.job_id}/hosts`, { role: "viewer" })).status).toBe(200);
    expect((await api("/api/jobs", { role: "viewer" })).status).toBe(200);
    await expectProblem(await api(`/api/jobs/${job.job_id}/cancel`, { method: "POST", role: "viewer" }), 403, "ERR_FORBIDDEN");
    expect((await getJob(job.job_id)).stop_reason).toBeNull();
  });

  it("every jobs endpoint needs a token", async () => {
    const id = crypto.randomUUID();
    for (const [method, path] of [
      ["POST", "/api/jobs"],
      ["GET", "/api/jobs"],
      ["GET", `/api/jobs/${id}`],
      ["GET", `/api/jobs/${id}/hosts`],
      ["POST", `/api/jobs/${id}/cancel`],
    ]) {
      await expectProblem(await api(path!, { method, token: null, ...(method === "POST" ? { body: {} } : {}) }), 401, "ERR_AUTH_MISSING");
    }
  });
});

describe("GET /api/jobs and /api/jobs/{job_id}", () => {
  it("answers 404 for a job that does not exist, and 400 for a bad id, state filter or cursor", async () => {
    const id = crypto.randomUUID();
    await expectProblem(await api(`/api/jobs/${id}`, { role: "viewer" }), 404, "ERR_JOB_NOT_FOUND");
    await expectProblem(await api(`/api/jobs/${id}/hosts`, { role: "viewer" }), 404, "ERR_JOB_NOT_FOUND");
    await expectProblem(await api(`/api/jobs/${id}/cancel`, { method: "POST", role: "operator" }), 404, "ERR_JOB_NOT_FOUND");
    await expectProblem(await api("/api/jobs/not-a-uuid", { role: "viewer" }), 400, "ERR_VALIDATION");

    const host = await registerHost();
    const job = await startJob({ target: { host_ids: [host.host_id] } });
    let problem = await expectProblem(
      await api(`/api/jobs/${job.job_id}/hosts?state=queued,nope`, { role: "viewer" }),
      400,
      "ERR_VALIDATION",
    );
    expect(errorPaths(problem)[0]).toMatch(/^query\.state/);
    problem = await expectProblem(await api(`/api/jobs/${job.job_id}/hosts?cursor=zzz`, { role: "viewer" }), 400, "ERR_VALIDATION");
    expect(errorPaths(problem)).toEqual(["cursor"]);
    await expectProblem(await api("/api/jobs?cursor=zzz", { role: "viewer" }), 400, "ERR_VALIDATION");
  });

  it("a job's view: what was asked, the resolved limits, counts per state", async () => {
    const tag = uniqueTag();
    const online = { listedOnline: true };
    const hosts = [await registerHost([tag], online), await registerHost([tag], online), await registerHost([tag], online)];
    const before = Date.now();
    const job = await startJob({
      command_type: "package_operation",
      parameters: { operation: "install", packages: ["nginx"], options: { yes: true } },
      target: { tags: [tag, tag] },
      timeout: 120,
      expires_in: 600,
      max_concurrency: "50%",
      max_errors: "34%",
    });
    expect(job).toEqual({ job_id: expect.any(String), state: "dispatching", hosts: 3 });
    const view = await waitJob(job.job_id, (j) => j.counts.queued === 2);
    expect(view).toMatchObject({
      job_id: job.job_id,
      state: "dispatching",
      command_type: "package_operation",
      parameters: { operation: "install", packages: ["nginx"], options: { yes: true } },
      target: { tags: [tag], match: "any" },
      created_by: "test-user",
      finished_at: null,
      hosts: 3,
      // 50% of 3 rounds up to 2; 34% of 3 rounds up to 2.
      max_concurrency: 2,
      max_errors: 2,
      errors: 0,
      completion: 0,
      stop_reason: null,
    });
    expect(Date.parse(view.expires_at) - Date.parse(view.created_at)).toBe(600_000);
    expect(Date.parse(view.created_at)).toBeGreaterThanOrEqual(before - 1000);
    expect(Object.values(view.counts).reduce((a: number, b) => a + (b as number), 0)).toBe(3);
    expect(view.counts).toMatchObject({ queued: 2, pending: 1, dispatching: 0, succeeded: 0 });

    // The copies carry the job's command, timeout and the same absolute deadline.
    const rows = (await jobHosts(job.job_id)).filter((h) => h.state === "queued");
    for (const row of rows) {
      const command = await getCommand(row.host_id, row.message_id);
      expect(command).toMatchObject({ command_type: "package_operation", timeout: 120, expires_at: view.expires_at });
    }
    for (const row of rows) expect(hosts.map((h) => h.host_id)).toContain(row.host_id);
  });

  it("lists jobs newest first, page by page", async () => {
    const host = await registerHost();
    const started: string[] = [];
    for (let i = 0; i < 3; i++) started.push((await startJob({ target: { host_ids: [host.host_id] } })).job_id);
    const seen: any[] = [];
    let cursor: string | null = null;
    for (let pages = 0; pages < 100; pages++) {
      const res = await api(`/api/jobs?limit=2${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`, { role: "viewer" });
      expect(res.status).toBe(200);
      const page = (await res.json()) as { items: any[]; next_cursor: string | null };
      expect(page.items.length).toBeLessThanOrEqual(2);
      seen.push(...page.items);
      cursor = page.next_cursor;
      if (cursor === null) break;
    }
    expect(new Set(seen.map((j) => j.job_id)).size).toBe(seen.length);
    const ours = seen.filter((j) => started.includes(j.job_id));
    expect(ours.map((j) => j.job_id)).toEqual([...started].reverse());
    expect(ours[0]).toEqual({
      job_id: started[2],
      created_at: expect.any(String),
      created_by: "test-user",
      command_type: "system_info",
      host_count: 1,
    });
    const times = seen.map((j) => j.created_at);
    expect([...times].sort().reverse()).toEqual(times);
  });
});

describe("broadcast", () => {
  it("all: true sends the command to every non-revoked host", async () => {
    const agents = await holdingHosts(3, []);
    const revoked = await registerHost();
    expect((await api(`/api/hosts/${revoked.host_id}/revoke`, { method: "POST" })).status).toBe(200);
    const { n: active } = (await env.DB.prepare("SELECT COUNT(*) AS n FROM hosts WHERE revoked_at IS NULL").first<{ n: number }>())!;

    const job = await startJob({ target: { all: true }, expires_in: 600 });
    expect(job.hosts).toBe(active);
    expect((await getJob(job.job_id)).hosts).toBe(active);

    const hosts = await hostStates(job.job_id);
    expect(hosts.size).toBe(active);
    expect(hosts.has(revoked.host_id)).toBe(false);
    for (const a of agents) expect(hosts.has(a.host_id)).toBe(true);

    // Every agent of this test gets the job's command for its host, and its answer lands in the job.
    for (const a of agents) {
      const row = await waitFor(
        async () => (await hostStates(job.job_id)).get(a.host_id),
        (h) => h.state === "delivered",
      );
      expect(a.received).toEqual([row.message_id]);
      await a.answer();
    }
    const done = await waitFor(
      () => hostStates(job.job_id),
      (m) => agents.every((a) => m.get(a.host_id).state === "succeeded"),
    );
    for (const a of agents) expect(done.get(a.host_id)).toMatchObject({ response_status: "success", dispatched_at: expect.any(String) });
    expect((await listHostCommands(revoked.host_id)).items).toEqual([]);
  });
});

describe("cancel", () => {
  it("cancels pending hosts at once and undelivered commands on their hosts; a delivered one finishes", async () => {
    const [online] = await holdingHosts(1, []);
    // Listed online with no agent: the relay of the second queues its copy, undelivered.
    const offline = [
      await registerHost([], { listedOnline: true }),
      await registerHost([], { listedOnline: true }),
      await registerHost([], { listedOnline: true }),
    ];
    const ids = [online!.host_id, ...offline.map((h) => h.host_id)];
    const job = await startJob({ target: { host_ids: ids }, max_concurrency: 2 });

    // Dispatch order is the order given: the first two take the window.
    await waitFor(
      () => hostStates(job.job_id),
      (m) => m.get(ids[0]!).state === "delivered" && m.get(ids[1]!).state === "queued",
    );
    let states = await hostStates(job.job_id);
    expect([states.get(ids[2]!).state, states.get(ids[3]!).state]).toEqual(["pending", "pending"]);
    const queuedMessage = states.get(ids[1]!).message_id;

    const res = await api(`/api/jobs/${job.job_id}/cancel`, { method: "POST", role: "operator" });
    expect(res.status).toBe(200);
    const stopping = (await res.json()) as any;
    expect(stopping).toMatchObject({ state: "stopping", stop_reason: "cancelled by test-user", finished_at: null });
    expect(stopping.counts.cancelled).toBeGreaterThanOrEqual(2);

    // The queued copy is cancelled on its host; the pending hosts never got one.
    await waitFor(
      () => hostStates(job.job_id),
      (m) => m.get(ids[1]!).state === "cancelled",
    );
    expect((await getCommand(ids[1]!, queuedMessage)).state).toBe("cancelled");
    for (const id of ids.slice(2)) expect((await listHostCommands(id)).items).toEqual([]);
    states = await hostStates(job.job_id);
    expect(states.get(ids[2]!)).toMatchObject({ state: "cancelled", message_id: null, detail: "not dispatched: cancelled by test-user" });
    expect((await getJob(job.job_id)).state).toBe("stopping");

    // The delivered command runs to its end; then the job is cancelled.
    await online!.answer();
    const done = await waitJob(job.job_id, (j) => j.state === "cancelled");
    expect(done.counts).toMatchObject({ succeeded: 1, cancelled: 3 });
    expect(done.errors).toBe(0);
    expect(done.completion).toBe(1);
    expect(done.finished_at).not.toBeNull();

    // Cancelling again changes nothing.
    const again = await api(`/api/jobs/${job.job_id}/cancel`, { method: "POST", role: "operator" });
    expect(again.status).toBe(200);
    expect(await again.json()).toMatchObject({ state: "cancelled", counts: done.counts });
  });

  it("a finished job cannot be cancelled", async () => {
    const [agent] = await holdingHosts(1, []);
    const job = await startJob({ target: { host_ids: [agent!.host_id] } });
    await waitFor(
      () => hostStates(job.job_id),
      (m) => m.get(agent!.host_id).state === "delivered",
    );
    await agent!.answer();
    await waitJob(job.job_id, (j) => j.state === "completed");
    await expectProblem(await api(`/api/jobs/${job.job_id}/cancel`, { method: "POST", role: "operator" }), 409, "ERR_JOB_FINISHED");
    expect((await getJob(job.job_id)).state).toBe("completed");
  });
});

describe("offline hosts", () => {
  it("a copy that expires undelivered on a host whose agent dropped is not an error", async () => {
    const tag = uniqueTag();
    const offline = [await registerHost([tag], { listedOnline: true }), await registerHost([tag], { listedOnline: true })];
    const [online] = await holdingHosts(1, [tag]);
    // max_errors 0: a single error would stop the job.
    const job = await startJob({ target: { tags: [tag] }, expires_in: 60, max_errors: 0 });
    await waitJob(job.job_id, (j) => j.counts.queued === 2 && j.counts.delivered === 1);

    for (const h of offline) await expireOnRelay(h.host_id);
    await online!.answer();
    const done = await waitJob(job.job_id, (j) => j.state !== "dispatching" && j.state !== "running");
    expect(done).toMatchObject({ state: "completed", errors: 0, stop_reason: null, completion: 1 });
    expect(done.counts).toMatchObject({ expired: 2, succeeded: 1 });
    const hosts = await hostStates(job.job_id);
    for (const h of offline) expect(hosts.get(h.host_id)).toMatchObject({ state: "expired", response_status: null });
  });
});

describe("POST /api/jobs: Idempotency-Key", () => {
  const key = () => `k-${crypto.randomUUID()}`;
  const post = (body: unknown, k: string) => postJob(body, "operator", { "idempotency-key": k });

  async function accepted(res: Response): Promise<{ job_id: string; state: string; hosts: number }> {
    const text = await res.text();
    expect(res.status, text).toBe(202);
    const body = JSON.parse(text);
    expect(res.headers.get("location")).toBe(`/api/jobs/${body.job_id}`);
    return body;
  }

  async function listed(jobId: string): Promise<number> {
    return (await env.DB.prepare("SELECT COUNT(*) AS n FROM jobs WHERE job_id = ?").bind(jobId).first<{ n: number }>())!.n;
  }

  /** The job's one host gets its command once, answers it, and the job completes with it. */
  async function runsOnce(jobId: string, agent: HoldingAgent): Promise<void> {
    await waitFor(
      () => hostStates(jobId),
      (m) => m.get(agent.host_id)?.state === "delivered",
    );
    await agent.answer();
    const done = await waitJob(jobId, (j) => j.state === "completed");
    expect(done.counts).toMatchObject({ succeeded: 1 });
    expect(agent.received).toHaveLength(1);
    expect((await listHostCommands(agent.host_id)).items).toHaveLength(1);
  }

  it("the same key and body answer with the first job; the same key with another body is 409", async () => {
    const [agent] = await holdingHosts(1, []);
    const k = key();
    const body = { ...SYSTEM_INFO, target: { host_ids: [agent!.host_id] }, expires_in: 600, max_errors: 0 };
    const before = await jobCount();
    const first = await accepted(await post(body, k));
    // Same content with the keys in another order is the same request.
    const reordered = { max_errors: 0, expires_in: 600, target: { host_ids: [agent!.host_id] }, ...SYSTEM_INFO };
    expect((await accepted(await post(reordered, k))).job_id).toBe(first.job_id);
    expect((await accepted(await post(body, k))).job_id).toBe(first.job_id);
    expect(await jobCount()).toBe(before + 1);

    await expectProblem(await post({ ...body, expires_in: 601 }, k), 409, "ERR_IDEMPOTENCY_CONFLICT");
    await expectProblem(
      await post({ ...body, command_type: "package_operation", parameters: { operation: "update", packages: [] } }, k),
      409,
      "ERR_IDEMPOTENCY_CONFLICT",
    );
    expect(await jobCount()).toBe(before + 1);
    await runsOnce(first.job_id, agent!);

    // Another key is another job.
    expect((await accepted(await post(body, key()))).job_id).not.toBe(first.job_id);
  });

  it("a retry gets the first job even if the target no longer resolves", async () => {
    const tag = uniqueTag();
    const host = await registerHost([tag]);
    const k = key();
    const body = { ...SYSTEM_INFO, target: { tags: [tag] } };
    const first = await accepted(await post(body, k));
    expect((await api(`/api/hosts/${host.host_id}/revoke`, { method: "POST" })).status).toBe(200);
    expect(await accepted(await post(body, k))).toMatchObject({ job_id: first.job_id, hosts: 1 });
  });

  it.each(["job:x", "job:7d0c5b1e-6f1a-4a57-9a0e-3b8f4f2c9d11", "JOB:x"])(
    "refuses the reserved key %s with 400 naming the header",
    async (k) => {
      const host = await registerHost();
      const before = await jobCount();
      const problem = await expectProblem(await post({ ...SYSTEM_INFO, target: { host_ids: [host.host_id] } }, k), 400, "ERR_VALIDATION");
      expect(errorPaths(problem).join(" ")).toContain("idempotency-key");
      expect(problem.detail).toContain("reserved");
      expect(await jobCount()).toBe(before);
    },
  );

  it("the coordinator failing after it stored the job: the job stays listed, and the retry converges on it; it runs once", async () => {
    const [agent] = await holdingHosts(1, []);
    const k = key();
    const jobId = await jobIdForKey(k);
    const body = { ...SYSTEM_INFO, target: { host_ids: [agent!.host_id] }, max_errors: 0 };
    const before = await jobCount();
    await armCoordinatorFault(jobId, "job.create.after_store");
    await expectProblem(await post(body, k), 500, "ERR_INTERNAL");
    // The job the coordinator stored is listed, not deleted from the registry while it runs.
    expect(await listed(jobId)).toBe(1);

    expect((await accepted(await post(body, k))).job_id).toBe(jobId);
    expect(await listed(jobId)).toBe(1);
    expect(await jobCount()).toBe(before + 1);
    const page = (await (await api("/api/jobs?limit=100", { role: "viewer" })).json()) as { items: any[] };
    expect(page.items.filter((j) => j.job_id === jobId)).toHaveLength(1);
    await runsOnce(jobId, agent!);
  });

  it("the registry write failing: nothing runs unlisted, and the retry lists the job once and runs it once", async () => {
    const [agent] = await holdingHosts(1, []);
    const k = key();
    const jobId = await jobIdForKey(k);
    const body = { ...SYSTEM_INFO, target: { host_ids: [agent!.host_id] } };
    const before = await jobCount();
    await armCoordinatorFault(jobId, "job.registry_write");
    await expectProblem(await post(body, k), 500, "ERR_INTERNAL");
    expect(await listed(jobId)).toBe(0);
    await expectProblem(await api(`/api/jobs/${jobId}`, { role: "viewer" }), 404, "ERR_JOB_NOT_FOUND");
    // Stored, but nothing is dispatched before it is listed.
    const [stored] = await coordinatorSql<{ registered_at: number | null }>(jobId, "SELECT registered_at FROM job");
    expect(stored!.registered_at).toBeNull();
    expect(await coordinatorSql(jobId, "SELECT seq FROM hosts WHERE state <> 'pending'")).toEqual([]);
    expect(agent!.received).toEqual([]);

    expect((await accepted(await post(body, k))).job_id).toBe(jobId);
    expect(await listed(jobId)).toBe(1);
    expect(await jobCount()).toBe(before + 1);
    await runsOnce(jobId, agent!);
  });

  it("the registry write failing with no retry from the caller: the coordinator's alarm lists the job, then runs it", async () => {
    const [agent] = await holdingHosts(1, []);
    const k = key();
    const jobId = await jobIdForKey(k);
    await armCoordinatorFault(jobId, "job.registry_write", 2);
    await expectProblem(await post({ ...SYSTEM_INFO, target: { host_ids: [agent!.host_id] } }, k), 500, "ERR_INTERNAL");
    // The alarm's first try fails too (armed twice) and backs off; the next one lists it.
    expect(await runCoordinatorAlarm(jobId)).toBe(true);
    expect(await listed(jobId)).toBe(0);
    expect(agent!.received).toEqual([]);
    expect(await runCoordinatorAlarm(jobId)).toBe(true);
    expect(await listed(jobId)).toBe(1);
    await runsOnce(jobId, agent!);
  });
});
