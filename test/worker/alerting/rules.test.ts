import { beforeEach, describe, expect, it } from "vitest";
import { receiverUrlProblem } from "../../../worker/alerting/receiver-url.ts";
import { api, errorPaths, expectProblem } from "../helpers.ts";
import { AlertRig, clearAlerting, createReceiver, createRule, RECEIVER_SECRET } from "./alerting-helpers.ts";

beforeEach(async () => {
  // Nothing in these tests may reach the network: the rig's receiver answers every POST.
  await AlertRig.install();
  await clearAlerting();
});

const valid = { kind: "host_offline", name: "host down", for: "5m" };

async function postRule(body: unknown) {
  return api("/api/alert-rules", { body });
}

describe("alert rules: validation", () => {
  it.each([
    { name: "unknown kind", body: { ...valid, kind: "cpu_high" }, paths: ["kind"] },
    { name: "no kind", body: { name: "x" }, paths: ["kind"] },
    { name: "negative for", body: { ...valid, for: "-5m" }, paths: ["for"] },
    { name: "duration as a bare number", body: { ...valid, for: 300 }, paths: ["for"] },
    { name: "duration with an unknown unit", body: { ...valid, for: "5y" }, paths: ["for"] },
    { name: "for past 7 days", body: { ...valid, for: "8d" }, paths: ["for"] },
    { name: "repeat_interval under a minute", body: { ...valid, repeat_interval: "10s" }, paths: ["repeat_interval"] },
    { name: "window past an hour", body: { kind: "dead_letters", name: "dl", window: "2h" }, paths: ["window"] },
    { name: "dead_letters without a window", body: { kind: "dead_letters", name: "dl" }, paths: ["window"] },
    { name: "ratio at 100%", body: { kind: "hosts_offline_ratio", name: "r", threshold_percent: 100 }, paths: ["threshold_percent"] },
    {
      name: "negative threshold",
      body: { kind: "delivery_latency_p99", name: "p", window: "5m", threshold_seconds: -1 },
      paths: ["threshold_seconds"],
    },
    { name: "an unknown field", body: { ...valid, severity: "page" }, paths: ["(root)"] },
    { name: "empty name", body: { ...valid, name: "" }, paths: ["name"] },
    { name: "reserved label", body: { ...valid, labels: { alertname: "x" } }, paths: ["labels.alertname"] },
    { name: "bad label name", body: { ...valid, labels: { "bad-name": "x" } }, paths: ["labels.bad-name"] },
    {
      name: "oversized annotation",
      body: { ...valid, annotations: { description: "x".repeat(3000) } },
      paths: ["annotations.description"],
    },
    {
      name: "annotations too large in all",
      body: { ...valid, annotations: Object.fromEntries(Array.from({ length: 5 }, (_, i) => [`a${i}`, "x".repeat(2000)])) },
      paths: ["annotations"],
    },
    {
      name: "too many labels",
      body: { ...valid, labels: Object.fromEntries(Array.from({ length: 17 }, (_, i) => [`l${i}`, "v"])) },
      paths: ["labels"],
    },
    { name: "selector without tags", body: { ...valid, selector: { match: "all" } }, paths: ["selector.tags"] },
    { name: "selector on another kind", body: { kind: "job_stopped", name: "j", selector: { tags: ["a"] } }, paths: ["(root)"] },
  ])("$name → 400 naming $paths", async ({ body, paths }) => {
    const problem = await expectProblem(await postRule(body), 400, "ERR_VALIDATION");
    for (const p of paths) expect(errorPaths(problem)).toContain(p);
  });

  it("malformed JSON → 400 ERR_MALFORMED_JSON, and nothing is stored by any refused request", async () => {
    await expectProblem(
      await api("/api/alert-rules", { rawBody: '{"kind": "host_offline",', headers: { "content-type": "application/json" } }),
      400,
      "ERR_MALFORMED_JSON",
    );
    await expectProblem(await postRule({ ...valid, for: "-1s" }), 400);
    const list = (await (await api("/api/alert-rules")).json()) as { items: unknown[] };
    expect(list.items).toEqual([]);
  });
});

describe("alert rules: CRUD", () => {
  it("creates with defaults, reads, replaces, lists and deletes", async () => {
    const rule = await createRule({ ...valid, selector: { tags: ["db"] }, labels: { severity: "page" } });
    expect(rule).toMatchObject({
      rule_id: expect.any(String),
      kind: "host_offline",
      for: "5m",
      repeat_interval: "4h",
      enabled: true,
      selector: { tags: ["db"], match: "any" },
      labels: { severity: "page" },
      annotations: {},
    });
    const got = await api(`/api/alert-rules/${rule.rule_id}`);
    expect(await got.json()).toEqual(rule);

    const put = await api(`/api/alert-rules/${rule.rule_id}`, {
      method: "PUT",
      body: { kind: "hosts_offline_ratio", name: "many down", threshold_percent: 25, for: "1m" },
    });
    expect(put.status).toBe(200);
    const replaced = (await put.json()) as any;
    expect(replaced).toMatchObject({
      rule_id: rule.rule_id,
      kind: "hosts_offline_ratio",
      threshold_percent: 25,
      created_at: rule.created_at,
    });
    expect(replaced.selector).toBeUndefined();

    const list = (await (await api("/api/alert-rules")).json()) as { items: any[] };
    expect(list.items.map((r) => r.rule_id)).toEqual([rule.rule_id]);

    expect((await api(`/api/alert-rules/${rule.rule_id}`, { method: "DELETE" })).status).toBe(204);
    await expectProblem(await api(`/api/alert-rules/${rule.rule_id}`), 404, "ERR_ALERT_RULE_NOT_FOUND");
    await expectProblem(await api(`/api/alert-rules/${rule.rule_id}`, { method: "DELETE" }), 404, "ERR_ALERT_RULE_NOT_FOUND");
    await expectProblem(await api(`/api/alert-rules/${rule.rule_id}`, { method: "PUT", body: valid }), 404, "ERR_ALERT_RULE_NOT_FOUND");
    await expectProblem(await api("/api/alert-rules/not-a-uuid"), 400, "ERR_VALIDATION");
  });

  it("every kind is accepted", async () => {
    for (const body of [
      valid,
      { kind: "hosts_offline_ratio", name: "r", threshold_percent: 50 },
      { kind: "dead_letters", name: "d", window: "10m" },
      { kind: "delivery_latency_p99", name: "p", window: "5m", threshold_seconds: 2.5 },
      { kind: "job_stopped", name: "j" },
    ]) {
      await createRule(body);
    }
    const list = (await (await api("/api/alert-rules")).json()) as { items: any[] };
    expect(list.items.map((r) => r.kind)).toEqual([
      "host_offline",
      "hosts_offline_ratio",
      "dead_letters",
      "delivery_latency_p99",
      "job_stopped",
    ]);
  });
});

describe("roles", () => {
  it("rules, receivers and notifications are admin-only; alerts are readable by viewers, not by the metrics role", async () => {
    for (const role of ["operator", "viewer"]) {
      await expectProblem(await api("/api/alert-rules", { role, body: valid }), 403, "ERR_FORBIDDEN");
      await expectProblem(await api("/api/alert-rules", { role }), 403, "ERR_FORBIDDEN");
      await expectProblem(await api("/api/alert-receivers", { role }), 403, "ERR_FORBIDDEN");
      await expectProblem(
        await api("/api/alert-receivers", { role, body: { name: "x", url: "https://x.test/", secret: RECEIVER_SECRET } }),
        403,
        "ERR_FORBIDDEN",
      );
      await expectProblem(await api("/api/alert-notifications", { role }), 403, "ERR_FORBIDDEN");
    }
    expect((await api("/api/alerts", { role: "viewer" })).status).toBe(200);
    await expectProblem(await api("/api/alerts", { role: "metrics" }), 403, "ERR_FORBIDDEN");
    await expectProblem(await api("/api/alerts", { token: null }), 401, "ERR_AUTH_MISSING");
  });
});

describe("receivers", () => {
  it.each([
    { name: "plain http to a public host", url: "http://example.com/hook" },
    { name: "another scheme", url: "ftp://example.com/hook" },
    { name: "not a URL", url: "receiver" },
    { name: "credentials in the URL", url: "https://user:pass@example.com/hook" },
    { name: "http to a name that is not loopback", url: "http://127.example.com/hook" },
  ])("$name → 400 naming url", async ({ url }) => {
    const problem = await expectProblem(
      await api("/api/alert-receivers", { body: { name: "x", url, secret: RECEIVER_SECRET } }),
      400,
      "ERR_VALIDATION",
    );
    expect(errorPaths(problem)).toContain("url");
  });

  it("a short secret → 400 naming secret; a missing one too", async () => {
    const short = await expectProblem(
      await api("/api/alert-receivers", { body: { name: "x", url: "https://x.test/", secret: "short" } }),
      400,
    );
    expect(errorPaths(short)).toContain("secret");
    const none = await expectProblem(await api("/api/alert-receivers", { body: { name: "x", url: "https://x.test/" } }), 400);
    expect(errorPaths(none)).toContain("secret");
  });

  it("plain http to loopback is allowed on a local relay (ALERT_ALLOW_HTTP_LOOPBACK=1)", async () => {
    for (const url of ["http://127.0.0.1:9093/hook", "http://localhost:9093/", "http://[::1]:9093/"]) await createReceiver({ url });
  });

  it("the secret is never echoed: not on create, read, list, replace", async () => {
    const created = await createReceiver();
    expect(created).toMatchObject({ name: "ops", url: "https://receiver.test/hook", enabled: true, has_secret: true });
    const texts = [
      JSON.stringify(created),
      await (await api(`/api/alert-receivers/${created.receiver_id}`)).text(),
      await (await api("/api/alert-receivers")).text(),
      await (
        await api(`/api/alert-receivers/${created.receiver_id}`, {
          method: "PUT",
          body: { name: "ops-2", url: "https://receiver.test/other", secret: "another-secret-0123456789" },
        })
      ).text(),
    ];
    for (const text of texts) {
      expect(text).not.toContain(RECEIVER_SECRET);
      expect(text).not.toContain("another-secret-0123456789");
      expect(text).not.toMatch(/"secret"/);
    }
    await expectProblem(await api(`/api/alert-receivers/${crypto.randomUUID()}`), 404, "ERR_RECEIVER_NOT_FOUND");
    expect((await api(`/api/alert-receivers/${created.receiver_id}`, { method: "DELETE" })).status).toBe(204);
    await expectProblem(await api(`/api/alert-receivers/${created.receiver_id}`, { method: "DELETE" }), 404, "ERR_RECEIVER_NOT_FOUND");
  });
});

describe("receiverUrlProblem (the local-mode switch)", () => {
  it.each([
    { url: "https://alerts.example.com/hook", local: false, ok: true },
    { url: "http://127.0.0.1:9093/hook", local: false, ok: false },
    { url: "http://127.0.0.1:9093/hook", local: true, ok: true },
    { url: "http://10.0.0.1/hook", local: true, ok: false },
    { url: "http://localhost./hook", local: true, ok: false },
  ])("$url with loopback http allowed=$local → ok=$ok", ({ url, local, ok }) => {
    expect(receiverUrlProblem(url, local) === null).toBe(ok);
  });
});
