import { runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { api, errorPaths, expectProblem, getHostView, queueSystemInfo, registerHost, relayStub } from "../helpers.ts";
import { jobHosts, postJob, startJob, uniqueTag } from "../job-coordinator/job-helpers.ts";

function putTags(hostId: string, body: unknown, role = "admin"): Promise<Response> {
  return api(`/api/hosts/${hostId}/tags`, { method: "PUT", role, body });
}

/** Every tag the list returns, following next_cursor; checks order and page sizes. */
async function allTags(limit: number): Promise<{ tag: string; hosts: number }[]> {
  const seen: { tag: string; hosts: number }[] = [];
  let cursor: string | null = null;
  for (let pages = 0; pages < 1000; pages++) {
    const res = await api(`/api/tags?limit=${limit}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`, { role: "viewer" });
    expect(res.status).toBe(200);
    const page = (await res.json()) as { items: { tag: string; hosts: number }[]; next_cursor: string | null };
    expect(page.items.length).toBeLessThanOrEqual(limit);
    seen.push(...page.items);
    cursor = page.next_cursor;
    if (cursor === null) break;
    expect(page.items).toHaveLength(limit);
  }
  const tags = seen.map((t) => t.tag);
  expect([...tags].sort()).toEqual(tags);
  expect(new Set(tags).size).toBe(tags.length);
  return seen;
}

describe("PUT /api/hosts/{host_id}/tags", () => {
  it("replaces the host's tag set (deduplicated, sorted) in the registry", async () => {
    const [old, a, b] = [uniqueTag("old"), uniqueTag("a"), uniqueTag("b")];
    const host = await registerHost([old]);
    const res = await putTags(host.host_id, { tags: [b, a, b] });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ host_id: host.host_id, tags: [a, b].sort() });
    expect((await getHostView(host.host_id)).tags).toEqual([a, b].sort());

    const cleared = await putTags(host.host_id, { tags: [] });
    expect(await cleared.json()).toEqual({ host_id: host.host_id, tags: [] });
    expect((await getHostView(host.host_id)).tags).toEqual([]);
  });

  it("hands the new tags to the host's relay, so its events carry them", async () => {
    const host = await registerHost([uniqueTag("before")]);
    await queueSystemInfo(host.host_id); // the relay now knows its host
    const tag = uniqueTag("after");
    expect((await putTags(host.host_id, { tags: [tag] })).status).toBe(200);
    const stored = await runInDurableObject(
      relayStub(host.host_id),
      (_i, state) => state.storage.sql.exec<{ value: string }>("SELECT value FROM meta WHERE key = 'tags'").one().value,
    );
    expect(JSON.parse(stored)).toEqual([tag]);
  });

  it("new tags decide the next job's targets", async () => {
    const tag = uniqueTag("retag");
    const host = await registerHost();
    await expectProblem(await postJob({ command_type: "system_info", target: { tags: [tag] } }), 422, "ERR_EMPTY_TARGET");
    expect((await putTags(host.host_id, { tags: [tag] })).status).toBe(200);
    const job = await startJob({ target: { tags: [tag] } });
    expect((await jobHosts(job.job_id)).map((h) => h.host_id)).toEqual([host.host_id]);
  });

  it("refuses bad bodies naming the field, unknown hosts and non-admins, and changes nothing", async () => {
    const tag = uniqueTag();
    const host = await registerHost([tag]);
    let problem = await expectProblem(await putTags(host.host_id, { tags: ["ok", "Not A Tag"] }), 400, "ERR_VALIDATION");
    expect(errorPaths(problem)).toEqual(["tags.1"]);
    problem = await expectProblem(await putTags(host.host_id, {}), 400, "ERR_VALIDATION");
    expect(errorPaths(problem)).toEqual(["tags"]);
    problem = await expectProblem(await putTags(host.host_id, { tags: [], extra: 1 }), 400, "ERR_VALIDATION");
    expect(errorPaths(problem)).toEqual(["(root)"]);
    problem = await expectProblem(
      await putTags(host.host_id, { tags: Array.from({ length: 65 }, (_, i) => `t${i}`) }),
      400,
      "ERR_VALIDATION",
    );
    expect(errorPaths(problem)).toEqual(["tags"]);
    await expectProblem(await putTags(host.host_id, { tags: ["x"] }, "operator"), 403, "ERR_FORBIDDEN");
    await expectProblem(await putTags(crypto.randomUUID(), { tags: ["x"] }), 404, "ERR_HOST_NOT_FOUND");
    expect((await getHostView(host.host_id)).tags).toEqual([tag]);
  });
});

describe("GET /api/tags", () => {
  it("lists tags with the number of non-revoked hosts carrying each, page by page", async () => {
    const [x, y] = [uniqueTag("x"), uniqueTag("y")];
    await registerHost([x]);
    await registerHost([x, y]);
    const revoked = await registerHost([x, y]);
    expect((await api(`/api/hosts/${revoked.host_id}/revoke`, { method: "POST" })).status).toBe(200);
    const only = uniqueTag("only-revoked");
    const gone = await registerHost([only]);
    expect((await api(`/api/hosts/${gone.host_id}/revoke`, { method: "POST" })).status).toBe(200);

    const tags = await allTags(2);
    expect(tags.find((t) => t.tag === x)).toEqual({ tag: x, hosts: 2 });
    expect(tags.find((t) => t.tag === y)).toEqual({ tag: y, hosts: 1 });
    expect(tags.find((t) => t.tag === only)).toBeUndefined();
    expect(await allTags(500)).toEqual(tags);
  });

  it("is readable by a viewer, not anonymously, and refuses a bad cursor", async () => {
    expect((await api("/api/tags", { role: "viewer" })).status).toBe(200);
    await expectProblem(await api("/api/tags", { token: null }), 401, "ERR_AUTH_MISSING");
    const problem = await expectProblem(await api("/api/tags?cursor=Bad", { role: "viewer" }), 400, "ERR_VALIDATION");
    expect(errorPaths(problem)).toEqual(["cursor"]);
  });
});

describe("tag targets", () => {
  it("match any picks hosts with one of the tags, match all those with every tag; revoked hosts never", async () => {
    const [a, b] = [uniqueTag("a"), uniqueTag("b")];
    const both = await registerHost([a, b]);
    const onlyA = await registerHost([a]);
    const onlyB = await registerHost([b]);
    const revoked = await registerHost([a, b]);
    expect((await api(`/api/hosts/${revoked.host_id}/revoke`, { method: "POST" })).status).toBe(200);
    await registerHost([uniqueTag("other")]);

    const any = await startJob({ target: { tags: [a, b] } });
    expect(new Set((await jobHosts(any.job_id)).map((h) => h.host_id))).toEqual(new Set([both.host_id, onlyA.host_id, onlyB.host_id]));
    const all = await startJob({ target: { tags: [a, b], match: "all" } });
    expect((await jobHosts(all.job_id)).map((h) => h.host_id)).toEqual([both.host_id]);
    expect(all.hosts).toBe(1);
  });
});
