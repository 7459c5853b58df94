/**
 * Seeded property-based fuzzing of every REST route in `/openapi.json` (routes, methods, parameters
 * and body schemas are read from the document, so a new route is fuzzed without touching this file).
 *
 * Properties, for every generated request:
 *  - never a 5xx (nor a 3xx, nor a 101 without an upgrade);
 *  - every non-2xx is `application/problem+json` with a stable `code` (`^ERR_[A-Z_]+$`) whose HTTP
 *    status (ERROR_STATUS) is the response's status, and the body's `status` says the same;
 * and, per batch, nothing is stored from a refused input: the host list, the job list and the
 * commands and dead letters of a few pre-created hosts change exactly as the accepted requests say.
 *
 * FUZZ_SEED replays a run (the seed is printed first); FUZZ_RUNS sets the number of requests.
 */

import { exports } from "cloudflare:workers";
import * as x509 from "@peculiar/x509";
import fc from "fast-check";
import { beforeAll, describe, expect, it } from "vitest";
import { ERROR_STATUS } from "../../../worker/errors.ts";
import { api, BASE, PROBLEM_JSON, registerHost, TestAgent, token } from "../helpers.ts";
import { enqueue, retryNow } from "../host-relay/relay-helpers.ts";
import { fuzzConfig } from "./fuzz-config.ts";
import { type FuzzRequest, type Operation, operationsFromSpec, type Pools, requestArb, sendableHeaders } from "./rest-gen.ts";

const BATCH = 40;
const DEFAULT_REQUESTS = 10_000;

let ops: Operation[];
const pools: Pools = { ids: {}, cursors: [], tokens: [], enrollmentTokens: [], csr: "" };
/** Hosts whose commands and dead letters are read back after every batch. */
let checkHosts: string[] = [];
/** Command ids queued by the setup (not by a job): their state may change only when a request says so. */
const directCommands = new Set<string>();

const push = (name: string, id: string) => (pools.ids[name] ??= []).push(id);

async function json(res: Response): Promise<any> {
  const text = await res.text();
  expect(res.status, text).toBeLessThan(300);
  return JSON.parse(text);
}

/** Every item of a paginated list, as a viewer. */
async function listAll(path: string): Promise<any[]> {
  const items: any[] = [];
  let cursor: string | null = null;
  do {
    const sep = path.includes("?") ? "&" : "?";
    const page: { items: any[]; next_cursor: string | null } = await json(
      await api(`${path}${sep}limit=500${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`, { role: "viewer" }),
    );
    items.push(...page.items);
    cursor = page.next_cursor;
  } while (cursor);
  return items;
}

async function collectCursor(path: string): Promise<void> {
  const page = await json(await api(path, { role: "viewer" }));
  if (page.next_cursor) pools.cursors.push(page.next_cursor);
}

beforeAll(async () => {
  const res = await api("/openapi.json", { token: null });
  ops = operationsFromSpec(await json(res));
  expect(ops.length).toBeGreaterThanOrEqual(20);

  // Tokens: every role, and every way a token can be wrong.
  const now = Math.floor(Date.now() / 1000);
  const valid = async (role: string) => `Bearer ${await token(role)}`;
  // About two thirds of the requests carry a valid token, so most reach validation and the handlers.
  pools.tokens = [
    ...(await Promise.all(
      ["admin", "operator", "viewer"].flatMap((role) =>
        Array.from({ length: role === "viewer" ? 6 : 12 }, async () => ({ label: role, value: await valid(role) })),
      ),
    )),
    { label: "none", value: null },
    { label: "expired", value: `Bearer ${await token("admin", { ttl: now - 60 })}` },
    { label: "wrong-secret", value: `Bearer ${await token("admin", { secret: "another-secret-another-secret-0123456789" })}` },
    { label: "wrong-issuer", value: `Bearer ${await token("admin", { issuer: "someone-else" })}` },
    { label: "wrong-audience", value: `Bearer ${await token("admin", { audience: "other-api" })}` },
    { label: "hs512", value: `Bearer ${await token("admin", { alg: "HS512" })}` },
    { label: "no-role", value: `Bearer ${await token(null)}` },
    { label: "unknown-role", value: `Bearer ${await token("root")}` },
    {
      label: "alg-none",
      value: `Bearer ${btoa(JSON.stringify({ alg: "none" })).replaceAll("=", "")}.${btoa(JSON.stringify({ role: "admin", exp: now + 600, iss: "fleet-relay", aud: "fleet-relay-api" })).replaceAll("=", "")}.`,
    },
    { label: "garbage", value: "Bearer not.a.jwt" },
    { label: "empty-bearer", value: "Bearer " },
    { label: "basic", value: "Basic YWRtaW46YWRtaW4=" },
    { label: "lowercase-scheme", value: `bearer ${await token("admin")}` },
    { label: "huge", value: `Bearer ${"a".repeat(8000)}.${"b".repeat(8000)}.c` },
  ];

  // A certificate request for enrolment bodies, and unused enrolment tokens.
  const keys = (await crypto.subtle.generateKey({ name: "ECDSA", namedCurve: "P-256" }, true, ["sign", "verify"])) as CryptoKeyPair;
  pools.csr = (
    await x509.Pkcs10CertificateRequestGenerator.create({ name: "CN=fuzz", keys, signingAlgorithm: { name: "ECDSA", hash: "SHA-256" } })
  ).toString("pem");
  for (let i = 0; i < 10; i++) pools.enrollmentTokens.push((await json(await api("/api/enrollment-tokens", { body: {} }))).token);

  // Hosts: two live ones read back after every batch, one revoked, two that may be revoked.
  const liveA = await registerHost(["web", "fuzz"]);
  const liveB = await registerHost(["db"]);
  const revoked = await registerHost(["web"]);
  expect((await api(`/api/hosts/${revoked.host_id}/revoke`, { method: "POST" })).status).toBe(200);
  for (const h of [liveA, liveB, revoked]) push("host_id", h.host_id);
  for (let i = 0; i < 2; i++) {
    const victim = await registerHost(["victim"]);
    push("host_id", victim.host_id);
    push("revocable_host_id", victim.host_id);
  }
  push("revocable_host_id", revoked.host_id);
  checkHosts = [liveA.host_id, liveB.host_id, revoked.host_id];

  // Commands: queued ones on both live hosts, and a dead letter on liveB.
  for (const h of [liveA, liveA, liveA, liveB, liveB]) {
    const id = await enqueue(h.host_id, { expires_in: 30 * 86_400 });
    push("message_id", id);
    directCommands.add(id);
  }
  const dead = await enqueue(liveB.host_id, { max_attempts: 1, expires_in: 30 * 86_400 });
  const agent = await TestAgent.connect(liveB.fingerprint);
  await agent.command(dead, 1);
  await retryNow(liveB.host_id, dead);
  agent.close();
  await agent.waitClose();
  push("message_id", dead);
  directCommands.add(dead);

  // A job, so job routes have a real id.
  const job = await json(
    await api("/api/jobs", {
      role: "operator",
      body: { command_type: "system_info", target: { host_ids: [liveA.host_id] }, expires_in: 30 * 86_400 },
    }),
  );
  push("job_id", job.job_id);

  // Cursors of every kind.
  await collectCursor("/api/hosts?limit=1");
  await collectCursor(`/api/hosts/${liveA.host_id}/commands?limit=1`);
  await collectCursor("/api/tags?limit=1");
  await collectCursor("/api/jobs?limit=1");
  push("uuid", crypto.randomUUID());
}, 60_000);

// ---- state read back around each batch ----

interface Snapshot {
  hosts: Map<string, string>;
  jobs: Set<string>;
  commands: Map<string, Map<string, { state: string; expires_at: string }>>;
  deadLetters: Map<string, Set<string>>;
}

async function snapshot(): Promise<Snapshot> {
  const [hosts, jobs, perHost] = await Promise.all([
    listAll("/api/hosts"),
    listAll("/api/jobs"),
    Promise.all(
      checkHosts.map(async (h) => [h, await listAll(`/api/hosts/${h}/commands`), await listAll(`/api/hosts/${h}/dead-letters`)] as const),
    ),
  ]);
  return {
    hosts: new Map(
      hosts.map((h) => [
        h.host_id,
        JSON.stringify({ hostname: h.hostname, tags: h.tags, status: h.status, fp: h.cert_fingerprint_sha256 }),
      ]),
    ),
    jobs: new Set(jobs.map((j) => j.job_id)),
    commands: new Map(
      perHost.map(([h, cmds]) => [h, new Map(cmds.map((c) => [c.message_id, { state: c.state, expires_at: c.expires_at }]))]),
    ),
    deadLetters: new Map(perHost.map(([h, , dls]) => [h, new Set(dls.map((d) => d.message_id))])),
  };
}

/** What the accepted (2xx) requests of a batch did. */
interface Accepted {
  hosts: Set<string>;
  changedHosts: Set<string>;
  jobs: Set<string>;
  jobCancelled: boolean;
  commands: Map<string, Set<string>>;
  targetedCommands: Set<string>;
}

const newAccepted = (): Accepted => ({
  hosts: new Set(),
  changedHosts: new Set(),
  jobs: new Set(),
  jobCancelled: false,
  commands: new Map(),
  targetedCommands: new Set(),
});

/** Message ids of jobs' copies, by host, from the jobs' host lists. */
async function jobCopies(): Promise<Set<string>> {
  const ids = new Set<string>();
  for (const job of pools.ids.job_id ?? []) {
    for (const h of await listAll(`/api/jobs/${job}/hosts`)) if (h.message_id) ids.add(h.message_id);
  }
  return ids;
}

function sleep(ms: number) {
  return new Promise((r) => setTimeout(r, ms));
}

function compare(before: Snapshot, after: Snapshot, acc: Accepted, copies: Set<string>): string[] {
  const problems: string[] = [];
  for (const id of after.hosts.keys())
    if (!before.hosts.has(id) && !acc.hosts.has(id)) problems.push(`host ${id} appeared without an accepted request`);
  for (const id of acc.hosts) if (!after.hosts.has(id)) problems.push(`accepted host ${id} is not listed`);
  for (const [id, v] of before.hosts) {
    if (!after.hosts.has(id)) problems.push(`host ${id} disappeared`);
    else if (!acc.changedHosts.has(id) && after.hosts.get(id) !== v)
      problems.push(`host ${id} changed without an accepted request: ${v} → ${after.hosts.get(id)}`);
  }
  for (const id of after.jobs)
    if (!before.jobs.has(id) && !acc.jobs.has(id)) problems.push(`job ${id} appeared without an accepted request`);
  for (const id of acc.jobs) if (!after.jobs.has(id)) problems.push(`accepted job ${id} is not listed`);
  for (const h of checkHosts) {
    const b = before.commands.get(h)!;
    const a = after.commands.get(h)!;
    const accepted = acc.commands.get(h) ?? new Set();
    for (const id of accepted) if (!a.has(id)) problems.push(`accepted command ${id} is not listed on ${h}`);
    for (const id of a.keys())
      if (!b.has(id) && !accepted.has(id) && !copies.has(id)) problems.push(`command ${id} appeared on ${h} without an accepted request`);
    for (const [id, c] of b) {
      const now = a.get(id);
      if (!now) {
        problems.push(`command ${id} disappeared from ${h}`);
        continue;
      }
      if (now.state === c.state || !directCommands.has(id) || acc.targetedCommands.has(id) || acc.changedHosts.has(h)) continue;
      if (now.state === "expired" && Date.parse(now.expires_at) <= Date.now()) continue;
      problems.push(`command ${id} on ${h} moved ${c.state} → ${now.state} without an accepted request`);
    }
    for (const id of after.deadLetters.get(h)!)
      if (!before.deadLetters.get(h)!.has(id)) problems.push(`dead letter ${id} appeared on ${h}`);
    for (const id of before.deadLetters.get(h)!) {
      if (!after.deadLetters.get(h)!.has(id) && !acc.targetedCommands.has(id))
        problems.push(`dead letter ${id} left ${h} without an accepted request`);
    }
  }
  return problems;
}

// ---- one request ----

const CODE = /^ERR_[A-Z_]+$/;

function describeRequest(r: FuzzRequest): string {
  return `${r.method} ${r.url.slice(0, 300)} [token ${r.tokenLabel}, body ${r.bodyLabel}${r.body !== undefined ? ` ${r.body.length} chars: ${JSON.stringify(r.body.slice(0, 200))}` : ""}, headers ${JSON.stringify({ ...r.headers, authorization: undefined }).slice(0, 300)}]`;
}

interface Outcome {
  status: number;
  body: any;
}

/** Sends one request and checks the per-response properties; returns null if the request could not even be built. */
async function send(r: FuzzRequest): Promise<Outcome | null> {
  let request: Request;
  try {
    request = new Request(`${BASE}${r.url}`, { method: r.method, headers: sendableHeaders(r.headers), body: r.body });
  } catch {
    return null;
  }
  const res = await exports.default.fetch(request);
  const where = () => `${res.status} for ${describeRequest(r)}`;
  if (res.status === 101) {
    expect(r.headers.upgrade, `101 without an upgrade: ${where()}`).toBe("websocket");
    res.webSocket!.accept();
    res.webSocket!.close(1000, "fuzz");
    return { status: 101, body: null };
  }
  const text = await res.text();
  if (res.status >= 500) throw new Error(`5xx: ${where()}: ${text.slice(0, 500)}`);
  if (res.status >= 300 && res.status < 400) throw new Error(`redirect: ${where()}`);
  if (res.status < 300)
    return { status: res.status, body: text && res.headers.get("content-type")?.startsWith("application/json") ? JSON.parse(text) : null };
  expect(res.headers.get("content-type"), `content type of ${where()}`).toBe(PROBLEM_JSON);
  if (r.method === "HEAD") return { status: res.status, body: null };
  let problem: any;
  try {
    problem = JSON.parse(text);
  } catch {
    throw new Error(`problem body is not JSON: ${where()}: ${text.slice(0, 300)}`);
  }
  expect(problem.code, `code of ${where()}`).toMatch(CODE);
  expect(ERROR_STATUS, `unknown code ${problem.code}: ${where()}`).toHaveProperty(problem.code);
  expect(res.status, `${problem.code} maps to ${ERROR_STATUS[problem.code as keyof typeof ERROR_STATUS]}: ${where()}`).toBe(
    ERROR_STATUS[problem.code as keyof typeof ERROR_STATUS],
  );
  expect(problem.status, `problem.status of ${where()}`).toBe(res.status);
  expect(
    typeof problem.type === "string" && typeof problem.title === "string" && typeof problem.detail === "string",
    `problem fields of ${where()}`,
  ).toBe(true);
  return { status: res.status, body: problem };
}

/** Notes what an accepted request did, and keeps the ids and cursors it handed out for later requests. */
function record(r: FuzzRequest, o: Outcome, acc: Accepted, stats: Map<string, number>): void {
  const route = `${r.op.method} ${r.op.path}`;
  stats.set(`${route} ${o.status}`, (stats.get(`${route} ${o.status}`) ?? 0) + 1);
  if (o.status >= 300) return;
  // A request sent with another method than its operation's is, to the relay, that method's route on
  // the same path (a GET of a command sent as DELETE cancels it): record it as what it was.
  const asSent = `${r.method} ${r.op.path}`;
  const b = o.body ?? {};
  const host = r.pathValues.host_id;
  if (typeof b.next_cursor === "string" && pools.cursors.length < 300) pools.cursors.push(b.next_cursor);
  switch (asSent) {
    case "POST /api/hosts":
    case "POST /agent/enroll":
      acc.hosts.add(b.host_id);
      push("host_id", b.host_id);
      break;
    case "POST /api/hosts/{host_id}/commands":
    case "POST /api/hosts/{host_id}/packages/{operation}":
      if (typeof b.message_id !== "string")
        throw new Error(`accepted without a message_id: ${o.status} ${JSON.stringify(b)} for ${describeRequest(r)}`);
      if (host) {
        if (!acc.commands.has(host)) acc.commands.set(host, new Set());
        acc.commands.get(host)!.add(b.message_id);
        if ((pools.ids.message_id ?? []).length < 200) push("message_id", b.message_id);
      }
      break;
    case "DELETE /api/hosts/{host_id}/commands/{message_id}":
    case "POST /api/hosts/{host_id}/dead-letters/{message_id}/requeue":
      acc.targetedCommands.add(r.pathValues.message_id!);
      break;
    case "POST /api/hosts/{host_id}/revoke":
    case "PUT /api/hosts/{host_id}/tags":
      if (host) acc.changedHosts.add(host);
      break;
    case "POST /api/jobs":
      acc.jobs.add(b.job_id);
      if (!(pools.ids.job_id ?? []).includes(b.job_id)) push("job_id", b.job_id);
      break;
    case "POST /api/jobs/{job_id}/cancel":
      acc.jobCancelled = true;
      break;
    case "POST /api/enrollment-tokens":
      pools.enrollmentTokens.push(b.token);
      break;
  }
}

describe("REST fuzz", () => {
  it("every route in /openapi.json: never a 5xx, every refusal a problem with a stable code and its status, nothing stored from a refused input", async () => {
    const { seed, total } = fuzzConfig("rest", DEFAULT_REQUESTS);
    const stats = new Map<string, number>();
    let sent = 0;
    let unsendable = 0;
    const started = Date.now();
    let before = await snapshot();

    await fc.assert(
      fc.asyncProperty(fc.array(requestArb(ops, pools), { minLength: BATCH, maxLength: BATCH }), async (batch) => {
        const acc = newAccepted();
        const outcomes = await Promise.all(batch.map(send));
        batch.forEach((r, i) => {
          const o = outcomes[i];
          if (o === null || o === undefined) unsendable++;
          else {
            sent++;
            record(r, o, acc, stats);
          }
        });
        // Jobs dispatch from their coordinators' alarms: let their copies land before reading back.
        let after = await snapshot();
        let copies = new Set<string>();
        let problems = compare(before, after, acc, copies);
        for (let tries = 0; problems.length > 0 && tries < 20; tries++) {
          await sleep(100);
          copies = await jobCopies();
          after = await snapshot();
          problems = compare(before, after, acc, copies);
        }
        before = after;
        if (problems.length > 0)
          throw new Error(
            `stored state does not match the accepted requests:\n${problems.join("\n")}\nbatch:\n${batch.map(describeRequest).join("\n")}`,
          );
      }),
      { seed, numRuns: Math.ceil(total / BATCH), endOnFailure: true },
    );

    const routes = new Set([...stats.keys()].map((k) => k.split(" ").slice(0, 2).join(" ")));
    const accepted = [...stats].filter(([k]) => Number(k.split(" ")[2]) < 300).reduce((n, [, v]) => n + v, 0);
    console.log(
      `[fuzz:rest] ${sent} requests (${unsendable} unsendable) over ${routes.size} routes in ${((Date.now() - started) / 1000).toFixed(1)} s; ${accepted} accepted`,
    );
    console.log(`[fuzz:rest] statuses: ${JSON.stringify(Object.fromEntries([...stats].sort()))}`);
    expect(routes.size, "every operation was exercised").toBe(ops.length);
    if (total >= DEFAULT_REQUESTS) expect(sent).toBeGreaterThanOrEqual(DEFAULT_REQUESTS);
  }, 600_000);
});
