/**
 * The benchmark's closing table: every figure of the performance issue (#11) with its target, the
 * relay's value, Mosquitto's from the same run where a peer figure exists, the ratio, and whether
 * the target is met. Fed from the results object bench/run.ts builds; the scale figures (10,000
 * idle agents, connect rate, fan-out) come from other benches and are optional inputs until those
 * are wired in: without them a row says "not measured in this run".
 */
import { bytes, ms, table } from "./stats.ts";

/** What run.ts measured (a subset of its results object). */
export interface SummaryInput {
  agents: number;
  concurrency: number;
  /** REST call → response stored, one at a time, protocol-only agent. */
  protocolRoundTrip: { p50: number; p99: number };
  /** The same with the real agent. */
  realRoundTrip: { p50: number };
  /** Throughput run with protocol-only agents: commands/s and workerd CPU (ms) per command. */
  throughput: { perSecond: number; workerdCpuMs: number };
  /** Mosquitto's publish → operator received response, same run; null when the peer was skipped. */
  mosquitto: { version: string; roundTrip: { p50: number; p99: number } } | null;
  /** Idle agents held by this run (BENCH_CONNECTIONS), when that part ran. */
  idle?: { agents: number; bytesPerAgent: number; connectsPerS: number } | undefined;
  /** Memory per idle connected agent at scale (relay processes), from the 10,000-agent bench. */
  scaleMemory?: { agents: number; relayBytes: number; mosquittoBytes?: number | undefined } | undefined;
  /** Connect rate at scale, from the 10,000-agent bench. */
  connectRate?: { agents: number; relayPerS: number; mosquittoPerS?: number | undefined } | undefined;
  /** A job to 10,000 hosts: seconds until every host is queued or (offline) waiting in the job, from the fan-out bench. */
  fanOut?: { hosts: number; seconds: number } | undefined;
  /** SQLite rows written per command by object, when measured (test/worker/storage/rows-per-command.test.ts). */
  rowsPerCommand?: Record<string, number> | undefined;
}

export interface SummaryRow {
  figure: string;
  relay: string;
  mosquitto: string;
  ratio: string;
  target: string;
  verdict: "met" | "missed" | "not measured in this run";
}

const NOT_MEASURED = "not measured in this run";
/** relay / mosquitto; a rate far below the peer's keeps two significant digits (0.027×, not 0.0×). */
const x = (a: number, b: number) => {
  const r = a / b;
  return `${r >= 0.1 ? r.toFixed(1) : r.toPrecision(2)}×`;
};
const met = (ok: boolean): SummaryRow["verdict"] => (ok ? "met" : "missed");

export function summaryRows(s: SummaryInput): SummaryRow[] {
  const mq = s.mosquitto?.roundTrip;
  const rows: SummaryRow[] = [
    {
      figure: "round trip p50, protocol-only agent (REST call → response stored)",
      relay: `${ms(s.protocolRoundTrip.p50)} ms`,
      mosquitto: mq ? `${ms(mq.p50)} ms` : "-",
      ratio: mq ? x(s.protocolRoundTrip.p50, mq.p50) : "-",
      target: "≤ 0.5 ms",
      verdict: met(s.protocolRoundTrip.p50 <= 0.5),
    },
    {
      figure: "round trip p99, protocol-only agent",
      relay: `${ms(s.protocolRoundTrip.p99)} ms`,
      mosquitto: mq ? `${ms(mq.p99)} ms` : "-",
      ratio: mq ? x(s.protocolRoundTrip.p99, mq.p99) : "-",
      target: "≤ 2× Mosquitto's",
      verdict: mq ? met(s.protocolRoundTrip.p99 <= 2 * mq.p99) : NOT_MEASURED,
    },
    {
      figure: "round trip p50, real agent",
      relay: `${ms(s.realRoundTrip.p50)} ms`,
      mosquitto: mq ? `${ms(mq.p50)} ms` : "-",
      ratio: mq ? x(s.realRoundTrip.p50, mq.p50) : "-",
      target: "≤ 1 ms",
      verdict: met(s.realRoundTrip.p50 <= 1),
    },
    {
      figure: "workerd CPU per command (throughput, protocol-only)",
      relay: `${ms(s.throughput.workerdCpuMs)} ms`,
      mosquitto: "-",
      ratio: "-",
      target: "≤ 0.5 ms",
      verdict: met(s.throughput.workerdCpuMs <= 0.5),
    },
    {
      figure: `throughput, ${s.agents} agents, ${s.concurrency} callers (protocol-only)`,
      relay: `${s.throughput.perSecond} cmds/s`,
      mosquitto: "-",
      ratio: "-",
      target: "≥ 2,000 cmds/s",
      verdict: met(s.throughput.perSecond >= 2000),
    },
    s.scaleMemory
      ? {
          figure: `memory per idle connected agent (relay processes, ${s.scaleMemory.agents} agents)`,
          relay: bytes(s.scaleMemory.relayBytes),
          mosquitto: s.scaleMemory.mosquittoBytes === undefined ? "-" : bytes(s.scaleMemory.mosquittoBytes),
          ratio: s.scaleMemory.mosquittoBytes ? x(s.scaleMemory.relayBytes, s.scaleMemory.mosquittoBytes) : "-",
          target: "≤ 64 KiB at 10,000 agents",
          verdict: s.scaleMemory.agents >= 10_000 ? met(s.scaleMemory.relayBytes <= 64 * 1024) : NOT_MEASURED,
        }
      : {
          figure: "memory per idle connected agent (relay processes)",
          relay: s.idle ? `(${bytes(s.idle.bytesPerAgent)} at ${s.idle.agents} agents)` : "-",
          mosquitto: "-",
          ratio: "-",
          target: "≤ 64 KiB at 10,000 agents",
          verdict: NOT_MEASURED,
        },
    s.connectRate
      ? {
          figure: `connect rate (${s.connectRate.agents} agents)`,
          relay: `${Math.round(s.connectRate.relayPerS)} /s`,
          mosquitto: s.connectRate.mosquittoPerS === undefined ? "-" : `${Math.round(s.connectRate.mosquittoPerS)} /s`,
          ratio: s.connectRate.mosquittoPerS ? x(s.connectRate.relayPerS, s.connectRate.mosquittoPerS) : "-",
          target: "≥ 1,000 /s",
          verdict: met(s.connectRate.relayPerS >= 1000),
        }
      : {
          figure: "connect rate",
          relay: s.idle ? `(${Math.round(s.idle.connectsPerS)} /s at ${s.idle.agents} agents)` : "-",
          mosquitto: "-",
          ratio: "-",
          target: "≥ 1,000 /s",
          verdict: NOT_MEASURED,
        },
    s.fanOut
      ? {
          figure: `job to ${s.fanOut.hosts} offline hosts, all queued or waiting`,
          relay: `${s.fanOut.seconds.toFixed(1)} s`,
          mosquitto: "-",
          ratio: "-",
          target: "≤ 10 s at 10,000 hosts",
          verdict: s.fanOut.hosts >= 10_000 ? met(s.fanOut.seconds <= 10) : NOT_MEASURED,
        }
      : { figure: "job to 10,000 hosts, all queued", relay: "-", mosquitto: "-", ratio: "-", target: "≤ 10 s", verdict: NOT_MEASURED },
  ];
  return rows;
}

/** The closing section's lines. */
export function summaryText(s: SummaryInput): string[] {
  const rows = summaryRows(s);
  const peer = s.mosquitto ? `mosquitto ${s.mosquitto.version}` : "mosquitto (skipped)";
  const lines = [
    table(
      ["figure", "relay", peer, "relay/mosquitto", "target", ""],
      rows.map((r) => [r.figure, r.relay, r.mosquitto, r.ratio, r.target, r.verdict]),
    ),
    "  Durability: every relay state change is committed to Durable Object storage before it is acked or answered;",
    "  Mosquitto keeps QoS 1 messages in memory and writes its persistence file on autosave and at shutdown.",
  ];
  const rowsWritten = s.rowsPerCommand;
  lines.push(
    rowsWritten
      ? `  SQLite rows written per command: ${Object.entries(rowsWritten)
          .map(([k, v]) => `${k} ${v}`)
          .join(", ")} (${Object.values(rowsWritten)
          .reduce((a, b) => a + b, 0)
          .toFixed(1)} in all)`
      : "  SQLite rows written per command: not measured in this run",
  );
  return lines;
}
