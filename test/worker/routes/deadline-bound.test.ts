import { describe, expect, it } from "vitest";
import { Limits } from "../../../schemas/index.ts";
import { api, errorPaths, expectProblem, getCommand, listHostCommands, queueSystemInfo, registerHost } from "../helpers.ts";

const FAR = "9999-12-31T00:00:00Z";
const DAY_MS = 86_400_000;

describe("expires_at is bounded like expires_in: at most 30 days after acceptance", () => {
  it("a command with expires_at 9999-12-31 → 400 ERR_DEADLINE_TOO_FAR naming expires_at; nothing queued", async () => {
    const host = await registerHost();
    const res = await api(`/api/hosts/${host.host_id}/commands`, {
      role: "operator",
      body: { command_type: "system_info", expires_at: FAR },
    });
    const problem = await expectProblem(res, 400, "ERR_DEADLINE_TOO_FAR");
    expect(errorPaths(problem)).toEqual(["expires_at"]);
    expect(problem.detail).toContain(String(Limits.MAX_EXPIRES_IN_S));
    const install = await api(`/api/hosts/${host.host_id}/packages/install`, {
      role: "operator",
      body: { packages: ["nginx"], expires_at: FAR },
    });
    await expectProblem(install, 400, "ERR_DEADLINE_TOO_FAR");
    expect((await listHostCommands(host.host_id)).items).toEqual([]);
  });

  it("31 days is refused; 29 days is accepted and stored as given", async () => {
    const host = await registerHost();
    const over = new Date(Date.now() + 31 * DAY_MS).toISOString();
    await expectProblem(
      await api(`/api/hosts/${host.host_id}/commands`, { role: "operator", body: { command_type: "system_info", expires_at: over } }),
      400,
      "ERR_DEADLINE_TOO_FAR",
    );
    const within = new Date(Date.now() + 29 * DAY_MS).toISOString();
    const res = await api(`/api/hosts/${host.host_id}/commands`, {
      role: "operator",
      body: { command_type: "system_info", expires_at: within },
    });
    expect(res.status).toBe(202);
    const { message_id } = (await res.json()) as { message_id: string };
    expect((await getCommand(host.host_id, message_id)).expires_at).toBe(within);
  });

  it("a job with expires_at 9999-12-31 → 400 ERR_DEADLINE_TOO_FAR", async () => {
    const host = await registerHost();
    const jobCount = async () =>
      ((await (await api("/api/jobs?limit=500", { role: "viewer" })).json()) as { items: unknown[] }).items.length;
    const before = await jobCount();
    const res = await api("/api/jobs", {
      role: "operator",
      body: { command_type: "system_info", parameters: {}, target: { host_ids: [host.host_id] }, expires_at: FAR },
    });
    expect(errorPaths(await expectProblem(res, 400, "ERR_DEADLINE_TOO_FAR"))).toEqual(["expires_at"]);
    expect(await jobCount()).toBe(before);
  });

  it("requeue with expires_at 9999-12-31 → 400 ERR_DEADLINE_TOO_FAR, checked before anything else", async () => {
    const host = await registerHost();
    const id = await queueSystemInfo(host.host_id);
    const res = await api(`/api/hosts/${host.host_id}/dead-letters/${id}/requeue`, { role: "operator", body: { expires_at: FAR } });
    expect(errorPaths(await expectProblem(res, 400, "ERR_DEADLINE_TOO_FAR"))).toEqual(["expires_at"]);
  });
});
