import { listDurableObjectIds } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { api, expectProblem } from "../helpers.ts";

/** Whether a Durable Object (and so its storage) exists for the name. */
async function exists(namespace: DurableObjectNamespace<any>, name: string): Promise<boolean> {
  const id = namespace.idFromName(name);
  return (await listDurableObjectIds(namespace)).some((other) => other.equals(id));
}

describe("unknown host and job ids: 404 without touching a Durable Object", () => {
  const message = "7d0c5b1e-6f1a-4a57-9a0e-3b8f4f2c9d11";

  it.each([
    ["GET", (h: string) => `/api/hosts/${h}/commands`, "viewer", undefined],
    ["GET", (h: string) => `/api/hosts/${h}/commands?state=queued`, "viewer", undefined],
    ["GET", (h: string) => `/api/hosts/${h}/commands/${message}`, "viewer", undefined],
    ["DELETE", (h: string) => `/api/hosts/${h}/commands/${message}`, "operator", undefined],
    ["GET", (h: string) => `/api/hosts/${h}/dead-letters`, "viewer", undefined],
    ["POST", (h: string) => `/api/hosts/${h}/dead-letters/${message}/requeue`, "operator", {}],
    ["PUT", (h: string) => `/api/hosts/${h}/tags`, "admin", { tags: ["web"] }],
    ["GET", (h: string) => `/api/hosts/${h}`, "viewer", undefined],
    ["POST", (h: string) => `/api/hosts/${h}/revoke`, "admin", undefined],
  ] as const)("%s %s → 404 ERR_HOST_NOT_FOUND", async (method, path, role, body) => {
    const hostId = crypto.randomUUID();
    const res = await api(path(hostId), { method, role, ...(body === undefined ? {} : { body }) });
    await expectProblem(res, 404, "ERR_HOST_NOT_FOUND");
    expect(await exists(env.HOST_RELAY, hostId), "a HostRelay was created for an unknown host").toBe(false);
  });

  it.each([
    ["GET", (j: string) => `/api/jobs/${j}`, "viewer"],
    ["GET", (j: string) => `/api/jobs/${j}/hosts`, "viewer"],
    ["GET", (j: string) => `/api/jobs/${j}/hosts?state=queued&limit=5`, "viewer"],
    ["POST", (j: string) => `/api/jobs/${j}/cancel`, "operator"],
  ] as const)("%s %s → 404 ERR_JOB_NOT_FOUND", async (method, path, role) => {
    const jobId = crypto.randomUUID();
    await expectProblem(await api(path(jobId), { method, role }), 404, "ERR_JOB_NOT_FOUND");
    expect(await exists(env.JOB_COORDINATOR, jobId), "a JobCoordinator was created for an unknown job").toBe(false);
  });
});
