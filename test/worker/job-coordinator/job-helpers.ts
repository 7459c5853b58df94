/**
 * Helpers for the job tests: start and read jobs over REST, agents that ack commands at once and
 * answer only when told, and direct access to a coordinator's SQLite and alarm.
 */

import { runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { expect } from "vitest";
import type { JobContext } from "../../../worker/job-coordinator/context.ts";
import type { FaultName } from "../../../worker/test-faults.ts";
import { api, objectClockTo, registerHost, relayStub, TestAgent, waitFor } from "../helpers.ts";
import { clockTo } from "../host-relay/relay-helpers.ts";

export function coordinatorStub(jobId: string) {
  return env.JOB_COORDINATOR.get(env.JOB_COORDINATOR.idFromName(jobId));
}

/** A tag no other test uses, so a tag target picks exactly this test's hosts. */
export function uniqueTag(prefix = "t"): string {
  return `${prefix}-${crypto.randomUUID().slice(0, 8)}`;
}

export function postJob(body: unknown, role = "operator", headers: Record<string, string> = {}): Promise<Response> {
  return api("/api/jobs", { role, body, headers });
}

/** Starts a job (system_info unless `body` says otherwise); expects 202 and returns the answer. */
export async function startJob(body: Record<string, unknown>): Promise<{ job_id: string; state: string; hosts: number }> {
  const res = await postJob({ command_type: "system_info", ...body });
  const text = await res.text();
  expect(res.status, text).toBe(202);
  const accepted = JSON.parse(text) as { job_id: string; state: string; hosts: number };
  expect(res.headers.get("location")).toBe(`/api/jobs/${accepted.job_id}`);
  return accepted;
}

export async function getJob(jobId: string): Promise<any> {
  const res = await api(`/api/jobs/${jobId}`, { role: "viewer" });
  const text = await res.text();
  expect(res.status, text).toBe(200);
  return JSON.parse(text);
}

/** Every host of a job (following cursors), in dispatch order. */
export async function jobHosts(jobId: string, query = "", limit = 500): Promise<any[]> {
  const all: any[] = [];
  let cursor: string | null = null;
  for (let pages = 0; pages < 1000; pages++) {
    const q = new URLSearchParams(query);
    q.set("limit", String(limit));
    if (cursor) q.set("cursor", cursor);
    const res = await api(`/api/jobs/${jobId}/hosts?${q}`, { role: "viewer" });
    const text = await res.text();
    expect(res.status, text).toBe(200);
    const page = JSON.parse(text) as { items: any[]; next_cursor: string | null };
    all.push(...page.items);
    if (page.next_cursor === null) return all;
    cursor = page.next_cursor;
  }
  throw new Error("too many pages");
}

export function waitJob(jobId: string, pred: (job: any) => boolean, timeoutMs = 10_000): Promise<any> {
  return waitFor(() => getJob(jobId), pred, timeoutMs);
}

export const ACTIVE_STATES = ["dispatching", "queued", "delivered", "running"];
export const FINAL_STATES = ["succeeded", "failed", "timed_out", "expired", "cancelled", "dead_lettered", "skipped"];

/**
 * A connected agent that acks every command as it arrives (so the relay marks it delivered) but
 * answers only when the test says so.
 */
export class HoldingAgent {
  readonly held: string[] = [];
  readonly received: string[] = [];

  readonly host_id: string;
  readonly agent: TestAgent;

  private constructor(hostId: string, agent: TestAgent) {
    this.host_id = hostId;
    this.agent = agent;
    agent.ws.addEventListener("message", (ev) => {
      if (typeof ev.data !== "string" || ev.data === "pong") return;
      const frame = JSON.parse(ev.data);
      if (frame.message_type !== "command") return;
      if (!this.received.includes(frame.message_id)) {
        this.received.push(frame.message_id);
        this.held.push(frame.message_id);
      }
      agent.ack(frame.message_id);
    });
  }

  static async connect(host: { host_id: string; fingerprint: string }): Promise<HoldingAgent> {
    return new HoldingAgent(host.host_id, await TestAgent.connect(host.fingerprint));
  }

  /** Answers the held command and waits for the relay's ack of the answer. */
  async answer(status = "success", result: object = { output: "ok", exit_code: 0, execution_time: 0.1 }): Promise<string> {
    const messageId = this.held.shift();
    expect(messageId, `host ${this.host_id} holds a command`).toBeDefined();
    const frameId = this.agent.respond(messageId!, status, result);
    await this.agent.acked(frameId);
    return messageId!;
  }
}

/** Registers `n` hosts with `tags` and connects a holding agent for each. */
export async function holdingHosts(n: number, tags: string[]): Promise<HoldingAgent[]> {
  const agents: HoldingAgent[] = [];
  for (let i = 0; i < n; i++) agents.push(await HoldingAgent.connect(await registerHost(tags)));
  return agents;
}

/** Runs SQL inside a job's coordinator against its real storage. */
export function coordinatorSql<T extends Record<string, SqlStorageValue> = Record<string, SqlStorageValue>>(
  jobId: string,
  query: string,
  ...binds: unknown[]
): Promise<T[]> {
  return runInDurableObject(coordinatorStub(jobId), (_instance, state) => state.storage.sql.exec<T>(query, ...binds).toArray());
}

/** Runs the coordinator's alarm if one is set; true if it ran. */
export function runCoordinatorAlarm(jobId: string): Promise<boolean> {
  return runDurableObjectAlarm(coordinatorStub(jobId));
}

/** Runs SQL inside a host's relay against its real storage. */
export function relaySql<T extends Record<string, SqlStorageValue> = Record<string, SqlStorageValue>>(
  hostId: string,
  query: string,
  ...binds: unknown[]
): Promise<T[]> {
  return runInDurableObject(relayStub(hostId), (_instance, state) => state.storage.sql.exec<T>(query, ...binds).toArray());
}

/** Makes a host's queued commands overdue for delivery and runs its relay's alarm, which expires them. */
export async function expireOnRelay(hostId: string): Promise<void> {
  const [latest] = await relaySql<{ t: number }>(hostId, "SELECT MAX(expires_at) AS t FROM commands WHERE state = 'queued'");
  await clockTo(hostId, latest!.t + 1);
  expect(await runDurableObjectAlarm(relayStub(hostId)), "the relay had an alarm").toBe(true);
}

/** Per-host states of a job, keyed by host_id. */
export async function hostStates(jobId: string): Promise<Map<string, any>> {
  return new Map((await jobHosts(jobId)).map((h) => [h.host_id, h]));
}

/** Count of a job's hosts in the given states, as the REST list reports them. */
export function countIn(hosts: any[], states: readonly string[]): number {
  return hosts.filter((h) => states.includes(h.state)).length;
}

/** Arms a test fault (worker/test-faults.ts) in a job's coordinator; the job id may not exist yet. */
export function armCoordinatorFault(jobId: string, name: FaultName, times = 1): Promise<void> {
  return runInDurableObject(coordinatorStub(jobId), (instance) => {
    (instance as unknown as { rc: JobContext }).rc.faults.arm(name, times);
  });
}

/** Moves a job's coordinator clock forward to `at` (never back). */
export function coordinatorClockTo(jobId: string, at: number): Promise<void> {
  return objectClockTo(coordinatorStub(jobId), at);
}

/** The registry's job_waits rows of a job: the hosts it holds a command for. */
export async function jobWaits(jobId: string): Promise<string[]> {
  const { results } = await env.DB.prepare("SELECT host_id FROM job_waits WHERE job_id = ? ORDER BY host_id")
    .bind(jobId)
    .all<{ host_id: string }>();
  return results.map((r) => r.host_id);
}
