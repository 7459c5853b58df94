/**
 * GET /metrics and GET /api/metrics through the Worker: who may read them, the exposition's shape
 * (HELP/TYPE, escaping, histograms, hosts from the registry, build_info), REST durations labelled by
 * route template, and the dashboard JSON against its schema.
 */
import { describe, expect, it } from "vitest";
import { MetricsOverview } from "../../../schemas/index.ts";
import { M, RELAY_VERSION } from "../../../worker/metrics/catalogue.ts";
import { LATENCY_BUCKETS_S } from "../../../worker/metrics/contract.ts";
import { EXPOSITION_CONTENT_TYPE, renderExposition } from "../../../worker/metrics/exposition.ts";
import { seriesKey } from "../../../worker/metrics/series.ts";
import { api, expectProblem, registerHost, token } from "../helpers.ts";
import { scrape } from "./metrics-helpers.ts";

describe("GET /metrics: who may scrape", () => {
  it("401 without a token, 403 for a token with no role, 200 for metrics and for viewer", async () => {
    const none = await api("/metrics", { token: null });
    await expectProblem(none, 401, "ERR_AUTH_MISSING");
    expect(none.headers.get("www-authenticate")).toContain("Bearer");
    await expectProblem(await api("/metrics", { token: await token(null) }), 403);
    for (const role of ["metrics", "viewer", "admin"]) {
      const res = await api("/metrics", { role });
      expect(res.status, role).toBe(200);
      expect(res.headers.get("content-type")).toBe(EXPOSITION_CONTENT_TYPE);
      await res.text();
    }
  });

  it("the metrics role reaches nothing else", async () => {
    await expectProblem(await api("/api/metrics", { role: "metrics" }), 403);
    await expectProblem(await api("/api/hosts", { role: "metrics" }), 403);
  });
});

describe("the exposition", () => {
  it("documents every metric the issue asks for, with HELP and TYPE", async () => {
    const text = await scrape();
    const families: [string, string][] = [
      [M.HOSTS, "gauge"],
      [M.CONNECTIONS_ACCEPTED, "counter"],
      [M.CONNECTIONS_REFUSED, "counter"],
      [M.DISCONNECTS, "counter"],
      [M.COMMANDS_ENQUEUED, "counter"],
      [M.COMMANDS_FINISHED, "counter"],
      [M.RESENDS, "counter"],
      [M.DEAD_LETTERS, "gauge"],
      [M.DEAD_LETTERS_TOTAL, "counter"],
      [M.EXPIRATIONS, "counter"],
      [M.QUEUE_DEPTH, "gauge"],
      [M.SEND_TO_ACK, "histogram"],
      [M.ACCEPTED_TO_FINAL, "histogram"],
      [M.HTTP_DURATION, "histogram"],
      [M.EVENT_SUBSCRIBERS, "gauge"],
      [M.EVENTS_PUBLISHED, "counter"],
      [M.EVENT_REFETCHES, "counter"],
      [M.JOBS, "gauge"],
      [M.AUDIT_RECORDS, "counter"],
      [M.AUDIT_WRITE_ERRORS, "counter"],
      [M.BUILD_INFO, "gauge"],
    ];
    for (const [name, type] of families) {
      expect(text, name).toMatch(new RegExp(`^# HELP ${name} \\S`, "m"));
      expect(text, name).toContain(`\n# TYPE ${name} ${type}\n`);
    }
    expect(text).toContain(`fleet_relay_build_info{version="${RELAY_VERSION}"} 1\n`);
    // Not written yet by anyone in this file: still present, as 0.
    expect(text).toContain("\nfleet_relay_audit_write_errors_total 0\n");
    expect(text).toContain("\nfleet_relay_audit_records_written_total 0\n");
    // Every line is a comment or a sample.
    for (const line of text.trimEnd().split("\n")) {
      expect(line).toMatch(
        /^(# (HELP|TYPE) fleet_relay_\w+ .+|fleet_relay_\w+(\{[^}]*\})? -?[\d.e+-]+|fleet_relay_\w+(\{[^}]*\})? [+-]Inf)$/,
      );
    }
  });

  it("hosts by status come from the registry", async () => {
    const count = (text: string, status: string) =>
      Number(new RegExp(`^fleet_relay_hosts\\{status="${status}"\\} (\\d+)$`, "m").exec(text)![1]);
    const before = await scrape();
    const host = await registerHost();
    await registerHost();
    expect((await api(`/api/hosts/${host.host_id}/revoke`, { role: "admin", method: "POST" })).status).toBe(200);
    const after = await scrape();
    expect(count(after, "offline") - count(before, "offline")).toBe(1);
    expect(count(after, "revoked") - count(before, "revoked")).toBe(1);
    expect(count(after, "online")).toBe(count(before, "online"));
  });

  it("REST durations are labelled by route template and status, never by the raw path", async () => {
    const host = await registerHost();
    expect((await api(`/api/hosts/${host.host_id}`, { role: "viewer" })).status).toBe(200);
    expect((await api(`/api/hosts/${crypto.randomUUID()}`, { role: "viewer" })).status).toBe(404);
    expect((await api(`/no/such/${crypto.randomUUID()}`, { role: "viewer" })).status).toBe(404);
    const text = await scrape();
    expect(text).toMatch(
      /^fleet_relay_http_request_duration_seconds_count\{method="GET",route="\/api\/hosts\/:host_id",status="200"\} [1-9]/m,
    );
    expect(text).toMatch(
      /^fleet_relay_http_request_duration_seconds_count\{method="GET",route="\/api\/hosts\/:host_id",status="404"\} [1-9]/m,
    );
    expect(text).toMatch(/^fleet_relay_http_request_duration_seconds_count\{method="GET",route="unmatched",status="404"\} [1-9]/m);
    expect(text).toMatch(
      /^fleet_relay_http_request_duration_seconds_bucket\{method="POST",route="\/api\/hosts",status="201",le="\+Inf"\} [1-9]/m,
    );
    expect(text).not.toContain(host.host_id);
  });

  it("escapes label values and writes histograms cumulatively with _sum and _count", () => {
    const buckets = new Array<number>(LATENCY_BUCKETS_S.length + 1).fill(0);
    buckets[0] = 2;
    buckets[3] = 1;
    buckets[LATENCY_BUCKETS_S.length] = 1;
    const text = renderExposition({
      counters: { [seriesKey(M.CONNECTIONS_REFUSED, { reason: 'a"b\\c\nd' })]: 2 },
      gauges: {},
      histograms: { [seriesKey(M.SEND_TO_ACK)]: { buckets, sum: 4000.5, count: 4 } },
    });
    expect(text).toContain('fleet_relay_agent_connections_refused_total{reason="a\\"b\\\\c\\nd"} 2\n');
    expect(text).toContain('fleet_relay_command_send_to_ack_seconds_bucket{le="0.001"} 2\n');
    expect(text).toContain('fleet_relay_command_send_to_ack_seconds_bucket{le="0.005"} 2\n');
    expect(text).toContain('fleet_relay_command_send_to_ack_seconds_bucket{le="0.01"} 3\n');
    expect(text).toContain('fleet_relay_command_send_to_ack_seconds_bucket{le="3600"} 3\n');
    expect(text).toContain('fleet_relay_command_send_to_ack_seconds_bucket{le="+Inf"} 4\n');
    expect(text).toContain("fleet_relay_command_send_to_ack_seconds_sum 4000.5\nfleet_relay_command_send_to_ack_seconds_count 4\n");
    // An unlabelled histogram nobody observed is still there, empty.
    expect(text).toContain('fleet_relay_command_accepted_to_final_seconds_bucket{le="+Inf"} 0\n');
  });
});

describe("GET /api/metrics", () => {
  it("a viewer gets current values and 61 minutes, matching the published schema", async () => {
    const res = await api("/api/metrics", { role: "viewer" });
    expect(res.status).toBe(200);
    const body = await res.json();
    const parsed = MetricsOverview.safeParse(body);
    expect(parsed.success, JSON.stringify(parsed.error?.issues)).toBe(true);
    const o = parsed.data!;
    expect(o.series).toHaveLength(61);
    const minutes = o.series.map((p) => Date.parse(p.minute));
    for (let i = 1; i < minutes.length; i++) expect(minutes[i]! - minutes[i - 1]!).toBe(60_000);
    expect(Date.parse(o.at) - minutes.at(-1)!).toBeLessThan(60_000);
    expect(o.current.hosts).toEqual({ online: expect.any(Number), offline: expect.any(Number), revoked: expect.any(Number) });
  });

  it("is in the OpenAPI document under a named schema", async () => {
    const doc = (await (await api("/openapi.json", { token: null })).json()) as any;
    expect(doc.paths["/api/metrics"].get.operationId).toBe("getMetricsOverview");
    expect(doc.paths["/metrics"].get.operationId).toBe("scrapeMetrics");
    expect(doc.components.schemas.MetricsOverview).toBeDefined();
  });
});
