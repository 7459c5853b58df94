import { runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { expect } from "vitest";
import type { Alerting } from "../../../worker/alerting/alerting.ts";
import type { AlertInputs } from "../../../worker/alerting/context.ts";
import type { FleetSnapshot, OfflineHost } from "../../../worker/alerting/evaluate.ts";
import { ManualClock } from "../../../worker/clock.ts";
import type { MetricsSummary } from "../../../worker/metrics/contract.ts";
import { api } from "../helpers.ts";

export function alertingStub() {
  return env.ALERTING.get(env.ALERTING.idFromName("fleet"));
}

export interface ReceivedRequest {
  url: string;
  headers: Headers;
  body: string;
  json: any;
}

/** A webhook receiver living inside the test: records every POST and answers `status()` (200 unless told otherwise). */
export class TestReceiver {
  readonly requests: ReceivedRequest[] = [];
  status: (n: number) => number = () => 200;

  readonly handle = async (request: Request): Promise<Response> => {
    const body = await request.text();
    this.requests.push({ url: request.url, headers: request.headers, body, json: JSON.parse(body) });
    return new Response("ok", { status: this.status(this.requests.length) });
  };
}

/**
 * What the Alerting object sees in a test: a ManualClock, inputs the test sets directly, and the
 * receiver above as its transport. Installed into the live instance, as tests swap clocks.
 */
export class AlertRig {
  readonly clock: ManualClock;
  readonly receiver = new TestReceiver();
  fleet: FleetSnapshot | null = { active_hosts: 0, offline_hosts: 0, offline: [] };
  metrics: MetricsSummary | null = null;

  private constructor(start: number) {
    this.clock = new ManualClock(start);
  }

  /**
   * Time never goes back for the object: a rig starts where the previous test's clock ended (or
   * now, if later), as real time would.
   */
  static async install(): Promise<AlertRig> {
    const previous = await runInDurableObject(alertingStub(), (instance: Alerting) => (instance as any).ac.clock.now() as number);
    const rig = new AlertRig(Math.max(Date.now(), previous + 1000));
    const inputs: AlertInputs = { fleet: async () => rig.fleet, metrics: async () => rig.metrics };
    await runInDurableObject(alertingStub(), (instance: Alerting) => {
      const ac = (instance as any).ac;
      ac.clock = rig.clock;
      ac.inputs = inputs;
      ac.transport = rig.receiver.handle;
    });
    return rig;
  }

  /** Sets the fleet to these offline hosts among `active` non-revoked ones. */
  offline(hosts: OfflineHost[], active = Math.max(hosts.length, 1)): void {
    this.fleet = { active_hosts: active, offline_hosts: hosts.length, offline: hosts };
  }

  /** Moves time on and runs the object's alarm (always set while a rule exists). */
  async tick(ms: number): Promise<void> {
    this.clock.advance(ms);
    expect(await runDurableObjectAlarm(alertingStub())).toBe(true);
  }
}

/**
 * Deletes every rule and receiver, so each test starts from none (the object is one per fleet). A
 * round runs between the two, so the deleted rules' alerts resolve before the receivers go and
 * their last notifications do not reach the next test's receivers.
 */
export async function clearAlerting(rig?: AlertRig): Promise<void> {
  const rules = (await (await api("/api/alert-rules")).json()) as { items: { rule_id: string }[] };
  for (const r of rules.items) expect((await api(`/api/alert-rules/${r.rule_id}`, { method: "DELETE" })).status).toBe(204);
  if (rig) {
    rig.clock.advance(60_000);
    await runDurableObjectAlarm(alertingStub());
  }
  const receivers = (await (await api("/api/alert-receivers")).json()) as { items: { receiver_id: string }[] };
  for (const r of receivers.items) expect((await api(`/api/alert-receivers/${r.receiver_id}`, { method: "DELETE" })).status).toBe(204);
  // What the previous test's receivers were sent in that round is not this test's.
  if (rig) rig.receiver.requests.length = 0;
}

export async function createRule(body: object): Promise<any> {
  const res = await api("/api/alert-rules", { body });
  const text = await res.text();
  expect(res.status, text).toBe(201);
  return JSON.parse(text);
}

export const RECEIVER_SECRET = "receiver-secret-0123456789abcdef";

export async function createReceiver(body: object = {}): Promise<any> {
  const res = await api("/api/alert-receivers", {
    body: { name: "ops", url: "https://receiver.test/hook", secret: RECEIVER_SECRET, ...body },
  });
  const text = await res.text();
  expect(res.status, text).toBe(201);
  return JSON.parse(text);
}

export async function alerts(): Promise<{ active: any[]; history: any[] }> {
  const res = await api("/api/alerts", { role: "viewer" });
  expect(res.status).toBe(200);
  return res.json();
}

export async function notifications(query = ""): Promise<any[]> {
  const res = await api(`/api/alert-notifications${query ? `?${query}` : ""}`);
  expect(res.status).toBe(200);
  return ((await res.json()) as { items: any[] }).items;
}

export function offlineHost(since: number, tags: string[] = [], hostname = "web-1"): OfflineHost {
  return { host_id: crypto.randomUUID(), hostname, tags, offline_since: since };
}
