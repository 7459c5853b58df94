import { exports } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { Limits } from "../../../schemas/index.ts";
import { api, BASE, errorPaths, expectProblem, getCommand, listHostCommands, queueSystemInfo, registerHost, token } from "../helpers.ts";

async function expectNoCommands(hostId: string): Promise<void> {
  const page = await listHostCommands(hostId);
  expect(page.items).toEqual([]);
  expect(page.next_cursor).toBeNull();
}

function install(hostId: string, body: unknown, headers: Record<string, string> = {}): Promise<Response> {
  return api(`/api/hosts/${hostId}/packages/install`, { role: "operator", body, headers });
}

function command(hostId: string, body: unknown, headers: Record<string, string> = {}): Promise<Response> {
  return api(`/api/hosts/${hostId}/commands`, { role: "operator", body, headers });
}

async function expectValidation(res: Response, path: string): Promise<any> {
  const problem = await expectProblem(res, 400, "ERR_VALIDATION");
  expect(errorPaths(problem)).toContain(path);
  for (const e of problem.errors) expect(e.message).toEqual(expect.any(String));
  return problem;
}

describe("POST /api/hosts/{host_id}/packages/{operation}: the seed request", () => {
  it("queues the product page's example and exposes it at Location", async () => {
    const host = await registerHost();
    const res = await install(host.host_id, { packages: ["nginx", "curl"], options: { yes: true }, timeout: 300 });
    expect(res.status).toBe(202);
    const accepted = (await res.json()) as { message_id: string; status: string };
    expect(accepted).toEqual({ message_id: expect.stringMatching(/^[0-9a-f-]{36}$/), status: "queued" });
    const location = res.headers.get("location");
    expect(location).toBe(`/api/hosts/${host.host_id}/commands/${accepted.message_id}`);

    const got = await api(location!, { role: "viewer" });
    expect(got.status).toBe(200);
    const view = (await got.json()) as any;
    expect(view).toMatchObject({
      message_id: accepted.message_id,
      host_id: host.host_id,
      command_type: "package_operation",
      state: "queued",
      attempts: 0,
      timeout: 300,
      response_status: null,
      result: null,
      parameters: { operation: "install", packages: ["nginx", "curl"], options: { yes: true } },
    });
    expect(view.history.map((h: any) => h.state)).toEqual(["queued"]);
    // The default delivery deadline is 24 h after acceptance.
    const ttl = Date.parse(view.expires_at) - Date.parse(view.created_at);
    expect(ttl).toBe(24 * 3600 * 1000);
  });

  it("update and upgrade need no packages", async () => {
    const host = await registerHost();
    for (const op of ["update", "upgrade"]) {
      const res = await api(`/api/hosts/${host.host_id}/packages/${op}`, { role: "operator", body: {} });
      expect(res.status).toBe(202);
      const view = await getCommand(host.host_id, ((await res.json()) as any).message_id);
      expect(view.parameters).toEqual({ operation: op, packages: [], options: {} });
    }
    expect((await listHostCommands(host.host_id)).items).toHaveLength(2);
  });

  it.each(["install", "remove"])("%s with no packages → 400 naming packages", async (op) => {
    const host = await registerHost();
    const res = await api(`/api/hosts/${host.host_id}/packages/${op}`, { role: "operator", body: { packages: [] } });
    await expectValidation(res, "packages");
    await expectNoCommands(host.host_id);
  });

  it("an unknown operation → 400", async () => {
    const host = await registerHost();
    const res = await api(`/api/hosts/${host.host_id}/packages/purge`, { role: "operator", body: { packages: ["nginx"] } });
    const problem = await expectProblem(res, 400, "ERR_VALIDATION");
    expect(errorPaths(problem).join(" ")).toContain("operation");
    await expectNoCommands(host.host_id);
  });

  it("package versions and architectures that managers accept pass", async () => {
    const host = await registerHost();
    const packages = ["libssl3:amd64", "nginx=1.24.0-1", "python@3.12", "bash-0:5.1.8-6.el9.x86_64", "g++", "libc6~bpo"];
    const res = await install(host.host_id, { packages });
    expect(res.status).toBe(202);
    const view = await getCommand(host.host_id, ((await res.json()) as any).message_id);
    expect(view.parameters.packages).toEqual(packages);
  });
});

describe("command requests are validated and refused requests store nothing", () => {
  it("malformed JSON → 400 ERR_MALFORMED_JSON", async () => {
    const host = await registerHost();
    const res = await api(`/api/hosts/${host.host_id}/packages/install`, {
      role: "operator",
      rawBody: '{"packages": ["nginx",',
      headers: { "content-type": "application/json" },
    });
    await expectProblem(res, 400, "ERR_MALFORMED_JSON");
    await expectNoCommands(host.host_id);
  });

  it.each([
    ["packages as a string", { packages: "nginx" }, "packages"],
    ["timeout as a string", { packages: ["nginx"], timeout: "300" }, "timeout"],
    ["timeout 0", { packages: ["nginx"], timeout: 0 }, "timeout"],
    ["timeout above 24 h", { packages: ["nginx"], timeout: 999999 }, "timeout"],
    ["fractional timeout", { packages: ["nginx"], timeout: 1.5 }, "timeout"],
    ["options not an object", { packages: ["nginx"], options: "yes" }, "options"],
    ["option with a non-boolean value", { packages: ["nginx"], options: { yes: "true" } }, "options.yes"],
    ["expires_in 0", { packages: ["nginx"], expires_in: 0 }, "expires_in"],
    ["expires_at not RFC 3339", { packages: ["nginx"], expires_at: "tomorrow" }, "expires_at"],
    ["max_attempts 0", { packages: ["nginx"], max_attempts: 0 }, "max_attempts"],
    ["too many packages", { packages: Array.from({ length: Limits.MAX_PACKAGES + 1 }, (_, i) => `p${i}`) }, "packages"],
  ])("%s → 400 ERR_VALIDATION naming the field", async (_, body, path) => {
    const host = await registerHost();
    await expectValidation(await install(host.host_id, body), path);
    await expectNoCommands(host.host_id);
  });

  it("an unknown top-level field is refused (strict)", async () => {
    const host = await registerHost();
    const res = await install(host.host_id, { packages: ["nginx"], sudo: true });
    const problem = await expectProblem(res, 400, "ERR_VALIDATION");
    expect(problem.detail).toContain("sudo");
    await expectNoCommands(host.host_id);
  });

  it("an unknown package option is refused rather than passed to the manager", async () => {
    const host = await registerHost();
    const res = await install(host.host_id, { packages: ["nginx"], options: { force: true } });
    const problem = await expectValidation(res, "options");
    expect(problem.detail).toContain("force");
    await expectNoCommands(host.host_id);
  });

  it.each([
    "nginx; rm -rf /",
    "-oDpkg::Pre-Invoke=x",
    "--force-yes",
    "$(reboot)",
    "a b",
    "../../etc",
    "a/../../etc",
    "`id`",
    "",
    "x".repeat(200),
    "nginx\n",
    "nginx|sh",
    "nginx&&id",
    "*",
    "ngïnx",
  ])("hostile package name %j → 400 naming packages.1", async (name) => {
    const host = await registerHost();
    const res = await install(host.host_id, { packages: ["curl", name] });
    await expectValidation(res, "packages.1");
    await expectNoCommands(host.host_id);
  });

  it("hostile package names are refused on the generic command route too", async () => {
    const host = await registerHost();
    const res = await command(host.host_id, {
      command_type: "package_operation",
      parameters: { operation: "install", packages: ["$(reboot)"] },
    });
    await expectValidation(res, "parameters.packages.0");
    await expectNoCommands(host.host_id);
  });

  it("a body over 64 KiB → 413 ERR_BODY_TOO_LARGE", async () => {
    const host = await registerHost();
    const body = { packages: ["nginx"], pad: "x".repeat(Limits.MAX_BODY_BYTES + 1) };
    const res = await install(host.host_id, body);
    await expectProblem(res, 413, "ERR_BODY_TOO_LARGE");
    await expectNoCommands(host.host_id);
  });

  it("a streamed body over 64 KiB without Content-Length → 413 ERR_BODY_TOO_LARGE", async () => {
    const host = await registerHost();
    const json = JSON.stringify({ packages: ["nginx"], pad: "x".repeat(Limits.MAX_BODY_BYTES + 1) });
    const bytes = new TextEncoder().encode(json);
    const stream = new ReadableStream<Uint8Array>({
      start(controller) {
        for (let i = 0; i < bytes.length; i += 8192) controller.enqueue(bytes.slice(i, i + 8192));
        controller.close();
      },
    });
    const req = new Request(`${BASE}/api/hosts/${host.host_id}/packages/install`, {
      method: "POST",
      headers: { authorization: `Bearer ${await token("operator")}`, "content-type": "application/json" },
      body: stream,
    });
    expect(req.headers.get("content-length")).toBeNull();
    await expectProblem(await exports.default.fetch(req), 413, "ERR_BODY_TOO_LARGE");
    await expectNoCommands(host.host_id);
  });

  it("a body sent as text/plain → 415", async () => {
    const host = await registerHost();
    const res = await install(host.host_id, { packages: ["nginx"] }, { "content-type": "text/plain" });
    await expectProblem(res, 415, "ERR_UNSUPPORTED_MEDIA_TYPE");
    await expectNoCommands(host.host_id);
  });

  it("a body without Content-Type → 415", async () => {
    const host = await registerHost();
    const res = await api(`/api/hosts/${host.host_id}/packages/install`, {
      role: "operator",
      rawBody: JSON.stringify({ packages: ["nginx"] }),
    });
    await expectProblem(res, 415, "ERR_UNSUPPORTED_MEDIA_TYPE");
    await expectNoCommands(host.host_id);
  });

  it("application/json with a charset parameter is accepted", async () => {
    const host = await registerHost();
    const res = await install(host.host_id, { packages: ["nginx"] }, { "content-type": "application/json; charset=utf-8" });
    expect(res.status).toBe(202);
  });

  it.each(["application/json; foo", "application/vnd.fleet+v1+json"])(
    "a JSON-looking Content-Type the body parser does not take (%s) → 415, never 500",
    async (contentType) => {
      const host = await registerHost();
      const res = await install(host.host_id, { packages: ["nginx"] }, { "content-type": contentType });
      await expectProblem(res, 415, "ERR_UNSUPPORTED_MEDIA_TYPE");
      await expectNoCommands(host.host_id);
    },
  );

  it("expires_at and expires_in together → 400", async () => {
    const host = await registerHost();
    const expires_at = new Date(Date.now() + 3600_000).toISOString();
    await expectValidation(await install(host.host_id, { packages: ["nginx"], expires_at, expires_in: 600 }), "expires_in");
    await expectNoCommands(host.host_id);
  });

  it("expires_at in the past → 400 ERR_DEADLINE_IN_PAST", async () => {
    const host = await registerHost();
    const expires_at = new Date(Date.now() - 60_000).toISOString();
    await expectProblem(await install(host.host_id, { packages: ["nginx"], expires_at }), 400, "ERR_DEADLINE_IN_PAST");
    await expectNoCommands(host.host_id);
  });

  it("an explicit expires_in sets the deadline", async () => {
    const host = await registerHost();
    const res = await install(host.host_id, { packages: ["nginx"], expires_in: 600, max_attempts: 3 });
    expect(res.status).toBe(202);
    const view = await getCommand(host.host_id, ((await res.json()) as any).message_id);
    expect(Date.parse(view.expires_at) - Date.parse(view.created_at)).toBe(600_000);
    expect(view.max_attempts).toBe(3);
  });

  it("a host_id that is not a uuid → 400 naming host_id", async () => {
    const res = await install("not-a-uuid", { packages: ["nginx"] });
    const problem = await expectProblem(res, 400, "ERR_VALIDATION");
    expect(errorPaths(problem).some((p) => p.endsWith("host_id"))).toBe(true);
  });

  it("an unregistered host → 404 ERR_HOST_NOT_FOUND, and nothing is queued for it", async () => {
    const hostId = crypto.randomUUID();
    await expectProblem(await install(hostId, { packages: ["nginx"] }), 404, "ERR_HOST_NOT_FOUND");
    await expectProblem(await command(hostId, { command_type: "system_info" }), 404, "ERR_HOST_NOT_FOUND");
    await expectProblem(await api(`/api/hosts/${hostId}/commands`, { role: "viewer" }), 404, "ERR_HOST_NOT_FOUND");
  });

  it.each(["job:7d0c5b1e-6f1a-4a57-9a0e-3b8f4f2c9d11", "job:x", "Job:x"])(
    "the reserved Idempotency-Key prefix (%s) → 400 naming the header, on both command routes",
    async (key) => {
      const host = await registerHost();
      for (const res of [
        await install(host.host_id, { packages: ["nginx"] }, { "idempotency-key": key }),
        await command(host.host_id, { command_type: "system_info" }, { "idempotency-key": key }),
      ]) {
        const problem = await expectProblem(res, 400, "ERR_VALIDATION");
        expect(errorPaths(problem).join(" ")).toContain("idempotency-key");
        expect(problem.detail).toContain("reserved");
      }
      await expectNoCommands(host.host_id);
    },
  );

  it("an Idempotency-Key that is not a token → 400", async () => {
    const host = await registerHost();
    const res = await install(host.host_id, { packages: ["nginx"] }, { "idempotency-key": "has spaces in it" });
    const problem = await expectProblem(res, 400, "ERR_VALIDATION");
    expect(errorPaths(problem).join(" ")).toContain("idempotency-key");
    await expectNoCommands(host.host_id);
  });
});

describe("POST /api/hosts/{host_id}/commands", () => {
  it.each([
    ["package_operation", { command_type: "package_operation", parameters: { operation: "remove", packages: ["telnet"] } }],
    ["system_info", { command_type: "system_info" }],
    ["system_info with empty parameters", { command_type: "system_info", parameters: {} }],
    ["shell", { command_type: "shell", parameters: { script: "uptime", cwd: "/tmp", env: { LANG: "C" } }, timeout: 30 }],
  ])("%s → 202 with Location", async (_, body) => {
    const host = await registerHost();
    const res = await command(host.host_id, body);
    expect(res.status).toBe(202);
    const accepted = (await res.json()) as any;
    expect(accepted.status).toBe("queued");
    expect(res.headers.get("location")).toBe(`/api/hosts/${host.host_id}/commands/${accepted.message_id}`);
    const view = await getCommand(host.host_id, accepted.message_id);
    expect(view.command_type).toBe((body as any).command_type);
    expect(view.state).toBe("queued");
  });

  it.each([
    ["shell without script", { command_type: "shell", parameters: {} }, "parameters.script"],
    ["shell with empty script", { command_type: "shell", parameters: { script: "" } }, "parameters.script"],
    ["shell with relative cwd", { command_type: "shell", parameters: { script: "ls", cwd: "tmp" } }, "parameters.cwd"],
    ["shell without parameters", { command_type: "shell" }, "parameters"],
    ["install without packages", { command_type: "package_operation", parameters: { operation: "install" } }, "parameters.packages"],
    ["unknown parameter", { command_type: "system_info", parameters: { verbose: true } }, "parameters"],
  ])("%s → 400 naming the field", async (_, body, path) => {
    const host = await registerHost();
    await expectValidation(await command(host.host_id, body), path);
    await expectNoCommands(host.host_id);
  });

  it("an unknown command type → 400", async () => {
    const host = await registerHost();
    await expectProblem(await command(host.host_id, { command_type: "reboot" }), 400, "ERR_VALIDATION");
    await expectNoCommands(host.host_id);
  });

  it("an unknown top-level field → 400 (strict)", async () => {
    const host = await registerHost();
    await expectProblem(await command(host.host_id, { command_type: "system_info", priority: 1 }), 400, "ERR_VALIDATION");
    await expectNoCommands(host.host_id);
  });

  it("update with no packages → 202", async () => {
    const host = await registerHost();
    const res = await command(host.host_id, { command_type: "package_operation", parameters: { operation: "update" } });
    expect(res.status).toBe(202);
  });
});

describe("Idempotency-Key", () => {
  it("the same key and body twice queue one command and return its message_id", async () => {
    const host = await registerHost();
    const headers = { "idempotency-key": `deploy-${crypto.randomUUID()}` };
    const body = { packages: ["nginx"], options: { yes: true } };
    const first = await install(host.host_id, body, headers);
    const second = await install(host.host_id, body, headers);
    expect(first.status).toBe(202);
    expect(second.status).toBe(202);
    const a = (await first.json()) as any;
    const b = (await second.json()) as any;
    expect(b.message_id).toBe(a.message_id);
    expect(second.headers.get("location")).toBe(first.headers.get("location"));
    const page = await listHostCommands(host.host_id);
    expect(page.items.map((c) => c.message_id)).toEqual([a.message_id]);
  });

  it("the same key with a different body → 409 ERR_IDEMPOTENCY_CONFLICT, and nothing new is queued", async () => {
    const host = await registerHost();
    const headers = { "idempotency-key": `k-${crypto.randomUUID()}` };
    const first = await install(host.host_id, { packages: ["nginx"] }, headers);
    expect(first.status).toBe(202);
    const a = (await first.json()) as any;
    await expectProblem(await install(host.host_id, { packages: ["curl"] }, headers), 409, "ERR_IDEMPOTENCY_CONFLICT");
    await expectProblem(await command(host.host_id, { command_type: "system_info" }, headers), 409, "ERR_IDEMPOTENCY_CONFLICT");
    const page = await listHostCommands(host.host_id);
    expect(page.items.map((c) => c.message_id)).toEqual([a.message_id]);
  });

  it("different keys queue different commands", async () => {
    const host = await registerHost();
    const body = { packages: ["nginx"] };
    const a = (await (await install(host.host_id, body, { "idempotency-key": "one" })).json()) as any;
    const b = (await (await install(host.host_id, body, { "idempotency-key": "two" })).json()) as any;
    expect(a.message_id).not.toBe(b.message_id);
    expect((await listHostCommands(host.host_id)).items).toHaveLength(2);
  });
});

describe("GET /api/hosts/{host_id}/commands", () => {
  it("pages newest first with a cursor until next_cursor is null", async () => {
    const host = await registerHost();
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) ids.push(await queueSystemInfo(host.host_id));
    const newestFirst = [...ids].reverse();

    const p1 = await listHostCommands(host.host_id, "limit=2");
    expect(p1.items.map((c) => c.message_id)).toEqual(newestFirst.slice(0, 2));
    expect(p1.next_cursor).toEqual(expect.any(String));
    const p2 = await listHostCommands(host.host_id, `limit=2&cursor=${encodeURIComponent(p1.next_cursor!)}`);
    expect(p2.items.map((c) => c.message_id)).toEqual(newestFirst.slice(2, 4));
    expect(p2.next_cursor).toEqual(expect.any(String));
    const p3 = await listHostCommands(host.host_id, `limit=2&cursor=${encodeURIComponent(p2.next_cursor!)}`);
    expect(p3.items.map((c) => c.message_id)).toEqual(newestFirst.slice(4));
    expect(p3.next_cursor).toBeNull();

    for (const item of p1.items) {
      expect(item).toMatchObject({ host_id: host.host_id, command_type: "system_info", state: "queued", attempts: 0 });
    }
  });

  it("an exact multiple of the page size ends with next_cursor null, not an empty page", async () => {
    const host = await registerHost();
    for (let i = 0; i < 4; i++) await queueSystemInfo(host.host_id);
    const p1 = await listHostCommands(host.host_id, "limit=2");
    const p2 = await listHostCommands(host.host_id, `limit=2&cursor=${encodeURIComponent(p1.next_cursor!)}`);
    expect(p2.items).toHaveLength(2);
    expect(p2.next_cursor).toBeNull();
  });

  it("filters by state, one or several", async () => {
    const host = await registerHost();
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) ids.push(await queueSystemInfo(host.host_id));
    const cancel = await api(`/api/hosts/${host.host_id}/commands/${ids[1]}`, { method: "DELETE", role: "operator" });
    expect(cancel.status).toBe(200);

    const cancelled = await listHostCommands(host.host_id, "state=cancelled");
    expect(cancelled.items.map((c) => c.message_id)).toEqual([ids[1]]);
    const queued = await listHostCommands(host.host_id, "state=queued");
    expect(queued.items.map((c) => c.message_id)).toEqual([ids[2], ids[0]]);
    const both = await listHostCommands(host.host_id, "state=queued,cancelled");
    expect(both.items.map((c) => c.message_id)).toEqual([ids[2], ids[1], ids[0]]);
    const none = await listHostCommands(host.host_id, "state=succeeded");
    expect(none.items).toEqual([]);
  });

  it("state filter and cursor combine", async () => {
    const host = await registerHost();
    const ids: string[] = [];
    for (let i = 0; i < 4; i++) ids.push(await queueSystemInfo(host.host_id));
    expect((await api(`/api/hosts/${host.host_id}/commands/${ids[3]}`, { method: "DELETE", role: "operator" })).status).toBe(200);
    const p1 = await listHostCommands(host.host_id, "state=queued&limit=2");
    expect(p1.items.map((c) => c.message_id)).toEqual([ids[2], ids[1]]);
    const p2 = await listHostCommands(host.host_id, `state=queued&limit=2&cursor=${encodeURIComponent(p1.next_cursor!)}`);
    expect(p2.items.map((c) => c.message_id)).toEqual([ids[0]]);
    expect(p2.next_cursor).toBeNull();
  });

  it.each([
    ["a bad cursor", "cursor=garbage"],
    ["a cursor from the hosts list", "cursor=h00000000-0000-0000-0000-000000000000"],
    ["an unknown state", "state=done"],
    ["limit 0", "limit=0"],
    ["limit above the maximum", `limit=${Limits.MAX_PAGE_SIZE + 1}`],
    ["an unknown query parameter", "sort=asc"],
  ])("%s → 400", async (_, query) => {
    const host = await registerHost();
    await queueSystemInfo(host.host_id);
    const res = await api(`/api/hosts/${host.host_id}/commands?${query}`, { role: "viewer" });
    await expectProblem(res, 400, "ERR_VALIDATION");
  });
});

describe("GET /api/hosts/{host_id}/commands/{message_id}", () => {
  it("an unknown command → 404 ERR_COMMAND_NOT_FOUND", async () => {
    const host = await registerHost();
    await queueSystemInfo(host.host_id);
    const res = await api(`/api/hosts/${host.host_id}/commands/${crypto.randomUUID()}`, { role: "viewer" });
    await expectProblem(res, 404, "ERR_COMMAND_NOT_FOUND");
  });

  it("a command is only visible under its own host", async () => {
    const a = await registerHost();
    const b = await registerHost();
    const id = await queueSystemInfo(a.host_id);
    await queueSystemInfo(b.host_id);
    const res = await api(`/api/hosts/${b.host_id}/commands/${id}`, { role: "viewer" });
    await expectProblem(res, 404, "ERR_COMMAND_NOT_FOUND");
  });

  it("a message_id that is not a uuid → 400", async () => {
    const host = await registerHost();
    const res = await api(`/api/hosts/${host.host_id}/commands/nope`, { role: "viewer" });
    await expectProblem(res, 400, "ERR_VALIDATION");
  });
});

describe("DELETE /api/hosts/{host_id}/commands/{message_id}", () => {
  it("cancels a queued command once; a second cancel → 409", async () => {
    const host = await registerHost();
    const id = await queueSystemInfo(host.host_id);
    const res = await api(`/api/hosts/${host.host_id}/commands/${id}`, { method: "DELETE", role: "operator" });
    expect(res.status).toBe(200);
    const view = (await res.json()) as any;
    expect(view.state).toBe("cancelled");
    expect(view.history.map((h: any) => h.state)).toEqual(["queued", "cancelled"]);
    const again = await api(`/api/hosts/${host.host_id}/commands/${id}`, { method: "DELETE", role: "operator" });
    await expectProblem(again, 409, "ERR_COMMAND_NOT_CANCELLABLE");
  });

  it("a viewer cannot cancel", async () => {
    const host = await registerHost();
    const id = await queueSystemInfo(host.host_id);
    await expectProblem(await api(`/api/hosts/${host.host_id}/commands/${id}`, { method: "DELETE", role: "viewer" }), 403, "ERR_FORBIDDEN");
    expect((await getCommand(host.host_id, id)).state).toBe("queued");
  });
});
