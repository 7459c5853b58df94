import { describe, expect, it } from "vitest";
import { type SummaryInput, summaryRows, summaryText } from "../../bench/summary.ts";

const base: SummaryInput = {
  agents: 8,
  concurrency: 32,
  protocolRoundTrip: { p50: 0.4, p99: 3 },
  realRoundTrip: { p50: 4.4 },
  throughput: { perSecond: 359, workerdCpuMs: 2.3 },
  mosquitto: { version: "2.0.11", roundTrip: { p50: 0.2, p99: 1 } },
};

describe("the benchmark's summary table", () => {
  it("has every figure of the issue's table, with ratios to Mosquitto and verdicts against the targets", () => {
    const rows = summaryRows(base);
    expect(rows.map((r) => r.target)).toEqual([
      "≤ 0.5 ms",
      "≤ 2× Mosquitto's",
      "≤ 1 ms",
      "≤ 0.5 ms",
      "≥ 2,000 cmds/s",
      "≤ 64 KiB at 10,000 agents",
      "≥ 1,000 /s",
      "≤ 10 s",
    ]);
    expect(rows[0]).toMatchObject({ relay: "0.400 ms", mosquitto: "0.200 ms", ratio: "2.0×", verdict: "met" });
    expect(rows[1]).toMatchObject({ ratio: "3.0×", verdict: "missed" });
    expect(rows.slice(2, 5).map((r) => r.verdict)).toEqual(["missed", "missed", "missed"]);
    expect(rows.slice(5).map((r) => r.verdict)).toEqual(Array(3).fill("not measured in this run"));
  });

  it("takes the scale figures when another bench supplies them, judging memory only at 10,000 agents", () => {
    const rows = summaryRows({
      ...base,
      scaleMemory: { agents: 10_000, relayBytes: 60 * 1024, mosquittoBytes: 20 * 1024 },
      connectRate: { agents: 10_000, relayPerS: 900, mosquittoPerS: 3000 },
      fanOut: { hosts: 10_000, seconds: 8 },
    });
    expect(rows[5]).toMatchObject({ relay: "60.0 KiB", ratio: "3.0×", verdict: "met" });
    expect(rows[6]).toMatchObject({ relay: "900 /s", ratio: "0.3×", verdict: "missed" });
    expect(rows[7]).toMatchObject({ relay: "8.0 s", verdict: "met" });
    const small = summaryRows({ ...base, scaleMemory: { agents: 1000, relayBytes: 1024 } });
    expect(small[5]!.verdict).toBe("not measured in this run");
  });

  it("without a peer, says so instead of inventing a ratio; states the durability difference", () => {
    const rows = summaryRows({ ...base, mosquitto: null });
    expect(rows[0]).toMatchObject({ mosquitto: "-", ratio: "-" });
    expect(rows[1]!.verdict).toBe("not measured in this run");
    const text = summaryText({ ...base, rowsPerCommand: { HostRelay: 22, AuditLog: 6 } }).join("\n");
    expect(text).toContain("committed to Durable Object storage before it is acked or answered");
    expect(text).toContain("autosave");
    expect(text).toContain("HostRelay 22, AuditLog 6 (28.0 in all)");
  });
});
