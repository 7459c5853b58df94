/**
 * The README's agent flow with real processes: the local relay (workerd + TLS 1.3 edge), an
 * enrolment token from the REST API, `fleet-agent enroll` and `fleet-agent run` as child
 * processes over mutual TLS, the product page's package install, and the CLI's refusals and
 * clean stop.
 */
import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm, stat } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type LocalRelay, startLocalRelay } from "../../scripts/local-relay.ts";
import { type AgentChild, killAllAgents, spawnAgentCli } from "../helpers/agent-cli.ts";
import { RelayRest, waitUntil } from "../helpers/relay-rest.ts";

const execFileP = promisify(execFile);

/**
 * Which packages the install request names. The product page's are nginx and curl; their dry run
 * needs Debian's package lists, which `.ci/run` fetches (apt-get update) on a machine that has
 * none. If nginx or curl still has no candidate here, fall back to packages every Debian system
 * has installed (bash, coreutils): the dry run then succeeds with nothing to install.
 * `expectPlanned` are the packages the dry run must list as installed (candidate newer than the
 * installed version, or not installed at all).
 */
async function choosePackages(): Promise<{ packages: string[]; expectPlanned: string[]; installed: () => Promise<string[]>; note: string } | null> {
  const policy = (names: string[]) =>
    execFileP("apt-cache", ["policy", ...names], { timeout: 15_000, env: { ...process.env, LC_ALL: "C" } }).then((r) => r.stdout);
  let text: string;
  try {
    text = await policy(["nginx", "curl"]);
  } catch {
    return null; // no apt on this machine
  }
  const parse = (out: string) => {
    const info = new Map<string, { installed: string; candidate: string }>();
    for (const block of out.split(/^(?=\S)/m)) {
      const name = /^(\S+):/.exec(block)?.[1];
      const installed = /Installed: (\S+)/.exec(block)?.[1];
      const candidate = /Candidate: (\S+)/.exec(block)?.[1];
      if (name && installed && candidate) info.set(name, { installed, candidate });
    }
    return info;
  };
  let info = parse(text);
  let packages = ["nginx", "curl"];
  let note = "the product page's packages";
  if (!packages.every((p) => info.get(p) && info.get(p)!.candidate !== "(none)")) {
    packages = ["bash", "coreutils"];
    note = "nginx/curl are not in this machine's apt lists; using bash and coreutils";
    info = parse(await policy(packages));
  }
  const expectPlanned = packages.filter((p) => info.get(p)!.installed !== info.get(p)!.candidate);
  const installed = async () => {
    const now = parse(await policy(packages));
    return packages.map((p) => `${p} ${now.get(p)?.installed}`);
  };
  return { packages, expectPlanned, installed, note };
}

let relay: LocalRelay;
let relayDir: string;
let workDir: string;
let rest: RelayRest;

beforeAll(async () => {
  relayDir = await mkdtemp(path.join(os.tmpdir(), "fleet-agent-enroll-relay-"));
  workDir = await mkdtemp(path.join(os.tmpdir(), "fleet-agent-enroll-"));
  relay = await startLocalRelay({ port: 0, edgePort: 0, stateDir: relayDir, quiet: true });
  rest = await RelayRest.create(relay.url, relayDir);
});

afterAll(async () => {
  await killAllAgents();
  await relay?.stop();
  await rm(relayDir, { recursive: true, force: true });
  await rm(workDir, { recursive: true, force: true });
});

describe("agent CLI against the local relay (README flow)", () => {
  const agentDir = () => path.join(workDir, "agent");
  let token: string;
  let hostId: string;
  let agent: AgentChild;

  it("enrol: the CLI writes a 0600 key and a certificate signed by the fleet CA", async () => {
    token = await rest.enrollmentToken(["web"]);
    const enroll = spawnAgentCli([
      "enroll", "--relay", relay.edgeUrl!, "--ca-file", relay.caCertPath, "--token", token,
      "--state-dir", agentDir(), "--hostname", "web-1",
    ]);
    const exit = await enroll.exit();
    expect(exit, enroll.stderr()).toEqual({ code: 0, signal: null });
    const m = /enrolled as host ([0-9a-f-]{36})/.exec(enroll.stdout());
    expect(m, enroll.stdout()).not.toBeNull();
    hostId = m![1]!;

    const key = await stat(path.join(agentDir(), "agent.key"));
    expect(key.mode & 0o777).toBe(0o600);
    const cert = await readFile(path.join(agentDir(), "agent.crt"), "utf8");
    expect(cert).toMatch(/^-----BEGIN CERTIFICATE-----/);
    // The private key stayed here: the host the relay registered is bound to this certificate.
    const { X509Certificate, createHash } = await import("node:crypto");
    const fp = createHash("sha256").update(new X509Certificate(cert).raw).digest("hex");
    const host = await rest.host(hostId);
    expect(host).toMatchObject({ host_id: hostId, hostname: "web-1", cert_fingerprint_sha256: fp, tags: ["web"], status: "offline" });
    expect(new X509Certificate(cert).checkIssued(new X509Certificate(relay.caCertPem))).toBe(true);
  });

  it("run: connects with mutual TLS; the host is listed online with its tag", async () => {
    agent = spawnAgentCli(["run", "--state-dir", agentDir()]);
    const connected = await agent.waitForLog("connected", { timeoutMs: 20_000 });
    expect(connected.host_id).toBe(hostId);
    const host = await rest.waitForHostStatus(hostId, "online");
    expect(host.agent).toMatchObject({ hostname: "web-1", protocol_version: 1 });
    expect(host.agent.supported_commands).toContain("package_operation");
    const list = await rest.request("GET", "/api/hosts?status=online");
    expect(list.status).toBe(200);
    expect(list.body.items).toContainEqual(expect.objectContaining({ host_id: hostId, tags: ["web"], status: "online" }));
  });

  it("the product page's request: install as a dry run, read back over REST", async (ctx) => {
    const choice = await choosePackages();
    if (choice === null) ctx.skip(); // not a Debian-family machine: no apt-get to dry-run with
    const { packages, expectPlanned, installed, note } = choice!;
    ctx.annotate(note);
    const installedBefore = await installed();

    const res = await rest.request("POST", `/api/hosts/${hostId}/packages/install`, {
      packages,
      options: { yes: true, simulate: true },
      timeout: 300,
    });
    expect(res.status, JSON.stringify(res.body)).toBe(202);
    expect(res.body.status).toBe("queued");
    const messageId: string = res.body.message_id;
    expect(res.headers.get("location")).toBe(`/api/hosts/${hostId}/commands/${messageId}`);

    const done = await rest.waitForCommand(hostId, messageId, undefined, 60_000);
    expect(done.state, JSON.stringify(done)).toBe("succeeded");
    expect(done.response_status).toBe("success");
    expect(done.command_type).toBe("package_operation");
    expect(done.history.map((h: { state: string }) => h.state)).toEqual(["queued", "delivered", "running", "succeeded"]);
    expect(done.result).toMatchObject({ exit_code: 0, simulated: true, package_manager: "apt-get", operation: "install" });
    expect(typeof done.result.execution_time).toBe("number");
    expect(done.result.execution_time).toBeGreaterThanOrEqual(0);
    expect(typeof done.result.output).toBe("string");
    expect(done.result.output.length).toBeGreaterThan(0);
    expect(Array.isArray(done.result.installed_packages)).toBe(true);
    for (const p of expectPlanned) {
      expect(done.result.installed_packages).toContain(p);
      expect(done.result.output).toMatch(new RegExp(`^Inst ${p} `, "m"));
    }
    // Nothing was really installed or upgraded: it was a dry run.
    expect(await installed()).toEqual(installedBefore);
  });

  it("reusing the token exits 2 naming ERR_ENROLLMENT_TOKEN_USED; a wrong token exits 2", async () => {
    const again = spawnAgentCli([
      "enroll", "--relay", relay.edgeUrl!, "--ca-file", relay.caCertPath, "--token", token, "--state-dir", path.join(workDir, "again"),
    ]);
    const wrong = spawnAgentCli([
      "enroll", "--relay", relay.edgeUrl!, "--ca-file", relay.caCertPath, "--token", `fet_${"A".repeat(43)}`,
      "--state-dir", path.join(workDir, "wrong"),
    ]);
    expect((await again.exit()).code, again.stderr()).toBe(2);
    expect(again.stderr()).toContain("ERR_ENROLLMENT_TOKEN_USED");
    expect((await wrong.exit()).code, wrong.stderr()).toBe(2);
    expect(wrong.stderr()).toMatch(/enrolment refused by the relay: ERR_ENROLLMENT_TOKEN_/);
    // A refused enrolment leaves no key behind.
    await expect(stat(path.join(workDir, "again", "agent.key"))).rejects.toMatchObject({ code: "ENOENT" });
    // Only the first enrolment made a host.
    const hosts = await rest.request("GET", "/api/hosts");
    expect(hosts.body.items.map((h: { host_id: string }) => h.host_id)).toEqual([hostId]);
  });

  it("SIGTERM stops the running agent with exit 0 and the host goes offline", async () => {
    expect(agent.running()).toBe(true);
    agent.child.kill("SIGTERM");
    const exit = await agent.exit(20_000);
    expect(exit, agent.stderr()).toEqual({ code: 0, signal: null });
    expect(agent.logs().map((l) => l.msg)).toContain("agent stopped");
    const host = await rest.waitForHostStatus(hostId, "offline");
    expect(host.last_seen_at).not.toBeNull();
    await waitUntil(async () => ((await rest.request("GET", "/api/hosts?status=online")).body.items.length === 0 ? true : undefined), {
      what: "no online hosts",
    });
  });
});
