/**
 * Certificate lifecycle and clock skew against the real local relay (workerd + the TLS 1.3 edge):
 * an agent whose certificate expired (already, or while the relay was away) is refused and exits
 * with code 4 naming the re-enrol command; a renewal that fails while the relay is down is retried
 * with backoff and succeeds once it is back; a host clock ahead of the relay's does not expire
 * commands early. Certificates are made with the relay's own development CA; the agent runs as
 * the real CLI where its exit code is the point, through the library where its clock is injected.
 */
import { X509Certificate } from "node:crypto";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { MAX_CLOCK_SKEW_MS } from "../../agent/clock.ts";
import { type Agent, type AgentOptions, enroll, type Logger, startAgent } from "../../agent/index.ts";
import { type LocalRelay, PortInUseError, startLocalRelay } from "../../scripts/local-relay.ts";
import { EventRecorder } from "../agent/helpers/events.ts";
import { killAllAgents, spawnAgentCli } from "../helpers/agent-cli.ts";
import { clientCert, fingerprint, newKey } from "../helpers/certs.ts";
import { RelayRest, waitUntil } from "../helpers/relay-rest.ts";

const cleanups: (() => Promise<unknown> | unknown)[] = [];
afterEach(async () => {
  await killAllAgents();
  for (const c of cleanups.splice(0).reverse()) await c();
});
afterAll(killAllAgents);

async function tmp(prefix: string): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), prefix));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

async function relayOn(stateDir: string, opts: { port?: number; edgePort?: number } = {}): Promise<LocalRelay> {
  const relay = await waitUntil(
    async () => {
      try {
        return await startLocalRelay({ port: opts.port ?? 0, edgePort: opts.edgePort ?? 0, stateDir, quiet: true });
      } catch (err) {
        if (err instanceof PortInUseError) return undefined;
        throw err;
      }
    },
    { timeoutMs: 10_000, intervalMs: 100, what: `ports ${opts.port}/${opts.edgePort} to be free again` },
  );
  cleanups.push(() => relay.stop());
  return relay;
}

function portsOf(relay: LocalRelay) {
  return { port: relay.port, edgePort: Number(new URL(relay.edgeUrl!).port) };
}

/**
 * A state directory as enrolment leaves it, but with a certificate of chosen validity signed by the
 * relay's fleet CA; `register` also binds its fingerprint to a new host over REST.
 */
async function stateDirWithCert(
  relay: LocalRelay,
  rest: RelayRest,
  validity: { notBefore: Date; notAfter: Date },
  register: boolean,
): Promise<{ stateDir: string; hostId: string; fingerprint: string }> {
  const stateDir = await tmp("fleet-lifecycle-agent-");
  const caKeyPem = await readFile(path.join(relay.stateDir, "pki", "ca.key"), "utf8");
  const key = await newKey();
  const certPem = await clientCert(key, { caCertPem: relay.caCertPem, caKeyPem, ...validity, cn: "lifecycle-1" });
  const fp = await fingerprint(certPem);
  let hostId: string = crypto.randomUUID();
  if (register) {
    const r = await rest.request("POST", "/api/hosts", { hostname: "lifecycle-1", cert_fingerprint_sha256: fp }, rest.admin);
    expect(r.status, JSON.stringify(r.body)).toBe(201);
    hostId = r.body.host_id;
  }
  await writeFile(path.join(stateDir, "agent.key"), key.keyPem, { mode: 0o600 });
  await writeFile(path.join(stateDir, "agent.crt"), certPem);
  await writeFile(path.join(stateDir, "ca.crt"), relay.caCertPem);
  await writeFile(
    path.join(stateDir, "agent.json"),
    JSON.stringify({
      host_id: hostId,
      relay: relay.edgeUrl,
      ca_file: relay.caCertPath,
      system_ca: false,
      hostname: "lifecycle-1",
      enrolled_at: new Date().toISOString(),
    }),
  );
  return { stateDir, hostId, fingerprint: fp };
}

async function relayWithRest() {
  const relayDir = await tmp("fleet-lifecycle-relay-");
  const relay = await relayOn(relayDir);
  const rest = await RelayRest.create(relay.url, relayDir);
  return { relay, relayDir, rest };
}

function runCli(stateDir: string) {
  return spawnAgentCli(["run", "--state-dir", stateDir, "--reconnect-base", "50ms", "--reconnect-cap", "300ms"]);
}

/** The exit-4 log line must carry the exact re-enrol command for this state directory. */
function expectReenrolAdvice(line: Record<string, unknown>, stateDir: string, relay: LocalRelay): void {
  expect(line.level).toBe("error");
  expect(line.exit_code).toBe(4);
  expect(line.command).toBe(
    `fleet-agent enroll --relay ${relay.edgeUrl} --ca-file ${relay.caCertPath} --hostname lifecycle-1 --state-dir ${stateDir} --force --token <new enrolment token from an admin>`,
  );
}

describe("an expired client certificate", () => {
  it("expired by more than the skew bound: the agent says so without dialing and exits 4 with the re-enrol command", async () => {
    const { relay, rest } = await relayWithRest();
    const day = 86_400_000;
    const { stateDir } = await stateDirWithCert(
      relay,
      rest,
      { notBefore: new Date(Date.now() - 30 * day), notAfter: new Date(Date.now() - day) },
      false,
    );
    const agent = runCli(stateDir);
    const exit = await agent.exit();
    expect(exit, agent.stderr()).toEqual({ code: 4, signal: null });
    const msgs = agent.logs().map((l) => l.msg);
    expect(msgs).toContain("the client certificate has expired (checked locally); not connecting");
    expect(msgs).not.toContain("connecting");
    expectReenrolAdvice(await agent.waitForLog("client certificate expired; re-enrol this host (see command)"), stateDir, relay);
    // A plain line for whoever reads the terminal, too.
    expect(agent.stderr()).toMatch(
      /^fleet-agent: the client certificate expired at \S+; re-enrol this host: fleet-agent enroll .* --force /m,
    );
  });

  it("expired by less than the bound: the agent lets the edge decide, is refused once and exits 4 (no reconnect loop)", async () => {
    const { relay, rest } = await relayWithRest();
    const { stateDir } = await stateDirWithCert(
      relay,
      rest,
      { notBefore: new Date(Date.now() - 3_600_000), notAfter: new Date(Date.now() - 2000) },
      true,
    );
    const agent = runCli(stateDir);
    const exit = await agent.exit();
    expect(exit, agent.stderr()).toEqual({ code: 4, signal: null });
    const logs = agent.logs();
    expect(logs.map((l) => l.msg)).toContain(
      "the client certificate has expired by this host's clock, within the clock-skew bound; letting the relay decide",
    );
    expect(logs.filter((l) => l.msg === "connecting")).toHaveLength(1);
    expect(logs.filter((l) => l.msg === "reconnect scheduled")).toHaveLength(0);
    const line = await agent.waitForLog("client certificate expired; re-enrol this host (see command)");
    // The edge's refusal, as the agent heard it.
    expect(line.reason).toMatch(/HTTP 403 ERR_AGENT_CERT_UNVERIFIED.*CERT_HAS_EXPIRED/);
    expectReenrolAdvice(line, stateDir, relay);
  });

  it("offline past its expiry: connected, the relay goes away, the certificate expires meanwhile: the agent stops retrying and exits 4", async () => {
    const { relay, rest } = await relayWithRest();
    // Short, and with more than a third of it left, so renewal is not due (it would replace the certificate).
    const notAfter = new Date(Date.now() + 6000);
    const { stateDir, hostId } = await stateDirWithCert(relay, rest, { notBefore: new Date(Date.now() - 6000), notAfter }, true);
    const agent = runCli(stateDir);
    expect((await agent.waitForLog("connected", { timeoutMs: 20_000 })).host_id).toBe(hostId);
    await relay.stop();
    await agent.waitForLog("disconnected");
    // It keeps retrying while the relay is away and the certificate is good; once the certificate has
    // expired by the relay's clock (measured at the welcome) it stops for good.
    const exit = await agent.exit(30_000);
    expect(exit, agent.stderr()).toEqual({ code: 4, signal: null });
    // X.509 keeps whole seconds; the relay-clock estimate may be off by the round trip.
    const certNotAfter = Math.floor(notAfter.getTime() / 1000) * 1000;
    expect(Date.now()).toBeGreaterThanOrEqual(certNotAfter - 1000);
    const line = await agent.waitForLog("client certificate expired; re-enrol this host (see command)");
    expect(line.reason).toMatch(/client certificate expired at .* \(checked locally\)/);
    expect(line.not_after).toBe(new Date(certNotAfter).toISOString());
    expectReenrolAdvice(line, stateDir, relay);
    const logs = agent.logs();
    expect(logs.filter((l) => l.msg === "reconnect scheduled").length).toBeGreaterThan(0);
    expect(logs.filter((l) => l.msg === "connected")).toHaveLength(1);
  });
});

/** An agent run through the library, with its log lines kept. */
async function libraryAgent(stateDir: string, opts: Partial<AgentOptions> = {}) {
  const lines: { level: string; msg: string; fields: Record<string, unknown> }[] = [];
  const keep =
    (level: string) =>
    (msg: string, fields: Record<string, unknown> = {}) =>
      void lines.push({ level, msg, fields });
  const logger: Logger = { debug: keep("debug"), info: keep("info"), warn: keep("warn"), error: keep("error") };
  const agent: Agent = await startAgent({ stateDir, logger, reconnectBaseMs: 50, reconnectCapMs: 300, random: () => 0.5, ...opts });
  const events = new EventRecorder(agent);
  cleanups.push(() => agent.stop("test over"));
  return { agent, events, lines };
}

describe("certificate renewal while the relay is down", () => {
  it("is retried with backoff (not given up) and succeeds once the relay is back", async () => {
    const { relay, relayDir, rest } = await relayWithRest();
    const ports = portsOf(relay);
    // 10 minutes left of 70: renewal is due at once.
    const {
      stateDir,
      hostId,
      fingerprint: oldFp,
    } = await stateDirWithCert(
      relay,
      rest,
      { notBefore: new Date(Date.now() - 3_600_000), notAfter: new Date(Date.now() + 600_000) },
      true,
    );
    await relay.stop();
    const { events, lines } = await libraryAgent(stateDir, { renewRetryBaseMs: 200, renewRetryCapMs: 800 });
    await events.waitFor("renewal_failed", () => true, 15_000, 3);
    const failures = events.all("renewal_failed");
    expect(failures.every((f) => f.transient)).toBe(true);
    // random() = 0.5: half of min(cap, base·2ⁿ).
    expect(failures.slice(0, 3).map((f) => f.retry_in_ms)).toEqual([100, 200, 400]);
    expect(failures[0]!.error).toMatch(/ECONNREFUSED/);
    expect(lines.filter((l) => l.msg === "certificate renewal failed; keeping the current certificate and retrying")).not.toHaveLength(0);

    const back = await relayOn(relayDir, ports);
    const renewed = await events.waitFor("renewed", () => true, 20_000);
    expect(Date.parse(renewed.not_after)).toBeGreaterThan(Date.now() + 80 * 86_400_000);
    const cert = await readFile(path.join(stateDir, "agent.crt"), "utf8");
    const newFp = new X509Certificate(cert).fingerprint256.replaceAll(":", "").toLowerCase();
    expect(newFp).not.toBe(oldFp);
    // The relay bound the new certificate to the same host, and the agent connects with it.
    const host = await (await RelayRest.create(back.url, relayDir)).host(hostId);
    expect(host.cert_fingerprint_sha256).toBe(newFp);
    await events.waitFor("welcome", () => true, 20_000);
    expect(events.all("renewed")).toHaveLength(1);
  });
});

describe("clock skew between agent and relay", () => {
  async function enrolled() {
    const { relay, relayDir, rest } = await relayWithRest();
    const stateDir = await tmp("fleet-lifecycle-skew-");
    const token = await rest.enrollmentToken();
    const { hostId } = await enroll({ relay: relay.edgeUrl!, token, stateDir, caFile: relay.caCertPath, hostname: "skewed-1" });
    return { relay, relayDir, rest, stateDir, hostId };
  }

  it("a host clock 4 minutes ahead (within the bound): offset measured, no warning, a command expiring in 60 s still runs", async () => {
    const { rest, stateDir, hostId } = await enrolled();
    const ahead = 4 * 60_000;
    const { events, lines } = await libraryAgent(stateDir, { now: () => Date.now() + ahead });
    const welcome = await events.waitFor("welcome", () => true, 20_000);
    expect(Math.abs(welcome.clock_offset_ms + ahead)).toBeLessThan(5000);
    expect(events.all("clock_skew")).toHaveLength(0);
    expect(lines.filter((l) => l.level === "warn")).toEqual([]);
    // By the host's clock this command expired three minutes ago; by the relay's it has a minute left.
    const id = await rest.send(hostId, { command_type: "system_info", expires_in: 60 });
    const done = await rest.waitForCommand(hostId, id);
    expect(done.state, JSON.stringify(done)).toBe("succeeded");
    expect(done.response_status).toBe("success");
  });

  it("a host clock 10 minutes ahead (past the bound): a warning names the offset; the relay's clock is still used", async () => {
    const { rest, stateDir, hostId } = await enrolled();
    const ahead = 10 * 60_000;
    const { events, lines } = await libraryAgent(stateDir, { now: () => Date.now() + ahead });
    const skew = await events.waitFor("clock_skew", () => true, 20_000);
    expect(skew.bound_ms).toBe(MAX_CLOCK_SKEW_MS);
    expect(Math.abs(skew.clock_offset_ms + ahead)).toBeLessThan(5000);
    const warn = lines.find((l) => l.msg.startsWith("this host's clock is off from the relay's by more than the bound"));
    expect(warn?.level).toBe("warn");
    expect(warn?.fields.bound_ms).toBe(300_000);
    const id = await rest.send(hostId, { command_type: "system_info", expires_in: 120 });
    expect((await rest.waitForCommand(hostId, id)).state).toBe("succeeded");
  });
});
