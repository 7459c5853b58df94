/**
 * The metrics against a real Prometheus: the local relay (workerd + the TLS edge), a real agent
 * enrolled through the library running a real command, and Debian's `prometheus` scraping
 * `/metrics` every second with a `metrics`-role token. The test waits (bounded, polling the
 * Prometheus HTTP API) until the query for `fleet_relay_commands_finished_total` returns the value
 * the command moved, and `promtool check metrics` reports nothing on the scraped text.
 * Skipped, saying so, only when the prometheus binary is absent (`.ci/run` installs it).
 */
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { type Agent, enroll, type Logger, startAgent } from "../../agent/index.ts";
import { freePort } from "../../bench/mqtt-peer.ts";
import { signDevToken } from "../../scripts/dev-token.ts";
import { readJwtSecret } from "../../scripts/jwt-secret.ts";
import { type LocalRelay, startLocalRelay } from "../../scripts/local-relay.ts";
import { RELAY_VERSION } from "../../worker/metrics/catalogue.ts";
import { RelayRest, waitUntil } from "../helpers/relay-rest.ts";

const PROMETHEUS = "/usr/bin/prometheus";
const PROMTOOL = "/usr/bin/promtool";
const present = existsSync(PROMETHEUS) && existsSync(PROMTOOL);
if (!present) console.warn(`SKIP test/e2e/prometheus.test.ts: ${PROMETHEUS} or ${PROMTOOL} is missing (apt-get install prometheus)`);

const cleanups: (() => Promise<unknown> | unknown)[] = [];
afterAll(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function tmp(prefix: string): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), prefix));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

const quiet: Logger = { debug: () => {}, info: () => {}, warn: () => {}, error: () => {} };

/** Runs `promtool check metrics` over `text` on stdin. */
function promtoolCheckMetrics(text: string): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(PROMTOOL, ["check", "metrics"], { stdio: ["pipe", "pipe", "pipe"] });
    let out = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    child.stderr.on("data", (d: Buffer) => (out += d.toString()));
    child.once("error", reject);
    child.once("exit", (code) => resolve({ code, out }));
    child.stdin.end(text);
  });
}

/** Starts prometheus scraping `target` every second with `token`; resolves with its API base URL. */
async function startPrometheus(target: string, token: string): Promise<{ url: string; child: ChildProcess; log: () => string }> {
  const dir = await tmp("fleet-prometheus-");
  const config = [
    "global:",
    "  scrape_interval: 1s",
    "  evaluation_interval: 1s",
    "scrape_configs:",
    "  - job_name: fleet-relay",
    "    scrape_interval: 1s",
    "    scrape_timeout: 1s",
    "    metrics_path: /metrics",
    "    authorization:",
    "      type: Bearer",
    `      credentials: ${JSON.stringify(token)}`,
    "    static_configs:",
    `      - targets: [${JSON.stringify(target)}]`,
    "",
  ].join("\n");
  const configFile = path.join(dir, "prometheus.yml");
  await writeFile(configFile, config);
  const port = await freePort();
  const child = spawn(
    PROMETHEUS,
    [
      `--config.file=${configFile}`,
      `--storage.tsdb.path=${path.join(dir, "data")}`,
      `--web.listen-address=127.0.0.1:${port}`,
      "--log.level=warn",
    ],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  let log = "";
  child.stdout!.on("data", (d: Buffer) => (log += d.toString()));
  child.stderr!.on("data", (d: Buffer) => (log += d.toString()));
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  cleanups.push(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill("SIGTERM");
      await Promise.race([exited, new Promise((r) => setTimeout(r, 10_000))]);
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
    }
  });
  const url = `http://127.0.0.1:${port}`;
  await waitUntil(
    async () => {
      if (child.exitCode !== null) throw new Error(`prometheus exited (${child.exitCode}): ${log}`);
      const res = await fetch(`${url}/-/ready`, { signal: AbortSignal.timeout(2000) });
      return res.ok ? true : undefined;
    },
    { timeoutMs: 30_000, intervalMs: 200, what: "prometheus to be ready", describe: () => log.slice(-2000) },
  );
  return { url, child, log: () => log };
}

/** The value of an instant query's single sample, or undefined when it has none yet. */
async function queryValue(prometheusUrl: string, query: string): Promise<number | undefined> {
  const res = await fetch(`${prometheusUrl}/api/v1/query?query=${encodeURIComponent(query)}`, { signal: AbortSignal.timeout(5000) });
  const body = (await res.json()) as { status: string; data: { result: { value: [number, string] }[] } };
  if (body.status !== "success" || body.data.result.length === 0) return undefined;
  return Number(body.data.result[0]!.value[1]);
}

describe.skipIf(!present)("a real Prometheus scraping the relay", () => {
  it("sees the counter a real command moved, and promtool finds nothing wrong with the exposition", { timeout: 120_000 }, async () => {
    const relayDir = await tmp("fleet-prom-relay-");
    const relay: LocalRelay = await startLocalRelay({ port: 0, edgePort: 0, stateDir: relayDir, quiet: true });
    cleanups.push(() => relay.stop());
    const rest = await RelayRest.create(relay.url, relayDir);
    const secret = (await readJwtSecret(relayDir))!;
    const metricsToken = await signDevToken({ secret, role: "metrics", ttlSeconds: 3600, sub: "e2e-prometheus" });

    // A real agent, enrolled and connected through the TLS edge.
    const agentDir = await tmp("fleet-prom-agent-");
    const token = await rest.enrollmentToken(["metrics"]);
    const { hostId } = await enroll({ relay: relay.edgeUrl!, token, stateDir: agentDir, caFile: relay.caCertPath, hostname: "prom-1" });
    const agent: Agent = await startAgent({ stateDir: agentDir, logger: quiet, reconnectBaseMs: 50, reconnectCapMs: 300 });
    cleanups.push(() => agent.stop("test over"));
    await rest.waitForHostStatus(hostId, "online");

    const prometheus = await startPrometheus(new URL(relay.url).host, metricsToken);
    const query = 'sum(fleet_relay_commands_finished_total{command_type="system_info",state="succeeded"})';
    // Scraped before the command: the series does not exist yet, or reads 0.
    await waitUntil(async () => ((await queryValue(prometheus.url, "up")) === 1 ? true : undefined), {
      timeoutMs: 30_000,
      what: "the first successful scrape (up == 1)",
      describe: () => prometheus.log().slice(-2000),
    });
    const before = (await queryValue(prometheus.url, query)) ?? 0;
    expect(before).toBe(0);

    const id = await rest.send(hostId, { command_type: "system_info" });
    expect((await rest.waitForCommand(hostId, id)).state).toBe("succeeded");

    let last: number | undefined;
    const value = await waitUntil(
      async () => {
        last = await queryValue(prometheus.url, query);
        return last !== undefined && last >= 1 ? last : undefined;
      },
      { timeoutMs: 60_000, intervalMs: 250, what: `${query} to reach 1`, describe: () => `${last}; ${prometheus.log().slice(-1000)}` },
    );
    expect(value).toBe(1);
    expect(await queryValue(prometheus.url, `fleet_relay_build_info{version="${RELAY_VERSION}"}`)).toBe(1);
    expect(await queryValue(prometheus.url, 'sum(fleet_relay_hosts{status="online"})')).toBe(1);

    // promtool's linter over exactly what Prometheus scraped.
    const scraped = await fetch(`${relay.url}/metrics`, { headers: { authorization: `Bearer ${metricsToken}` } });
    expect(scraped.status).toBe(200);
    const text = await scraped.text();
    expect(text).toContain("fleet_relay_commands_finished_total");
    const check = await promtoolCheckMetrics(text);
    expect(check.out).toBe("");
    expect(check.code).toBe(0);
  });

  it("RELAY_VERSION is package.json's version", async () => {
    const pkg = JSON.parse(await readFile(path.join(import.meta.dirname, "..", "..", "package.json"), "utf8")) as { version: string };
    expect(RELAY_VERSION).toBe(pkg.version);
  });
});
