import { runInDurableObject } from "cloudflare:test";
import { beforeEach, describe, expect, it } from "vitest";
import type { Alerting } from "../../../worker/alerting/alerting.ts";
import { DELIVERY_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, verifySignature } from "../../../worker/alerting/signature.ts";
import { EventStream, sync } from "../fleet-events/stream-client.ts";
import { api } from "../helpers.ts";
import {
  AlertRig,
  alertingStub,
  alerts,
  clearAlerting,
  createReceiver,
  createRule,
  notifications,
  offlineHost,
  RECEIVER_SECRET,
} from "./alerting-helpers.ts";

const SEC = 1000;
const MIN = 60 * SEC;
let rig: AlertRig;

beforeEach(async () => {
  rig = await AlertRig.install();
  await clearAlerting(rig);
});

async function expectSigned(req: { headers: Headers; body: string }, nowMs: number): Promise<void> {
  const ok = await verifySignature(
    RECEIVER_SECRET,
    { timestamp: req.headers.get(TIMESTAMP_HEADER), signature: req.headers.get(SIGNATURE_HEADER) },
    req.body,
    Math.floor(nowMs / 1000),
  );
  expect(ok, `signature ${req.headers.get(SIGNATURE_HEADER)} over ${req.body.slice(0, 200)}`).toBe(true);
  // One byte changed, or another secret: no longer verifies.
  expect(
    await verifySignature(
      RECEIVER_SECRET,
      { timestamp: req.headers.get(TIMESTAMP_HEADER), signature: req.headers.get(SIGNATURE_HEADER) },
      `${req.body} `,
      Math.floor(nowMs / 1000),
    ),
  ).toBe(false);
  expect(
    await verifySignature(
      "another-secret-0123456789",
      { timestamp: req.headers.get(TIMESTAMP_HEADER), signature: req.headers.get(SIGNATURE_HEADER) },
      req.body,
      Math.floor(nowMs / 1000),
    ),
  ).toBe(false);
}

describe("host_offline: pending → firing → resolved", () => {
  it("fires after `for`, notifies once, repeats every repeat_interval, resolves once, and keeps history", async () => {
    const receiver = await createReceiver();
    const host = offlineHost(rig.clock.now(), ["db"], "db-1");
    rig.offline([host], 3);
    const rule = await createRule({
      kind: "host_offline",
      name: "host down",
      for: "2m",
      repeat_interval: "10m",
      labels: { severity: "page" },
      annotations: { runbook_url: "https://runbooks.example/host-down" },
    });

    await rig.tick(SEC);
    let view = await alerts();
    expect(view.active).toEqual([
      expect.objectContaining({
        rule_id: rule.rule_id,
        state: "pending",
        fired_at: null,
        labels: { alertname: "host down", rule_id: rule.rule_id, severity: "page", host_id: host.host_id, hostname: "db-1" },
      }),
    ]);
    expect(rig.receiver.requests).toEqual([]);

    await rig.tick(2 * MIN);
    view = await alerts();
    expect(view.active.map((a) => a.state)).toEqual(["firing"]);
    expect(rig.receiver.requests).toHaveLength(1);
    const first = rig.receiver.requests[0]!;
    expect(first.url).toBe("https://receiver.test/hook");
    expect(first.headers.get("content-type")).toBe("application/json");
    await expectSigned(first, rig.clock.now());
    expect(first.headers.get(DELIVERY_HEADER)).toMatch(new RegExp(`^\\d+-${receiver.receiver_id}$`));
    expect(Object.keys(first.json).sort()).toEqual(
      [
        "receiver",
        "status",
        "alerts",
        "groupLabels",
        "commonLabels",
        "commonAnnotations",
        "externalURL",
        "version",
        "groupKey",
        "truncatedAlerts",
      ].sort(),
    );
    expect(first.json).toMatchObject({
      receiver: "ops",
      status: "firing",
      version: "4",
      groupLabels: { alertname: "host down", rule_id: rule.rule_id },
      commonLabels: { alertname: "host down", severity: "page", hostname: "db-1" },
      commonAnnotations: { runbook_url: "https://runbooks.example/host-down" },
      externalURL: "https://relay.test",
      groupKey: `{}:{rule_id="${rule.rule_id}"}`,
      truncatedAlerts: 0,
    });
    expect(first.json.alerts).toEqual([
      {
        status: "firing",
        labels: view.active[0].labels,
        annotations: expect.objectContaining({
          runbook_url: "https://runbooks.example/host-down",
          summary: expect.stringContaining("db-1"),
        }),
        startsAt: new Date(rig.clock.now()).toISOString(),
        endsAt: "0001-01-01T00:00:00Z",
        generatorURL: `https://relay.test/api/alert-rules/${rule.rule_id}`,
        fingerprint: view.active[0].fingerprint,
      },
    ]);

    // Still firing, before repeat_interval: nothing more.
    await rig.tick(5 * MIN);
    expect(rig.receiver.requests).toHaveLength(1);
    // At repeat_interval: the same alert again.
    await rig.tick(5 * MIN);
    expect(rig.receiver.requests).toHaveLength(2);
    expect(rig.receiver.requests[1]!.json).toMatchObject({ status: "firing", alerts: [{ fingerprint: view.active[0].fingerprint }] });

    // The host is back: resolved, sent once.
    rig.offline([], 3);
    await rig.tick(2 * SEC);
    expect(rig.receiver.requests).toHaveLength(3);
    const resolved = rig.receiver.requests[2]!;
    await expectSigned(resolved, rig.clock.now());
    expect(resolved.json).toMatchObject({
      status: "resolved",
      alerts: [{ status: "resolved", fingerprint: view.active[0].fingerprint, endsAt: new Date(rig.clock.now()).toISOString() }],
    });
    await rig.tick(20 * MIN);
    expect(rig.receiver.requests).toHaveLength(3);

    view = await alerts();
    expect(view.active).toEqual([]);
    expect(view.history[0]).toMatchObject({
      rule_id: rule.rule_id,
      fingerprint: first.json.alerts[0].fingerprint,
      labels: first.json.alerts[0].labels,
    });
    expect((await notifications()).map((n) => [n.status, n.state, n.attempts])).toEqual([
      ["resolved", "delivered", 1],
      ["firing", "delivered", 1],
      ["firing", "delivered", 1],
    ]);
  });

  it("a deleted rule's firing alert resolves and receivers are told", async () => {
    await createReceiver();
    rig.offline([offlineHost(rig.clock.now() - 10 * MIN)]);
    const rule = await createRule({ kind: "host_offline", name: "gone", for: "1m" });
    await rig.tick(SEC);
    expect((await alerts()).active.map((a) => a.state)).toEqual(["firing"]);
    expect((await api(`/api/alert-rules/${rule.rule_id}`, { method: "DELETE" })).status).toBe(204);
    await rig.tick(2 * SEC);
    expect((await alerts()).active).toEqual([]);
    expect(rig.receiver.requests.map((r) => r.json.status)).toEqual(["firing", "resolved"]);
  });

  it("metric rules are skipped while metrics are unavailable, and evaluated once they are", async () => {
    rig.metrics = null;
    const rule = await createRule({ kind: "dead_letters", name: "dl", window: "5m" });
    await rig.tick(SEC);
    expect((await alerts()).active).toEqual([]);
    rig.metrics = {
      at: rig.clock.now(),
      series: [{ minute: rig.clock.now() - 30 * SEC, commands_by_state: {}, delivery_buckets: [], online_hosts: 0, dead_letters_new: 2 }],
      dead_letters_total: 2,
      recent_final_jobs: [],
    };
    await rig.tick(2 * SEC);
    expect((await alerts()).active).toEqual([expect.objectContaining({ rule_id: rule.rule_id, state: "firing" })]);
  });
});

describe("notification delivery", () => {
  it("a receiver that is down gets the notification once it is back, retried with backoff", async () => {
    await createReceiver();
    rig.receiver.status = (n) => (n <= 3 ? 503 : 200);
    rig.offline([offlineHost(rig.clock.now() - 10 * MIN)]);
    await createRule({ kind: "host_offline", name: "down", for: "1m", repeat_interval: "1h" });

    await rig.tick(SEC);
    expect(rig.receiver.requests).toHaveLength(1);
    let [n] = await notifications();
    expect(n).toMatchObject({ state: "pending", attempts: 1, last_error: "HTTP 503" });
    // Backoff with the rig's fixed jitter (0.5): 0.5 s, then 1 s, then 2 s.
    const firstRetry = Date.parse(n.next_attempt_at) - rig.clock.now();
    expect(firstRetry).toBe(500);
    await rig.tick(firstRetry);
    expect(rig.receiver.requests).toHaveLength(2);
    [n] = await notifications();
    expect(Date.parse(n.next_attempt_at) - rig.clock.now()).toBe(1000);
    await rig.tick(1000);
    await rig.tick(2000);
    expect(rig.receiver.requests).toHaveLength(4);
    [n] = await notifications();
    expect(n).toMatchObject({ state: "delivered", attempts: 4, last_error: null, next_attempt_at: null });
    // Every attempt was the same notification, each signed afresh.
    const deliveryIds = new Set(rig.receiver.requests.map((r) => r.headers.get(DELIVERY_HEADER)));
    expect(deliveryIds.size).toBe(1);
    for (const r of rig.receiver.requests) expect(JSON.parse(r.body).alerts).toEqual(rig.receiver.requests[0]!.json.alerts);
  });

  it("a receiver down past ALERT_NOTIFY_MAX_AGE_S (60 s in tests): recorded as failed, with the last error", async () => {
    await createReceiver();
    rig.receiver.status = () => 500;
    rig.offline([offlineHost(rig.clock.now() - 10 * MIN)]);
    await createRule({ kind: "host_offline", name: "down", for: "1m", repeat_interval: "1h" });
    const start = rig.clock.now();
    await rig.tick(SEC);
    for (let i = 0; i < 40 && (await notifications("state=pending")).length > 0; i++) await rig.tick(5 * SEC);
    const [n] = await notifications();
    expect(n).toMatchObject({ state: "failed", last_error: expect.stringContaining("HTTP 500") });
    expect(n.last_error).toContain("gave up");
    // Tried with backoff (not every round) until the bound, and the last try was made at the bound.
    expect(n.attempts).toBeGreaterThan(3);
    expect(n.attempts).toBeLessThan(15);
    expect(Date.parse(n.finished_at) - start).toBeGreaterThanOrEqual(60 * SEC);
    expect(rig.receiver.requests).toHaveLength(n.attempts);
    expect((await notifications("state=failed")).length).toBe(1);
    // Nothing else is retried after the bound.
    const tries = rig.receiver.requests.length;
    await rig.tick(5 * MIN);
    expect(rig.receiver.requests).toHaveLength(tries);
  });

  it("a disabled receiver gets nothing; a replaced receiver without a secret keeps the old one", async () => {
    const disabled = await createReceiver({ name: "off", enabled: false });
    const kept = await createReceiver({ name: "kept" });
    const put = await api(`/api/alert-receivers/${kept.receiver_id}`, {
      method: "PUT",
      body: { name: "kept", url: "https://receiver.test/kept" },
    });
    expect(put.status).toBe(200);
    rig.offline([offlineHost(rig.clock.now() - 10 * MIN)]);
    await createRule({ kind: "host_offline", name: "down", for: "1m" });
    await rig.tick(SEC);
    expect(rig.receiver.requests.map((r) => r.url)).toEqual(["https://receiver.test/kept"]);
    await expectSigned(rig.receiver.requests[0]!, rig.clock.now());
    expect((await notifications()).map((n) => n.receiver_id)).not.toContain(disabled.receiver_id);
  });
});

describe("alert events", () => {
  it("alert.firing and alert.resolved reach an unfiltered subscriber, a type filter and a host filter", async () => {
    const all = await EventStream.open("");
    const resolvedOnly = await EventStream.open("types=alert.resolved");
    const host = offlineHost(rig.clock.now() - 10 * MIN, ["edge"]);
    const byHost = await EventStream.open(`hosts=${host.host_id}`);
    const otherTypes = await EventStream.open("types=host.online");
    rig.offline([host]);
    const rule = await createRule({ kind: "host_offline", name: "down", for: "1m", annotations: { team: "infra" } });
    await rig.tick(SEC);
    const firing = await all.next((f) => f.type === "alert.firing" && f.rule_id === rule.rule_id);
    expect(firing).toMatchObject({
      state: "firing",
      host_id: host.host_id,
      tags: ["edge"],
      fingerprint: expect.stringMatching(/^[0-9a-f]{16}$/),
      labels: { alertname: "down", host_id: host.host_id },
      annotations: { team: "infra" },
    });
    await byHost.next((f) => f.type === "alert.firing" && f.fingerprint === firing.fingerprint);

    rig.offline([]);
    await rig.tick(2 * SEC);
    const resolved = await all.next((f) => f.type === "alert.resolved" && f.fingerprint === firing.fingerprint);
    expect(resolved.state).toBe("resolved");
    await resolvedOnly.next((f) => f.type === "alert.resolved" && f.fingerprint === firing.fingerprint);
    expect(resolvedOnly.events().map((e) => e.type)).not.toContain("alert.firing");
    expect(otherTypes.events().filter((e) => e.type.startsWith("alert."))).toEqual([]);
    for (const s of [all, resolvedOnly, byHost, otherTypes]) s.close();
  });
});

describe("alert.pending events", () => {
  it("say when an alert starts waiting out `for` and when it is withdrawn before firing", async () => {
    const stream = await EventStream.open("types=alert.pending");
    const host = offlineHost(rig.clock.now(), ["edge"]);
    rig.offline([host]);
    const rule = await createRule({ kind: "host_offline", name: "slow", for: "10m" });
    await rig.tick(SEC);
    const pending = await stream.next((f) => f.type === "alert.pending" && f.rule_id === rule.rule_id);
    expect(pending).toMatchObject({ state: "pending", host_id: host.host_id, labels: { alertname: "slow", host_id: host.host_id } });

    rig.offline([]);
    await rig.tick(2 * SEC);
    const withdrawn = await stream.next((f) => f.type === "alert.pending" && f.state === "inactive");
    expect(withdrawn.fingerprint).toBe(pending.fingerprint);
    // Reported once each, in order.
    expect(
      stream
        .events()
        .filter((e) => e.fingerprint === pending.fingerprint)
        .map((e) => e.state),
    ).toEqual(["pending", "inactive"]);
    stream.close();
  });
});

describe("alert events are durable", () => {
  async function arm(fault: "alerting.publish" | "alerting.after_publish"): Promise<void> {
    await runInDurableObject(alertingStub(), (instance: Alerting) => (instance as any).ac.faults.arm(fault));
  }

  it.each([
    { fault: "alerting.publish" as const, what: "a failed publish is retried from the outbox after its backoff" },
    { fault: "alerting.after_publish" as const, what: "a publish whose answer was lost is retried and stored once (source_seq)" },
  ])("$what", async ({ fault }) => {
    const stream = await EventStream.open("types=alert.firing");
    rig.offline([offlineHost(rig.clock.now() - 10 * MIN)]);
    await arm(fault);
    const rule = await createRule({ kind: "host_offline", name: `durable ${fault}`, for: "1m" });
    await rig.tick(SEC);
    if (fault === "alerting.publish") expect(stream.events((e) => e.rule_id === rule.rule_id)).toEqual([]);
    // Retried after the event backoff (1 s ceiling for the first retry).
    await rig.tick(2 * SEC);
    await stream.next((e) => e.rule_id === rule.rule_id);
    // Anything later for this rule would have arrived before this marker: nothing more does.
    await rig.tick(2 * SEC);
    await sync(stream, { type: "alert.firing", at: new Date().toISOString(), rule_id: crypto.randomUUID() });
    expect(stream.events((e) => e.rule_id === rule.rule_id)).toHaveLength(1);
    stream.close();
  });
});
