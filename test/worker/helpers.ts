import { runInDurableObject } from "cloudflare:test";
import { env, exports } from "cloudflare:workers";
import { SignJWT } from "jose";
import { expect } from "vitest";
import { nowRfc3339 } from "../../schemas/index.ts";
import { type Clock, OffsetClock } from "../../worker/clock.ts";
import { markOnline } from "../../worker/registry.ts";

export const BASE = "https://relay.test";

export async function token(
  role: string | null = "operator",
  opts: { ttl?: string | number; issuer?: string; audience?: string; secret?: string; alg?: string } = {},
): Promise<string> {
  const jwt = new SignJWT(role === null ? {} : { role })
    .setProtectedHeader({ alg: opts.alg ?? "HS256" })
    .setSubject("test-user")
    .setIssuedAt()
    .setIssuer(opts.issuer ?? "fleet-relay")
    .setAudience(opts.audience ?? "fleet-relay-api");
  if (opts.ttl !== null) jwt.setExpirationTime(opts.ttl ?? "5m");
  return jwt.sign(new TextEncoder().encode(opts.secret ?? env.JWT_SECRET));
}

export async function api(
  path: string,
  init: { method?: string; body?: unknown; rawBody?: string; role?: string; token?: string | null; headers?: Record<string, string> } = {},
): Promise<Response> {
  const headers: Record<string, string> = { ...init.headers };
  const bearer = init.token === undefined ? await token(init.role ?? "admin") : init.token;
  if (bearer) headers.authorization = `Bearer ${bearer}`;
  let body: string | undefined = init.rawBody;
  if (init.body !== undefined) {
    body = JSON.stringify(init.body);
    headers["content-type"] ??= "application/json";
  }
  return exports.default.fetch(new Request(`${BASE}${path}`, { method: init.method ?? (body ? "POST" : "GET"), headers, body }));
}

let fingerprintCounter = 0;
export function uniqueFingerprint(): string {
  const n = (++fingerprintCounter).toString(16).padStart(8, "0");
  return `${crypto.randomUUID().replaceAll("-", "")}${n}`.padEnd(64, "a").slice(0, 64);
}

/**
 * Registers a host over REST. With `listedOnline`, the registry then says the host is online (as
 * after a hello) with no agent behind it: a job hands such a host's command to its relay, which
 * queues it as for an agent that has just dropped, rather than holding it as `waiting`. For tests
 * of what relays report about a job's commands. Default: offline, as registered.
 */
export async function registerHost(
  tags: string[] = [],
  opts: { listedOnline?: boolean } = {},
): Promise<{ host_id: string; fingerprint: string }> {
  const fingerprint = uniqueFingerprint();
  const res = await api("/api/hosts", {
    body: { hostname: `host-${fingerprint.slice(0, 8)}`, cert_fingerprint_sha256: fingerprint, tags },
  });
  expect(res.status).toBe(201);
  const host = (await res.json()) as { host_id: string };
  if (opts.listedOnline) await listOnline(host.host_id);
  return { host_id: host.host_id, fingerprint };
}

export function tlsClientAuth(fingerprint: string, overrides: Record<string, string> = {}) {
  return {
    certPresented: "1",
    certVerified: "SUCCESS",
    certRevoked: "0",
    certIssuerDN: "CN=Fleet CA",
    certSubjectDN: "CN=agent",
    certIssuerDNRFC2253: "CN=Fleet CA",
    certSubjectDNRFC2253: "CN=agent",
    certIssuerDNLegacy: "/CN=Fleet CA",
    certSubjectDNLegacy: "/CN=agent",
    certSerial: "01",
    certIssuerSerial: "01",
    certSKI: "",
    certIssuerSKI: "",
    certFingerprintSHA1: "",
    certFingerprintSHA256: fingerprint,
    certNotBefore: "Jan  1 00:00:00 2026 GMT",
    certNotAfter: "Jan  1 00:00:00 2027 GMT",
    ...overrides,
  };
}

export function connectRequest(tls: object | null, upgrade = true): Request {
  return new Request(`${BASE}/agent/connect`, {
    headers: upgrade ? { upgrade: "websocket" } : {},
    ...(tls ? { cf: { tlsClientAuth: tls } } : {}),
  } as RequestInit);
}

/** A test double of the agent's side of the socket: records frames, waits for them by predicate. */
export class TestAgent {
  readonly frames: any[] = [];
  closed: { code: number; reason: string } | null = null;
  private waiters: { pred: (f: any) => boolean; resolve: (f: any) => void }[] = [];
  private closeWaiters: ((c: { code: number; reason: string }) => void)[] = [];

  readonly ws: WebSocket;

  constructor(ws: WebSocket) {
    this.ws = ws;
    ws.addEventListener("message", (ev) => {
      const data = typeof ev.data === "string" ? ev.data : "";
      const frame = data === "pong" ? "pong" : JSON.parse(data);
      this.frames.push(frame);
      this.waiters = this.waiters.filter((w) => {
        if (w.pred(frame)) {
          w.resolve(frame);
          return false;
        }
        return true;
      });
    });
    ws.addEventListener("close", (ev) => {
      this.closed = { code: ev.code, reason: ev.reason };
      for (const w of this.closeWaiters) w(this.closed);
    });
  }

  static async connect(fingerprint: string, hello = true): Promise<TestAgent> {
    const res = await exports.default.fetch(connectRequest(tlsClientAuth(fingerprint)));
    expect(res.status).toBe(101);
    const ws = res.webSocket!;
    ws.accept();
    const agent = new TestAgent(ws);
    if (hello) {
      agent.send(helloFrame());
      await agent.next((f) => f.message_type === "welcome");
    }
    return agent;
  }

  send(frame: object | string): void {
    this.ws.send(typeof frame === "string" ? frame : JSON.stringify(frame));
  }

  /** The first frame (already seen or future) matching `pred`, within `timeoutMs`. */
  next(pred: (f: any) => boolean, timeoutMs = 5000): Promise<any> {
    const seen = this.frames.find(pred);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`no matching frame within ${timeoutMs} ms; saw ${JSON.stringify(this.frames).slice(0, 2000)}`)),
        timeoutMs,
      );
      this.waiters.push({ pred, resolve: (f) => (clearTimeout(timer), resolve(f)) });
    });
  }

  /** The next frame matching `pred` that arrives after now (ignores earlier ones). */
  nextNew(pred: (f: any) => boolean, timeoutMs = 5000): Promise<any> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no new matching frame within ${timeoutMs} ms`)), timeoutMs);
      this.waiters.push({ pred, resolve: (f) => (clearTimeout(timer), resolve(f)) });
    });
  }

  command(messageId: string, attempt?: number): Promise<any> {
    return this.next((f) => f.message_type === "command" && f.message_id === messageId && (attempt === undefined || f.attempt === attempt));
  }

  waitClose(timeoutMs = 5000): Promise<{ code: number; reason: string }> {
    if (this.closed) return Promise.resolve(this.closed);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error("socket not closed in time")), timeoutMs);
      this.closeWaiters.push((c) => (clearTimeout(timer), resolve(c)));
    });
  }

  ack(messageId: string): void {
    this.send({ message_id: crypto.randomUUID(), timestamp: nowRfc3339(), message_type: "ack", original_message_id: messageId });
  }

  respond(
    messageId: string,
    status = "success",
    result: object = { output: "ok", exit_code: 0, execution_time: 0.1 },
    frameId = crypto.randomUUID(),
  ): string {
    this.send({ message_id: frameId, timestamp: nowRfc3339(), message_type: "response", original_message_id: messageId, status, result });
    return frameId;
  }

  status(messageId: string, state: "running" | "progress", output?: string, seq?: number, frameId = crypto.randomUUID()): string {
    this.send({ message_id: frameId, timestamp: nowRfc3339(), message_type: "status", original_message_id: messageId, state, output, seq });
    return frameId;
  }

  /** Waits for the relay's ack of one of our frames. */
  acked(frameId: string): Promise<any> {
    return this.next((f) => f.message_type === "ack" && f.original_message_id === frameId);
  }

  close(): void {
    this.ws.close(1000, "bye");
  }
}

export function helloFrame(overrides: object = {}) {
  return {
    message_id: crypto.randomUUID(),
    timestamp: nowRfc3339(),
    message_type: "hello",
    agent_version: "0.1.0",
    protocol_version: 1,
    hostname: "web-1",
    os: { name: "debian", version: "12", kernel: "6.1.0", arch: "x86_64" },
    supported_commands: ["package_operation", "system_info"],
    ...overrides,
  };
}

export function relayStub(hostId: string) {
  return env.HOST_RELAY.get(env.HOST_RELAY.idFromName(hostId));
}

export async function getCommand(hostId: string, messageId: string): Promise<any> {
  const res = await api(`/api/hosts/${hostId}/commands/${messageId}`, { role: "viewer" });
  expect(res.status).toBe(200);
  return res.json();
}

/** Polls a REST read until `pred` holds: for state the relay reaches after an async frame. */
export async function waitFor<T>(read: () => Promise<T>, pred: (v: T) => boolean, timeoutMs = 5000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await read();
    if (pred(v)) return v;
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms: ${JSON.stringify(v).slice(0, 1000)}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

// ---- REST helpers (auth and route tests) ----

export const PROBLEM_JSON = "application/problem+json";

/** Asserts an RFC 9457 problem document with `status` (and `code`, if given); returns the body. */
export async function expectProblem(res: Response, status: number, code?: string): Promise<any> {
  const text = await res.text();
  expect(res.status, text).toBe(status);
  expect(res.headers.get("content-type")).toBe(PROBLEM_JSON);
  const body = JSON.parse(text);
  expect(body).toMatchObject({
    type: expect.any(String),
    title: expect.any(String),
    status,
    code: expect.any(String),
    detail: expect.any(String),
  });
  if (code !== undefined) expect(body.code).toBe(code);
  return body;
}

/** Paths named by a validation problem's `errors`. */
export function errorPaths(problem: { errors?: { path: string }[] }): string[] {
  return (problem.errors ?? []).map((e) => e.path);
}

/** One page of `GET /api/hosts/{host_id}/commands` (`query` without the leading `?`). */
export async function listHostCommands(hostId: string, query = ""): Promise<{ items: any[]; next_cursor: string | null }> {
  const res = await api(`/api/hosts/${hostId}/commands${query ? `?${query}` : ""}`, { role: "viewer" });
  expect(res.status).toBe(200);
  return res.json();
}

/** `GET /api/hosts/{host_id}` as a viewer; expects 200. */
export async function getHostView(hostId: string): Promise<any> {
  const res = await api(`/api/hosts/${hostId}`, { role: "viewer" });
  expect(res.status).toBe(200);
  return res.json();
}

/** Queues a `system_info` command as an operator; expects 202 and returns its message_id. */
export async function queueSystemInfo(hostId: string): Promise<string> {
  const res = await api(`/api/hosts/${hostId}/commands`, { role: "operator", body: { command_type: "system_info" } });
  expect(res.status).toBe(202);
  return ((await res.json()) as { message_id: string }).message_id;
}

/** A fingerprint written the way certificate tools print it: upper case, colon-separated. */
export function colonFingerprint(fingerprint: string): string {
  return fingerprint.toUpperCase().match(/../g)!.join(":");
}

/**
 * Moves a Durable Object's injected clock (`rc.clock`) forward so that it reads at least `at`,
 * installing an offset clock the first time: time is faked through the clock, never by rewriting
 * stored timestamps.
 */
export function objectClockTo(stub: DurableObjectStub, at: number): Promise<void> {
  return runInDurableObject(stub, (instance: unknown) => {
    const rc = (instance as { rc: { clock: Clock } }).rc;
    if (!(rc.clock instanceof OffsetClock)) rc.clock = new OffsetClock();
    const clock = rc.clock as OffsetClock;
    if (clock.now() < at) clock.offsetMs += at - clock.now();
  });
}

/** The registry's online flag set as a hello sets it (worker/registry.ts `markOnline`), with no agent behind it. */
export function listOnline(hostId: string): Promise<void> {
  const hello = helloFrame();
  return markOnline(env.DB, hostId, "listed-online", nowRfc3339(), {
    agent_version: hello.agent_version,
    protocol_version: hello.protocol_version,
    hostname: hello.hostname,
    os: hello.os,
    supported_commands: hello.supported_commands,
  });
}
