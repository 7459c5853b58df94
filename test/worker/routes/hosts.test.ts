import { exports } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { CloseCode } from "../../../schemas/index.ts";
import {
  api,
  colonFingerprint,
  connectRequest,
  errorPaths,
  expectProblem,
  getCommand,
  getHostView,
  helloFrame,
  listHostCommands,
  queueSystemInfo,
  registerHost,
  TestAgent,
  tlsClientAuth,
  uniqueFingerprint,
  waitFor,
} from "../helpers.ts";

function createHost(body: unknown, role = "admin"): Promise<Response> {
  return api("/api/hosts", { role, body });
}

/** Every host the list returns for `query`, following next_cursor; checks ordering and no repeats. */
async function allHosts(query: string, limit = 100): Promise<any[]> {
  const seen: any[] = [];
  let cursor: string | null = null;
  for (let pages = 0; pages < 1000; pages++) {
    const q = new URLSearchParams(query);
    q.set("limit", String(limit));
    if (cursor) q.set("cursor", cursor);
    const res = await api(`/api/hosts?${q}`, { role: "viewer" });
    expect(res.status).toBe(200);
    const page = (await res.json()) as { items: any[]; next_cursor: string | null };
    expect(page.items.length).toBeLessThanOrEqual(limit);
    seen.push(...page.items);
    if (page.next_cursor === null) break;
    expect(page.items).toHaveLength(limit);
    cursor = page.next_cursor;
  }
  const ids = seen.map((h) => h.host_id);
  expect(new Set(ids).size).toBe(ids.length);
  expect(ids).toEqual([...ids].sort());
  return seen;
}

function revoke(hostId: string, role = "admin"): Promise<Response> {
  return api(`/api/hosts/${hostId}/revoke`, { method: "POST", role });
}

describe("POST /api/hosts", () => {
  it("registers a host: 201, offline, tags, Location", async () => {
    const fingerprint = uniqueFingerprint();
    const res = await createHost({ hostname: "web-1.example.com", cert_fingerprint_sha256: fingerprint, tags: ["prod", "web"] });
    expect(res.status).toBe(201);
    const host = (await res.json()) as any;
    expect(host).toMatchObject({
      host_id: expect.stringMatching(/^[0-9a-f-]{36}$/),
      hostname: "web-1.example.com",
      cert_fingerprint_sha256: fingerprint,
      tags: ["prod", "web"],
      status: "offline",
      connected_at: null,
      last_seen_at: null,
      revoked_at: null,
      agent: null,
    });
    expect(Number.isNaN(Date.parse(host.created_at))).toBe(false);
    expect(res.headers.get("location")).toBe(`/api/hosts/${host.host_id}`);
    const got = await getHostView(host.host_id);
    expect(got).toMatchObject({ host_id: host.host_id, tags: ["prod", "web"], status: "offline", queue_depth: 0 });
  });

  it("tags default to none and duplicates collapse", async () => {
    const plain = (await (await createHost({ hostname: "a", cert_fingerprint_sha256: uniqueFingerprint() })).json()) as any;
    expect(plain.tags).toEqual([]);
    const dup = await createHost({ hostname: "b", cert_fingerprint_sha256: uniqueFingerprint(), tags: ["x", "x", "a"] });
    expect(dup.status).toBe(201);
    expect(((await dup.json()) as any).tags).toEqual(["a", "x"]);
  });

  it("a fingerprint with colons and upper case is stored normalised", async () => {
    const fingerprint = uniqueFingerprint();
    const res = await createHost({ hostname: "norm", cert_fingerprint_sha256: colonFingerprint(fingerprint) });
    expect(res.status).toBe(201);
    expect(((await res.json()) as any).cert_fingerprint_sha256).toBe(fingerprint);
  });

  it("a fingerprint already registered → 409 ERR_HOST_EXISTS, in any spelling", async () => {
    const host = await registerHost();
    await expectProblem(await createHost({ hostname: "again", cert_fingerprint_sha256: host.fingerprint }), 409, "ERR_HOST_EXISTS");
    await expectProblem(
      await createHost({ hostname: "again", cert_fingerprint_sha256: colonFingerprint(host.fingerprint) }),
      409,
      "ERR_HOST_EXISTS",
    );
    const listed = (await allHosts("", 500)).filter((h) => h.cert_fingerprint_sha256 === host.fingerprint);
    expect(listed.map((h) => h.host_id)).toEqual([host.host_id]);
  });

  it.each([
    ["an empty hostname", { hostname: "" }, "hostname"],
    ["a hostname with a space", { hostname: "web 1" }, "hostname"],
    ["a hostname with shell characters", { hostname: "web;reboot" }, "hostname"],
    ["a hostname starting with a dash", { hostname: "-web" }, "hostname"],
    ["a hostname over 253 characters", { hostname: "a".repeat(254) }, "hostname"],
    ["a short fingerprint", { cert_fingerprint_sha256: "abcd" }, "cert_fingerprint_sha256"],
    ["a non-hex fingerprint", { cert_fingerprint_sha256: "z".repeat(64) }, "cert_fingerprint_sha256"],
    ["a SHA-1 fingerprint", { cert_fingerprint_sha256: "ab".repeat(20) }, "cert_fingerprint_sha256"],
    ["an upper-case tag", { tags: ["Prod"] }, "tags.0"],
    ["a tag with a space", { tags: ["ok", "two words"] }, "tags.1"],
    ["an empty tag", { tags: [""] }, "tags.0"],
    ["tags not an array", { tags: "prod" }, "tags"],
  ])("%s → 400 naming the field", async (_, override, path) => {
    const fingerprint = uniqueFingerprint();
    const res = await createHost({ hostname: "valid-host", cert_fingerprint_sha256: fingerprint, ...override });
    const problem = await expectProblem(res, 400, "ERR_VALIDATION");
    expect(errorPaths(problem)).toContain(path);
    // Nothing registered: the fingerprint is still free.
    expect((await createHost({ hostname: "valid-host", cert_fingerprint_sha256: fingerprint })).status).toBe(201);
  });

  it("an unknown field → 400 (strict)", async () => {
    const res = await createHost({ hostname: "h", cert_fingerprint_sha256: uniqueFingerprint(), role: "admin" });
    await expectProblem(res, 400, "ERR_VALIDATION");
  });
});

describe("GET /api/hosts", () => {
  it("pages through every host once, in host_id order, with the status filter", async () => {
    const online = await registerHost(["list-test"]);
    const offline = await registerHost(["list-test"]);
    const revoked = await registerHost(["list-test"]);
    expect((await revoke(revoked.host_id)).status).toBe(200);
    const agent = await TestAgent.connect(online.fingerprint);
    await waitFor(
      () => getHostView(online.host_id),
      (h) => h.status === "online",
    );

    const everyone = await allHosts("", 2);
    const ids = everyone.map((h) => h.host_id);
    expect(ids).toEqual(expect.arrayContaining([online.host_id, offline.host_id, revoked.host_id]));

    const onlineIds = (await allHosts("status=online", 2)).map((h) => h.host_id);
    expect(onlineIds).toContain(online.host_id);
    expect(onlineIds).not.toContain(offline.host_id);
    expect(onlineIds).not.toContain(revoked.host_id);

    const offlineHosts = await allHosts("status=offline", 2);
    expect(offlineHosts.every((h) => h.status === "offline")).toBe(true);
    expect(offlineHosts.map((h) => h.host_id)).toContain(offline.host_id);
    expect(offlineHosts.map((h) => h.host_id)).not.toContain(online.host_id);

    const revokedHosts = await allHosts("status=revoked");
    expect(revokedHosts.every((h) => h.status === "revoked")).toBe(true);
    expect(revokedHosts.map((h) => h.host_id)).toContain(revoked.host_id);
    agent.close();
  });

  it.each([
    ["a bad cursor", "cursor=nope"],
    ["a command cursor", "cursor=c12"],
    ["an unknown status", "status=sleeping"],
    ["limit 0", "limit=0"],
    ["an unknown parameter", "tag=prod"],
  ])("%s → 400", async (_, query) => {
    await expectProblem(await api(`/api/hosts?${query}`, { role: "viewer" }), 400, "ERR_VALIDATION");
  });
});

describe("GET /api/hosts: tag and text filters", () => {
  /** Hosts with a run-unique hostname prefix, so other tests' hosts never match the text filter. */
  async function fleet() {
    const run = crypto.randomUUID().slice(0, 8);
    const make = async (name: string, tags: string[]) => {
      const res = await createHost({ hostname: `flt${run}-${name}`, cert_fingerprint_sha256: uniqueFingerprint(), tags });
      expect(res.status).toBe(201);
      return ((await res.json()) as { host_id: string }).host_id;
    };
    const tag = (t: string) => `${t}-${run}`;
    return {
      run,
      tag,
      web: await make("web-1", [tag("web"), tag("prod")]),
      webStaging: await make("web-2", [tag("web"), tag("staging")]),
      db: await make("db-1", [tag("db"), tag("prod")]),
      bare: await make("bare-1", []),
    };
  }
  const ids = (hosts: any[]) => hosts.map((h) => h.host_id).sort();

  it("tags match any by default, all with match=all; text matches hostnames; all combine with AND and page", async () => {
    const f = await fleet();
    expect(ids(await allHosts(`tags=${f.tag("web")}`, 1))).toEqual([f.web, f.webStaging].sort());
    expect(ids(await allHosts(`tags=${f.tag("web")},${f.tag("db")}`, 1))).toEqual([f.web, f.webStaging, f.db].sort());
    expect(ids(await allHosts(`tags=${f.tag("web")},${f.tag("prod")}&match=all`, 1))).toEqual([f.web]);
    expect(ids(await allHosts(`tags=${f.tag("web")},${f.tag("db")}&match=all`))).toEqual([]);
    // A repeated tag is one tag: "all" of {web, web} is every web host.
    expect(ids(await allHosts(`tags=${f.tag("web")},${f.tag("web")}&match=all`))).toEqual([f.web, f.webStaging].sort());

    expect(ids(await allHosts(`q=flt${f.run}`, 1))).toEqual([f.web, f.webStaging, f.db, f.bare].sort());
    expect(ids(await allHosts(`q=FLT${f.run}-WEB`))).toEqual([f.web, f.webStaging].sort());
    expect(ids(await allHosts(`q=${f.run}-db`))).toEqual([f.db]);
    // The text is literal: LIKE wildcards in it match only themselves.
    expect(ids(await allHosts(`q=flt${f.run}%25`))).toEqual([]);
    expect(ids(await allHosts(`q=flt${f.run}_web`))).toEqual([]);
    // The longest text, all wildcard characters (found by the REST fuzz: an escaped LIKE pattern
    // passed D1's 50-byte cap and answered 500).
    expect(ids(await allHosts(`q=${"%25".repeat(64)}`))).toEqual([]);
    // A host id prefix finds the host.
    expect(ids(await allHosts(`q=${f.bare.slice(0, 13)}`))).toEqual([f.bare]);

    expect(ids(await allHosts(`q=flt${f.run}&tags=${f.tag("prod")}&status=offline`, 1))).toEqual([f.web, f.db].sort());
    expect(ids(await allHosts(`q=flt${f.run}&tags=${f.tag("prod")}&status=online`))).toEqual([]);
    expect((await revoke(f.db)).status).toBe(200);
    expect(ids(await allHosts(`tags=${f.tag("prod")}&status=revoked`))).toEqual([f.db]);
    expect(ids(await allHosts(`tags=${f.tag("prod")}&status=offline`))).toEqual([f.web]);
  });

  it.each([
    ["an empty tag list", "tags="],
    ["an invalid tag", "tags=Web"],
    ["eleven tags", `tags=${Array.from({ length: 11 }, (_, i) => `t${i}`).join(",")}`],
    ["an unknown match", "tags=web&match=some"],
    ["an empty text", "q="],
    ["a 65-character text", `q=${"x".repeat(65)}`],
  ])("%s → 400", async (_, query) => {
    await expectProblem(await api(`/api/hosts?${query}`, { role: "viewer" }), 400, "ERR_VALIDATION");
  });
});

describe("GET /api/hosts: queue depth", () => {
  it("each listed host carries its queue depth as its relay reported it, in one lookup per page", async () => {
    const busy = await registerHost(["queue-depth-test"]);
    const idle = await registerHost(["queue-depth-test"]);
    await queueSystemInfo(busy.host_id);
    await queueSystemInfo(busy.host_id);
    const listed = await waitFor(
      async () => ((await (await api("/api/hosts?tags=queue-depth-test", { role: "viewer" })).json()) as any).items as any[],
      (items) => items.find((h) => h.host_id === busy.host_id)?.queue_depth === 2,
    );
    expect(listed.find((h) => h.host_id === idle.host_id)?.queue_depth).toBe(0);
  });
});

describe("GET /api/hosts/{host_id}", () => {
  it("shows agent info from hello once online, and queue_depth counts unfinished commands", async () => {
    const host = await registerHost();
    const a = await queueSystemInfo(host.host_id);
    const b = await queueSystemInfo(host.host_id);
    await queueSystemInfo(host.host_id);
    expect((await getHostView(host.host_id)).queue_depth).toBe(3);
    expect((await api(`/api/hosts/${host.host_id}/commands/${b}`, { method: "DELETE", role: "operator" })).status).toBe(200);
    expect((await getHostView(host.host_id)).queue_depth).toBe(2);

    const res = await exports.default.fetch(connectRequest(tlsClientAuth(host.fingerprint)));
    expect(res.status).toBe(101);
    const ws = res.webSocket!;
    ws.accept();
    const agent = new TestAgent(ws);
    agent.send(helloFrame({ agent_version: "9.8.7", hostname: "db-7", os: { name: "ubuntu", version: "24.04", arch: "aarch64" } }));
    await agent.next((f) => f.message_type === "welcome");
    const view = await waitFor(
      () => getHostView(host.host_id),
      (h) => h.status === "online",
    );
    expect(view.agent).toMatchObject({
      agent_version: "9.8.7",
      protocol_version: 1,
      hostname: "db-7",
      os: { name: "ubuntu", version: "24.04", arch: "aarch64" },
      supported_commands: ["package_operation", "system_info"],
    });
    expect(view.connected_at).toEqual(expect.any(String));
    expect(view.last_seen_at).toEqual(expect.any(String));

    // One command finishes: the depth drops by one.
    const cmd = await agent.command(a);
    agent.ack(cmd.message_id);
    await agent.acked(agent.respond(a));
    expect((await getCommand(host.host_id, a)).state).toBe("succeeded");
    expect((await getHostView(host.host_id)).queue_depth).toBe(1);
    agent.close();
  });

  it("goes offline with last_seen_at set after the agent disconnects", async () => {
    const host = await registerHost();
    const agent = await TestAgent.connect(host.fingerprint);
    const online = await waitFor(
      () => getHostView(host.host_id),
      (h) => h.status === "online",
    );
    agent.close();
    const offline = await waitFor(
      () => getHostView(host.host_id),
      (h) => h.status === "offline",
    );
    expect(offline.last_seen_at).toEqual(expect.any(String));
    expect(Date.parse(offline.last_seen_at)).toBeGreaterThanOrEqual(Date.parse(online.connected_at));
    // What the agent told us stays visible while it is away.
    expect(offline.agent).toMatchObject({ agent_version: "0.1.0" });
  });

  it("an unknown host → 404 ERR_HOST_NOT_FOUND", async () => {
    await expectProblem(await api(`/api/hosts/${crypto.randomUUID()}`, { role: "viewer" }), 404, "ERR_HOST_NOT_FOUND");
  });

  it("a host_id that is not a uuid → 400", async () => {
    await expectProblem(await api("/api/hosts/web-1", { role: "viewer" }), 400, "ERR_VALIDATION");
  });
});

describe("POST /api/hosts/{host_id}/revoke", () => {
  it("revokes: disconnects the agent with 4003, cancels its queue, refuses commands and reconnects", async () => {
    const host = await registerHost();
    const agent = await TestAgent.connect(host.fingerprint);
    await waitFor(
      () => getHostView(host.host_id),
      (h) => h.status === "online",
    );
    // Sent to the agent but never acked: still queued when the host is revoked.
    const a = await queueSystemInfo(host.host_id);
    const b = await queueSystemInfo(host.host_id);
    await agent.command(a);

    const res = await revoke(host.host_id);
    expect(res.status).toBe(200);
    const view = (await res.json()) as any;
    expect(view.host_id).toBe(host.host_id);
    expect(view.status).toBe("revoked");
    expect(view.revoked_at).toEqual(expect.any(String));

    const closed = await agent.waitClose();
    expect(closed.code).toBe(CloseCode.REVOKED);

    // Both were sent (the in-flight window holds them) but never acked: the agent may hold them, so the
    // relay gives up (expired) rather than claiming "cancelled". A never-sent command is cancelled (command-states tests).
    for (const id of [a, b]) {
      const cmd = await getCommand(host.host_id, id);
      expect(cmd.history.map((h: any) => h.state)).toEqual(["queued", "expired"]);
    }
    const expired = await listHostCommands(host.host_id, "state=expired");
    expect(expired.items.map((c) => c.message_id).sort()).toEqual([a, b].sort());

    const after = await getHostView(host.host_id);
    expect(after.status).toBe("revoked");
    expect(after.queue_depth).toBe(0);

    await expectProblem(
      await api(`/api/hosts/${host.host_id}/packages/install`, { role: "operator", body: { packages: ["nginx"] } }),
      409,
      "ERR_HOST_REVOKED",
    );
    await expectProblem(
      await api(`/api/hosts/${host.host_id}/commands`, { role: "operator", body: { command_type: "system_info" } }),
      409,
      "ERR_HOST_REVOKED",
    );
    expect((await listHostCommands(host.host_id)).items).toHaveLength(2);

    await expectProblem(await exports.default.fetch(connectRequest(tlsClientAuth(host.fingerprint))), 403, "ERR_AGENT_REVOKED");
  });

  it("revoking a host that never connected refuses its commands too", async () => {
    const host = await registerHost();
    expect((await revoke(host.host_id)).status).toBe(200);
    await expectProblem(
      await api(`/api/hosts/${host.host_id}/commands`, { role: "operator", body: { command_type: "system_info" } }),
      409,
      "ERR_HOST_REVOKED",
    );
    expect((await listHostCommands(host.host_id)).items).toEqual([]);
  });

  it("revoking twice is harmless and keeps the first revocation time", async () => {
    const host = await registerHost();
    const first = (await (await revoke(host.host_id)).json()) as any;
    const second = await revoke(host.host_id);
    expect(second.status).toBe(200);
    expect(((await second.json()) as any).revoked_at).toBe(first.revoked_at);
  });

  it("an unknown host → 404 ERR_HOST_NOT_FOUND", async () => {
    await expectProblem(await revoke(crypto.randomUUID()), 404, "ERR_HOST_NOT_FOUND");
  });

  it.each(["viewer", "operator"])("a %s cannot revoke", async (role) => {
    const host = await registerHost();
    await expectProblem(await revoke(host.host_id, role), 403, "ERR_FORBIDDEN");
    expect((await getHostView(host.host_id)).status).toBe("offline");
  });
});
