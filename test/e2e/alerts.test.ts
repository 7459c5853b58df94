/**
 * Alerting end to end, against the real local relay (workerd + the TLS edge) and a real agent: a
 * `host_offline` rule with a short `for` and a webhook receiver; the agent is killed → the alert
 * fires and the receiver gets a correctly signed Alertmanager v4 payload; the agent is started
 * again → the resolved notification follows.
 *
 * The receiver is a local HTTPS server whose certificate comes from a CA made for this test.
 * workerd checks outbound TLS against its own trust store; Miniflare adds the certificates in
 * NODE_EXTRA_CA_CERTS to it when its module loads, so the test sets that before importing the
 * relay. No http:// allowance is involved.
 */
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import type http from "node:http";
import https from "node:https";
import type { AddressInfo } from "node:net";
import os from "node:os";
import path from "node:path";
import { afterAll, afterEach, expect, it } from "vitest";
import { enroll } from "../../agent/index.ts";
import { SIGNATURE_HEADER, TIMESTAMP_HEADER, verifySignature } from "../../worker/alerting/signature.ts";
import { createCa, issueServerCertificate, loadCa } from "../../worker/pki/fleet-ca.ts";
import { killAllAgents, spawnAgentCli } from "../helpers/agent-cli.ts";
import { RelayRest, waitUntil } from "../helpers/relay-rest.ts";

const SECRET = "e2e-receiver-secret-0123456789";
const cleanups: (() => Promise<unknown> | unknown)[] = [];
afterEach(async () => {
  await killAllAgents();
  for (const c of cleanups.splice(0).reverse()) await c();
});
afterAll(killAllAgents);

interface Received {
  headers: http.IncomingHttpHeaders;
  body: string;
  json: any;
}

/** A CA for the receiver, trusted by workerd through NODE_EXTRA_CA_CERTS, and the receiver's localhost certificate. */
async function receiverTls(dir: string): Promise<{ cert: string; key: string }> {
  const ca = await createCa("Alerts e2e receiver CA", 1);
  const server = await issueServerCertificate(await loadCa(ca.certificatePem, ca.keyPem), { dns: ["localhost"], ip: ["127.0.0.1"] });
  const caFile = path.join(dir, "receiver-ca.pem");
  await writeFile(caFile, ca.certificatePem);
  const before = process.env.NODE_EXTRA_CA_CERTS;
  process.env.NODE_EXTRA_CA_CERTS = caFile;
  cleanups.push(() => {
    if (before === undefined) delete process.env.NODE_EXTRA_CA_CERTS;
    else process.env.NODE_EXTRA_CA_CERTS = before;
  });
  return { cert: server.certificatePem, key: server.keyPem };
}

async function startReceiver(tls: { cert: string; key: string }): Promise<{ url: string; received: Received[] }> {
  const received: Received[] = [];
  const server = https.createServer(tls, (req, res) => {
    let body = "";
    req.setEncoding("utf8");
    req.on("data", (d: string) => {
      body += d;
    });
    req.on("end", () => {
      received.push({ headers: req.headers, body, json: JSON.parse(body) });
      res.writeHead(200).end("ok");
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  cleanups.push(() => new Promise((resolve) => server.close(resolve)));
  return { url: `https://127.0.0.1:${(server.address() as AddressInfo).port}/alertmanager`, received };
}

async function expectSigned(r: Received): Promise<void> {
  const header = (name: string) => {
    const v = r.headers[name.toLowerCase()];
    return typeof v === "string" ? v : null;
  };
  expect(header(SIGNATURE_HEADER)).toMatch(/^sha256=[0-9a-f]{64}$/);
  const ok = await verifySignature(
    SECRET,
    { timestamp: header(TIMESTAMP_HEADER), signature: header(SIGNATURE_HEADER) },
    r.body,
    Date.now() / 1000,
  );
  expect(ok).toBe(true);
  expect(
    await verifySignature(
      SECRET,
      { timestamp: header(TIMESTAMP_HEADER), signature: header(SIGNATURE_HEADER) },
      `${r.body}x`,
      Date.now() / 1000,
    ),
  ).toBe(false);
}

it("an agent killed fires host_offline to a signed Alertmanager webhook; its return resolves it", { timeout: 120_000 }, async () => {
  const relayDir = await mkdtemp(path.join(os.tmpdir(), "fleet-alerts-relay-"));
  cleanups.push(() => rm(relayDir, { recursive: true, force: true }));
  const tls = await receiverTls(relayDir);
  // Imported only now: Miniflare reads NODE_EXTRA_CA_CERTS when its module loads.
  const { startLocalRelay } = await import("../../scripts/local-relay.ts");
  const relay = await startLocalRelay({
    port: 0,
    edgePort: 0,
    stateDir: relayDir,
    quiet: true,
    bindings: { ALERT_EVAL_INTERVAL_S: "0.5" },
  });
  cleanups.push(() => relay.stop());
  const rest = await RelayRest.create(relay.url, relayDir);
  const receiver = await startReceiver(tls);

  const agentDir = await mkdtemp(path.join(os.tmpdir(), "fleet-alerts-agent-"));
  cleanups.push(() => rm(agentDir, { recursive: true, force: true }));
  const token = await rest.enrollmentToken(["alerting"]);
  const { hostId } = await enroll({ relay: relay.edgeUrl!, token, stateDir: agentDir, caFile: relay.caCertPath, hostname: "alert-e2e-1" });
  const run = () => spawnAgentCli(["run", "--state-dir", agentDir, "--reconnect-base", "50ms", "--reconnect-cap", "300ms"]);
  let agent = run();
  await rest.waitForHostStatus(hostId, "online", 30_000);

  const rcv = await rest.request("POST", "/api/alert-receivers", { name: "e2e", url: receiver.url, secret: SECRET }, rest.admin);
  expect(rcv.status, JSON.stringify(rcv.body)).toBe(201);
  expect(JSON.stringify(rcv.body)).not.toContain(SECRET);
  const rule = await rest.request(
    "POST",
    "/api/alert-rules",
    { kind: "host_offline", name: "HostDown", for: "2s", selector: { tags: ["alerting"] }, labels: { severity: "page" } },
    rest.admin,
  );
  expect(rule.status, JSON.stringify(rule.body)).toBe(201);
  const ruleId = rule.body.rule_id as string;

  // Online: nothing fires.
  const alerts = async () => (await rest.request("GET", "/api/alerts", undefined, rest.admin)).body;
  expect((await alerts()).active).toEqual([]);

  agent.child.kill("SIGKILL");
  expect(await agent.exit(10_000)).toEqual({ code: null, signal: "SIGKILL" });
  await rest.waitForHostStatus(hostId, "offline", 15_000);

  const firing = await waitUntil(() => receiver.received.find((r) => r.json.status === "firing"), {
    timeoutMs: 20_000,
    what: "the firing notification",
    describe: () => JSON.stringify(receiver.received.map((r) => r.json.status)),
  });
  await expectSigned(firing);
  expect(firing.headers["content-type"]).toBe("application/json");
  expect(firing.json).toMatchObject({
    receiver: "e2e",
    status: "firing",
    version: "4",
    externalURL: relay.url,
    groupKey: `{}:{rule_id="${ruleId}"}`,
    groupLabels: { alertname: "HostDown", rule_id: ruleId },
    commonLabels: { alertname: "HostDown", severity: "page", host_id: hostId, hostname: "alert-e2e-1" },
    truncatedAlerts: 0,
  });
  expect(firing.json.alerts).toEqual([
    expect.objectContaining({
      status: "firing",
      labels: { alertname: "HostDown", rule_id: ruleId, severity: "page", host_id: hostId, hostname: "alert-e2e-1" },
      endsAt: "0001-01-01T00:00:00Z",
      generatorURL: `${relay.url}/api/alert-rules/${ruleId}`,
      fingerprint: expect.stringMatching(/^[0-9a-f]{16}$/),
    }),
  ]);
  const fired = await alerts();
  expect(fired.active).toEqual([expect.objectContaining({ state: "firing", fingerprint: firing.json.alerts[0].fingerprint })]);

  agent = run();
  await rest.waitForHostStatus(hostId, "online", 30_000);
  const resolved = await waitUntil(() => receiver.received.find((r) => r.json.status === "resolved"), {
    timeoutMs: 20_000,
    what: "the resolved notification",
    describe: () => JSON.stringify(receiver.received.map((r) => r.json.status)),
  });
  await expectSigned(resolved);
  expect(resolved.json.alerts).toEqual([
    expect.objectContaining({
      status: "resolved",
      fingerprint: firing.json.alerts[0].fingerprint,
      endsAt: expect.not.stringMatching(/^0001/),
    }),
  ]);
  const after = await alerts();
  expect(after.active).toEqual([]);
  expect(after.history[0]).toMatchObject({ rule_id: ruleId, fingerprint: firing.json.alerts[0].fingerprint });
  // Exactly one firing and one resolved: repeat_interval (default 4 h) has not passed.
  expect(receiver.received.map((r) => r.json.status)).toEqual(["firing", "resolved"]);
  const deliveries = (await rest.request("GET", "/api/alert-notifications", undefined, rest.admin)).body.items;
  expect(deliveries.map((d: any) => [d.status, d.state])).toEqual([
    ["resolved", "delivered"],
    ["firing", "delivered"],
  ]);
});
