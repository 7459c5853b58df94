import { afterEach, describe, expect, it } from "vitest";
import { EventFilterLimits, EventStreamFrame, FleetEvent } from "../../../schemas/index.ts";
import { EventStream, hostEvent, type OpenOptions, publish, requestStream, sync } from "../fleet-events/stream-client.ts";
import { api, errorPaths, expectProblem, queueSystemInfo, registerHost, TestAgent, token } from "../helpers.ts";

const open: EventStream[] = [];
const agents: TestAgent[] = [];

async function stream(query: string, opts: OpenOptions = {}): Promise<EventStream> {
  const s = await EventStream.open(query, opts);
  open.push(s);
  return s;
}

afterEach(() => {
  for (const s of open.splice(0)) if (!s.closed) s.close();
  for (const a of agents.splice(0)) if (!a.closed) a.close();
});

async function connect(fingerprint: string): Promise<TestAgent> {
  const agent = await TestAgent.connect(fingerprint);
  agents.push(agent);
  return agent;
}

const uuid = () => crypto.randomUUID();

async function expectValidation(res: Response, path: string): Promise<void> {
  const problem = await expectProblem(res, 400, "ERR_VALIDATION");
  expect(errorPaths(problem)).toContain(path);
}

describe("GET /api/events: a command's life on the stream", () => {
  it("shows queued → delivered → running → succeeded with output for a command sent over REST", async () => {
    const host = await registerHost(["web", "eu"]);
    const s = await stream(`hosts=${host.host_id}`);
    const agent = await connect(host.fingerprint);
    const online = await s.next((f) => f.type === "host.online");
    expect(online).toMatchObject({ host_id: host.host_id, tags: ["eu", "web"], epoch: s.control().epoch });

    const id = await queueSystemInfo(host.host_id);
    await agent.command(id);
    agent.ack(id);
    await agent.acked(agent.status(id, "running"));
    agent.status(id, "progress", "collecting facts\n", 0);
    agent.respond(id, "success", { output: "done", exit_code: 0, execution_time: 0.2 });
    await s.next((f) => f.type === "command.state" && f.message_id === id && f.state === "succeeded");

    const mine = s.events((f) => f.message_id === id);
    for (const e of mine) expect(FleetEvent.safeParse(e).success, JSON.stringify(e)).toBe(true);
    expect(mine.map((e) => (e.type === "command.state" ? e.state : e.type))).toEqual([
      "queued",
      "delivered",
      "running",
      "command.output",
      "succeeded",
    ]);
    expect(mine.find((e) => e.type === "command.output")).toMatchObject({ host_id: host.host_id, output: "collecting facts\n", seq: 0 });
    expect(mine.find((e) => e.state === "delivered")).toMatchObject({ attempt: 1 });
    for (const e of mine) expect(e).toMatchObject({ host_id: host.host_id, tags: ["eu", "web"] });
    const offsets = [online, ...mine].map((e) => e.offset);
    expect(offsets).toEqual([...offsets].sort((a, b) => a - b));
    expect(new Set(offsets).size).toBe(offsets.length);

    agent.close();
    const offline = await s.next((f) => f.type === "host.offline");
    expect(offline.host_id).toBe(host.host_id);
    for (const f of s.frames) expect(EventStreamFrame.safeParse(f).success, JSON.stringify(f)).toBe(true);
  });

  it("filters by tag and type using the host's registered tags", async () => {
    const tag = `t-${uuid().slice(0, 8)}`;
    const [tagged, untagged] = [await registerHost([tag]), await registerHost(["other"])];
    const s = await stream(`tags=${tag}&types=host.online`);
    // Sees everything both hosts publish, so the test knows when those events have been fanned out.
    const witness = await stream(`hosts=${tagged.host_id},${untagged.host_id}`);
    await connect(untagged.fingerprint);
    const agent = await connect(tagged.fingerprint);
    const id = await queueSystemInfo(tagged.host_id);
    await agent.command(id);
    agent.ack(id);
    await witness.next((f) => f.type === "host.online" && f.host_id === untagged.host_id);
    await witness.next((f) => f.type === "host.online" && f.host_id === tagged.host_id);
    await witness.next((f) => f.type === "command.state" && f.message_id === id && f.state === "delivered");

    const online = await s.next((f) => f.type === "host.online");
    expect(online).toMatchObject({ host_id: tagged.host_id, tags: [tag] });
    // Published after all of the above: had anything else matched, it would have arrived first.
    const marker = await sync(s, hostEvent(tagged.host_id, "host.online", { tags: [tag] }));
    expect(s.events()).toEqual([online, marker]);
  });
});

describe("GET /api/events: authentication", () => {
  it("a viewer token in the subprotocol works, and the response selects bearer", async () => {
    const s = await stream("", { role: "viewer", via: "subprotocol" });
    expect(s.response.headers.get("sec-websocket-protocol")).toBe("bearer");
    expect(s.control().type).toBe("ready");
  });

  it("an Authorization header works for non-browser clients, without selecting a subprotocol", async () => {
    for (const role of ["viewer", "operator", "admin"]) {
      const s = await stream("", { role, via: "header" });
      expect(s.response.headers.get("sec-websocket-protocol")).toBeNull();
      expect(s.control().type).toBe("ready");
    }
  });

  it("a viewer watching sees live events", async () => {
    const host = uuid();
    const s = await stream(`hosts=${host}`, { role: "viewer" });
    const event = hostEvent(host, "host.online");
    await publish(event);
    expect(await s.next((f) => f.type === "host.online")).toMatchObject(event);
  });

  it("no token → 401 ERR_AUTH_MISSING with a challenge", async () => {
    const res = await requestStream("", { token: null });
    await expectProblem(res, 401, "ERR_AUTH_MISSING");
    expect(res.headers.get("www-authenticate")).toMatch(/^Bearer realm=/);
    expect(res.webSocket).toBeNull();
  });

  it('"bearer" offered without a token after it → 401 ERR_AUTH_MISSING', async () => {
    await expectProblem(await requestStream("", { token: null, protocols: ["bearer"] }), 401, "ERR_AUTH_MISSING");
  });

  it.each(["subprotocol", "header"] as const)("an expired token (%s) → 401 ERR_AUTH_EXPIRED", async (via) => {
    const expired = await token("viewer", { ttl: Math.floor(Date.now() / 1000) - 60 });
    const res = await requestStream("", { token: expired, via });
    await expectProblem(res, 401, "ERR_AUTH_EXPIRED");
    expect(res.headers.get("www-authenticate")).toContain('error="invalid_token"');
  });

  it.each(["subprotocol", "header"] as const)("a token signed with another key (%s) → 401 ERR_AUTH_INVALID", async (via) => {
    const forged = await token("admin", { secret: "another-secret-another-secret-0123456789" });
    await expectProblem(await requestStream("", { token: forged, via }), 401, "ERR_AUTH_INVALID");
  });

  it("a garbage subprotocol token → 401 ERR_AUTH_INVALID", async () => {
    await expectProblem(await requestStream("", { token: "not.a.jwt" }), 401, "ERR_AUTH_INVALID");
  });

  it("a token without a role → 403", async () => {
    await expectProblem(await requestStream("", { token: await token(null) }), 403, "ERR_FORBIDDEN");
  });

  it("authentication comes before filter validation", async () => {
    await expectProblem(await requestStream("hosts=nope", { token: null }), 401, "ERR_AUTH_MISSING");
  });
});

describe("GET /api/events: refusals before the upgrade", () => {
  it.each([
    ["hosts=not-a-uuid", "query.hosts.0"],
    [`hosts=${uuid()},`, "query.hosts.1"],
    ["hosts=", "query.hosts.0"],
    ["jobs=42", "query.jobs.0"],
    ["types=host.online,host.rebooted", "query.types.1"],
    ["tags=Web", "query.tags.0"],
    ["tags=web;rm", "query.tags.0"],
    ["after=-1&epoch=e", "query.after"],
    ["after=1.5&epoch=e", "query.after"],
    ["after=10", "query.epoch"],
    [`epoch=${"e".repeat(65)}`, "query.epoch"],
    ["host=abc", "query"],
    [`hosts=${Array.from({ length: EventFilterLimits.hosts + 1 }, uuid).join(",")}`, "query.hosts"],
    [`jobs=${Array.from({ length: EventFilterLimits.jobs + 1 }, uuid).join(",")}`, "query.jobs"],
    [`tags=${Array.from({ length: EventFilterLimits.tags + 1 }, (_, i) => `t${i}`).join(",")}`, "query.tags"],
  ])("%s → 400 naming %s", async (query, path) => {
    const res = await requestStream(query);
    expect(res.webSocket).toBeNull();
    await expectValidation(res, path);
  });

  it("accepts the largest filters allowed", async () => {
    const q = [
      `hosts=${Array.from({ length: EventFilterLimits.hosts }, uuid).join(",")}`,
      `jobs=${Array.from({ length: EventFilterLimits.jobs }, uuid).join(",")}`,
      `tags=${Array.from({ length: EventFilterLimits.tags }, (_, i) => `${i}`.padEnd(63, "x")).join(",")}`,
      "types=host.online,host.offline,command.state,command.output,job.progress",
    ].join("&");
    const s = await stream(q);
    expect(s.control().type).toBe("ready");
  });

  it("a plain GET without an upgrade → 426 ERR_UPGRADE_REQUIRED", async () => {
    await expectProblem(await requestStream("", { upgrade: false, via: "header" }), 426, "ERR_UPGRADE_REQUIRED");
  });

  it("ignores a subscription header sent by the client", async () => {
    const [mine, other] = [uuid(), uuid()];
    const res = await api(`/api/events?hosts=${mine}`, {
      role: "viewer",
      headers: { upgrade: "websocket", "x-fleet-events-subscription": JSON.stringify({ filter: {} }) },
    });
    expect(res.status).toBe(101);
    res.webSocket!.accept();
    const s = new EventStream(res.webSocket!, res);
    open.push(s);
    await publish(hostEvent(other, "host.online", { message_id: uuid() }));
    const marker = await sync(s, hostEvent(mine, "host.online"));
    expect(s.events()).toEqual([marker]);
  });
});

describe("GET /openapi.json", () => {
  it("documents /api/events with 101, its refusals and the Bearer scheme", async () => {
    const spec = (await (await api("/openapi.json", { token: null })).json()) as any;
    const op = spec.paths["/api/events"]?.get;
    expect(op).toBeDefined();
    for (const status of ["101", "400", "401", "403", "426"]) expect(op.responses[status], status).toBeDefined();
    expect(op.responses["101"].headers["Sec-WebSocket-Protocol"]).toBeDefined();
    expect(op.security).toEqual([{ bearerAuth: [] }]);
    const params = op.parameters.filter((p: any) => p.in === "query").map((p: any) => p.name);
    expect(params.sort()).toEqual(["after", "epoch", "hosts", "jobs", "tags", "types"]);
  });
});
