import { describe, expect, it } from "vitest";
import { AlertRuleInput } from "../../../schemas/index.ts";
import {
  type ActiveAlert,
  type EvalInputs,
  evaluateGone,
  evaluateRule,
  labelsFingerprint,
  type OfflineHost,
  type RuleForEval,
} from "../../../worker/alerting/evaluate.ts";
import { LATENCY_BUCKETS_S, type MetricsSummary, type MinutePoint } from "../../../worker/metrics/contract.ts";

const T0 = Date.parse("2026-11-20T10:00:00Z");
const MIN = 60_000;
const RULE_ID = "00000000-0000-4000-8000-000000000001";

function rule(spec: Record<string, unknown>): RuleForEval {
  return { rule_id: RULE_ID, spec: AlertRuleInput.parse({ name: "test", ...spec }) };
}

function host(id: number, since: number, tags: string[] = []): OfflineHost {
  return { host_id: `00000000-0000-4000-8000-00000000010${id}`, hostname: `web-${id}`, tags, offline_since: since };
}

function fleet(offline: OfflineHost[], active = 10): EvalInputs {
  return { fleet: { active_hosts: active, offline_hosts: offline.length, offline }, metrics: null };
}

function minute(at: number, extra: Partial<MinutePoint> = {}): MinutePoint {
  return {
    minute: at,
    commands_by_state: {},
    delivery_buckets: new Array(LATENCY_BUCKETS_S.length + 1).fill(0),
    online_hosts: 0,
    dead_letters_new: 0,
    ...extra,
  };
}

function metrics(series: MinutePoint[], jobs: MetricsSummary["recent_final_jobs"] = []): EvalInputs {
  return { fleet: null, metrics: { at: T0, series, dead_letters_total: 0, recent_final_jobs: jobs } };
}

/** Runs the rule at each time in turn, carrying the alerts over like the object does. */
function run(r: RuleForEval, steps: { at: number; inputs: EvalInputs }[]) {
  let prev: ActiveAlert[] = [];
  return steps.map(({ at, inputs }) => {
    const ev = evaluateRule(r, inputs, prev, at);
    prev = ev.active;
    return ev;
  });
}

const summary = (ev: ReturnType<typeof evaluateRule>) => ({
  states: ev.active.map((a) => a.state),
  fired: ev.fired.length,
  resolved: ev.resolved.length,
  notify: ev.notify?.status ?? null,
});
/** Which alerts started pending and which were withdrawn before firing, per round. */
const waits = (ev: ReturnType<typeof evaluateRule>) => ({ pended: ev.pended.length, withdrawn: ev.withdrawn.length });

describe("evaluateRule, host_offline", () => {
  const r = rule({ kind: "host_offline", for: "5m", repeat_interval: "1h" });
  const h = host(1, T0);

  it.each([
    {
      name: "offline for less than `for`: pending, nothing sent",
      at: T0 + 4 * MIN,
      expect: { states: ["pending"], fired: 0, notify: null },
    },
    { name: "offline for exactly `for`: firing", at: T0 + 5 * MIN, expect: { states: ["firing"], fired: 1, notify: "firing" } },
    {
      name: "offline since long before the rule: fires at once",
      at: T0 + 600 * MIN,
      expect: { states: ["firing"], fired: 1, notify: "firing" },
    },
  ])("$name", ({ at, expect: want }) => {
    const [ev] = run(r, [{ at, inputs: fleet([h]) }]);
    expect(summary(ev!)).toMatchObject(want);
  });

  it("pending → firing → (repeat) → resolved, with one notification per change and per repeat_interval", () => {
    const evs = run(r, [
      { at: T0 + MIN, inputs: fleet([h]) },
      { at: T0 + 5 * MIN, inputs: fleet([h]) },
      { at: T0 + 30 * MIN, inputs: fleet([h]) },
      { at: T0 + 65 * MIN, inputs: fleet([h]) },
      { at: T0 + 66 * MIN, inputs: fleet([]) },
      { at: T0 + 67 * MIN, inputs: fleet([]) },
    ]);
    expect(evs.map(summary)).toEqual([
      { states: ["pending"], fired: 0, resolved: 0, notify: null },
      { states: ["firing"], fired: 1, resolved: 0, notify: "firing" },
      { states: ["firing"], fired: 0, resolved: 0, notify: null },
      { states: ["firing"], fired: 0, resolved: 0, notify: "firing" },
      { states: [], fired: 0, resolved: 1, notify: "resolved" },
      { states: [], fired: 0, resolved: 0, notify: null },
    ]);
    const resolved = evs[4]!.resolved[0]!;
    expect(resolved).toMatchObject({ fired_at: T0 + 5 * MIN, resolved_at: T0 + 66 * MIN, active_since: T0 });
    expect(resolved.labels).toEqual({ alertname: "test", rule_id: RULE_ID, host_id: h.host_id, hostname: "web-1" });
  });

  it("a pending alert whose host comes back is dropped without a notification", () => {
    const evs = run(r, [
      { at: T0 + MIN, inputs: fleet([h]) },
      { at: T0 + 2 * MIN, inputs: fleet([]) },
    ]);
    expect(evs.map(summary)).toEqual([
      { states: ["pending"], fired: 0, resolved: 0, notify: null },
      { states: [], fired: 0, resolved: 0, notify: null },
    ]);
    // Each change is reported once, for the event stream: pending, then withdrawn.
    expect(evs.map(waits)).toEqual([
      { pended: 1, withdrawn: 0 },
      { pended: 0, withdrawn: 1 },
    ]);
  });

  it("reports an alert as pending once, not again while it waits, and not when it fires or resolves", () => {
    const evs = run(r, [
      { at: T0 + MIN, inputs: fleet([h]) },
      { at: T0 + 2 * MIN, inputs: fleet([h]) },
      { at: T0 + 5 * MIN, inputs: fleet([h]) },
      { at: T0 + 6 * MIN, inputs: fleet([]) },
    ]);
    expect(evs.map(waits)).toEqual([
      { pended: 1, withdrawn: 0 },
      { pended: 0, withdrawn: 0 },
      { pended: 0, withdrawn: 0 },
      { pended: 0, withdrawn: 0 },
    ]);
    expect(evs.map(summary).map((x) => [x.fired, x.resolved])).toEqual([
      [0, 0],
      [0, 0],
      [1, 0],
      [0, 1],
    ]);
  });

  it("an alert past `for` at first sight fires without a pending report", () => {
    const [ev] = run(r, [{ at: T0 + 600 * MIN, inputs: fleet([h]) }]);
    expect(waits(ev!)).toEqual({ pended: 0, withdrawn: 0 });
    expect(ev!.fired).toHaveLength(1);
  });

  it("one alert per host; the selector limits by tags (any / all)", () => {
    const hosts = [host(1, T0, ["db", "eu"]), host(2, T0, ["db"]), host(3, T0, ["web"])];
    const names = (spec: object) =>
      evaluateRule(rule({ kind: "host_offline", ...spec }), fleet(hosts), [], T0)
        .active.map((a) => a.labels.hostname)
        .sort();
    expect(names({})).toEqual(["web-1", "web-2", "web-3"]);
    expect(names({ selector: { tags: ["db", "web"] } })).toEqual(["web-1", "web-2", "web-3"]);
    expect(names({ selector: { tags: ["db", "eu"], match: "all" } })).toEqual(["web-1"]);
    expect(names({ selector: { tags: ["nope"] } })).toEqual([]);
  });

  it("the registry unavailable: skipped, the alerts kept as they were", () => {
    const [first] = run(r, [{ at: T0 + 6 * MIN, inputs: fleet([h]) }]);
    const ev = evaluateRule(r, { fleet: null, metrics: null }, first!.active, T0 + 7 * MIN);
    expect(ev).toMatchObject({ skipped: true, fired: [], resolved: [], notify: null });
    expect(ev.active).toEqual(first!.active);
  });

  it("a disabled rule resolves its firing alerts", () => {
    const [first] = run(r, [{ at: T0 + 6 * MIN, inputs: fleet([h]) }]);
    const off = { ...r, spec: { ...r.spec, enabled: false } };
    expect(summary(evaluateRule(off, fleet([h]), first!.active, T0 + 7 * MIN))).toEqual({
      states: [],
      fired: 0,
      resolved: 1,
      notify: "resolved",
    });
  });

  it("labels and annotations of the rule are carried; the fingerprint is stable and label-order independent", () => {
    const r2 = rule({
      kind: "host_offline",
      labels: { severity: "page" },
      annotations: { runbook_url: "https://runbooks.example/offline" },
    });
    const [a] = evaluateRule(r2, fleet([h]), [], T0).active;
    expect(a!.labels.severity).toBe("page");
    expect(a!.annotations).toMatchObject({ runbook_url: "https://runbooks.example/offline", summary: expect.stringContaining("web-1") });
    expect(a!.fingerprint).toMatch(/^[0-9a-f]{16}$/);
    expect(labelsFingerprint({ b: "2", a: "1" })).toBe(labelsFingerprint({ a: "1", b: "2" }));
    expect(labelsFingerprint({ a: "1" })).not.toBe(labelsFingerprint({ a: "2" }));
  });
});

describe("evaluateRule, hosts_offline_ratio", () => {
  const r = rule({ kind: "hosts_offline_ratio", threshold_percent: 20, for: "1m" });
  it.each([
    { offline: 2, active: 10, at: T0 + 5 * MIN, states: [] },
    { offline: 3, active: 10, at: T0, states: ["pending"] },
    { offline: 0, active: 0, at: T0, states: [] },
  ])("$offline of $active offline → $states", ({ offline, active, at, states }) => {
    const hosts = Array.from({ length: offline }, (_, i) => host(i, T0 - 60 * MIN));
    expect(evaluateRule(r, fleet(hosts, active), [], at).active.map((a) => a.state)).toEqual(states);
  });

  it("`for` counts from the first round the ratio was exceeded", () => {
    const hosts = [host(1, T0), host(2, T0), host(3, T0)];
    const evs = run(r, [
      { at: T0, inputs: fleet(hosts) },
      { at: T0 + 30_000, inputs: fleet(hosts) },
      { at: T0 + MIN, inputs: fleet(hosts) },
    ]);
    expect(evs.map((e) => e.active.map((a) => a.state))).toEqual([["pending"], ["pending"], ["firing"]]);
  });
});

describe("evaluateRule, metric rules", () => {
  it("dead_letters: a dead letter inside the window fires; once it is older than the window, resolved", () => {
    const r = rule({ kind: "dead_letters", window: "5m" });
    const series = [minute(T0, { dead_letters_new: 1 }), minute(T0 + MIN)];
    const evs = run(r, [
      { at: T0 + 30_000, inputs: metrics(series) },
      { at: T0 + 5 * MIN + 59_000, inputs: metrics(series) },
      { at: T0 + 6 * MIN + 1000, inputs: metrics(series) },
    ]);
    expect(evs.map(summary)).toEqual([
      { states: ["firing"], fired: 1, resolved: 0, notify: "firing" },
      { states: ["firing"], fired: 0, resolved: 0, notify: null },
      { states: [], fired: 0, resolved: 1, notify: "resolved" },
    ]);
  });

  it("delivery_latency_p99: fires when the p99 bucket over the window is above the threshold", () => {
    const r = rule({ kind: "delivery_latency_p99", window: "10m", threshold_seconds: 1 });
    const buckets = (slowIndex: number, slow: number, fast: number) => {
      const b = new Array(LATENCY_BUCKETS_S.length + 1).fill(0);
      b[0] = fast;
      b[slowIndex] = slow;
      return b;
    };
    const twoSecondsBucket = LATENCY_BUCKETS_S.indexOf(2.5);
    const fast = metrics([minute(T0, { delivery_buckets: buckets(twoSecondsBucket, 0, 1000) })]);
    const slow = metrics([minute(T0, { delivery_buckets: buckets(twoSecondsBucket, 20, 980) })]);
    const empty = metrics([minute(T0)]);
    expect(evaluateRule(r, fast, [], T0 + MIN).active).toEqual([]);
    expect(evaluateRule(r, empty, [], T0 + MIN).active).toEqual([]);
    const [a] = evaluateRule(r, slow, [], T0 + MIN).active;
    expect(a!.annotations.summary).toContain("2.5 s");
  });

  it("job_stopped: one alert per job stopped inside the window; cancelled and completed jobs do not count", () => {
    const r = rule({ kind: "job_stopped", window: "30m" });
    const jobA = "00000000-0000-4000-8000-00000000a001";
    const jobB = "00000000-0000-4000-8000-00000000a002";
    const inputs = metrics(
      [],
      [
        { job_id: jobA, state: "stopped", at: T0 },
        { job_id: jobB, state: "cancelled", at: T0 },
        { job_id: "00000000-0000-4000-8000-00000000a003", state: "stopped", at: T0 - 40 * MIN },
      ],
    );
    const ev = evaluateRule(r, inputs, [], T0 + MIN);
    expect(ev.active.map((a) => a.labels.job_id)).toEqual([jobA]);
    expect(ev.active[0]).toMatchObject({ state: "firing", job_id: jobA, active_since: T0 });
  });

  it("metrics unavailable: skipped", () => {
    const r = rule({ kind: "dead_letters", window: "5m" });
    expect(evaluateRule(r, { fleet: null, metrics: null }, [], T0).skipped).toBe(true);
  });
});

describe("evaluateGone", () => {
  it("a deleted rule's firing alerts resolve with one notification; pending ones just go", () => {
    const r = rule({ kind: "host_offline", for: "5m" });
    const [ev] = run(r, [{ at: T0 + 10 * MIN, inputs: fleet([host(1, T0), host(2, T0 + 8 * MIN)]) }]);
    expect(ev!.active.map((a) => a.state).sort()).toEqual(["firing", "pending"]);
    const gone = evaluateGone(ev!.active, T0 + 11 * MIN);
    expect(summary(gone)).toEqual({ states: [], fired: 0, resolved: 1, notify: "resolved" });
  });
});
