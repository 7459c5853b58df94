/**
 * The README's agent flow with real processes: the local relay (workerd + TLS 1.3 edge), an
 * enrolment token from the REST API, `fleet-agent enroll` and `fleet-agent run` as child
 * processes over mutual TLS, the product page's package install, the CLI's refusals and
 * clean stop, and a job held for the host while it is offline, run when the agent is back.
 */
import { readFile, stat } from "node:fs/promises";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { LocalRelay } from "../../scripts/local-relay.ts";
import { type AgentChild, spawnAgentCli } from "../helpers/agent-cli.ts";
import { choosePackages, expectInstallDryRun } from "../helpers/apt-dry-run.ts";
import { type RelayFixture, startRelayFixture } from "../helpers/relay-fixture.ts";
import { type RelayRest, waitUntil } from "../helpers/relay-rest.ts";

let fx: RelayFixture;
let relay: LocalRelay;
let workDir: string;
let rest: RelayRest;

beforeAll(async () => {
  fx = await startRelayFixture("agent-enroll");
  ({ relay, rest, workDir } = fx);
});

afterAll(() => fx?.stop());

describe("agent CLI against the local relay (README flow)", () => {
  const agentDir = () => path.join(workDir, "agent");
  let token: string;
  let hostId: string;
  let agent: AgentChild;

  it("enrol: the CLI writes a 0600 key and a certificate signed by the fleet CA", async () => {
    token = await rest.enrollmentToken(["web"]);
    const enroll = spawnAgentCli([
      "enroll",
      "--relay",
      relay.edgeUrl!,
      "--ca-file",
      relay.caCertPath,
      "--token",
      token,
      "--state-dir",
      agentDir(),
      "--hostname",
      "web-1",
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
    ctx.annotate(choice!.note);
    await expectInstallDryRun(rest, hostId, choice!);
  });

  it("reusing the token exits 2 naming ERR_ENROLLMENT_TOKEN_USED; a wrong token exits 2", async () => {
    const again = spawnAgentCli([
      "enroll",
      "--relay",
      relay.edgeUrl!,
      "--ca-file",
      relay.caCertPath,
      "--token",
      token,
      "--state-dir",
      path.join(workDir, "again"),
    ]);
    const wrong = spawnAgentCli([
      "enroll",
      "--relay",
      relay.edgeUrl!,
      "--ca-file",
      relay.caCertPath,
      "--token",
      `fet_${"A".repeat(43)}`,
      "--state-dir",
      path.join(workDir, "wrong"),
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

  it("a job to the offline host waits in the job; when the agent runs again it gets the command and runs it once", async () => {
    const ids = async () => (await rest.allCommands(hostId)).map((c: { message_id: string }) => c.message_id);
    const before = await ids();
    const posted = await rest.request("POST", "/api/jobs", { command_type: "system_info", target: { host_ids: [hostId] } });
    expect(posted.status, JSON.stringify(posted.body)).toBe(202);
    const jobId: string = posted.body.job_id;
    const hostRow = async () => (await rest.request("GET", `/api/jobs/${jobId}/hosts`)).body.items[0];
    await waitUntil(async () => ((await hostRow())?.state === "waiting" ? true : undefined), { what: "the host waiting in the job" });
    // Held by the job, not yet on the host's queue.
    expect(await ids()).toEqual(before);

    agent = spawnAgentCli(["run", "--state-dir", agentDir()]);
    const done = await waitUntil(
      async () => {
        const job = (await rest.request("GET", `/api/jobs/${jobId}`)).body;
        return job.state === "completed" ? job : undefined;
      },
      { timeoutMs: 30_000, what: "the job completed after the agent came back" },
    );
    expect(done.counts).toMatchObject({ succeeded: 1, waiting: 0 });
    const row = await hostRow();
    expect(row).toMatchObject({ state: "succeeded", response_status: "success" });
    expect((await ids()).filter((id) => !before.includes(id))).toEqual([row.message_id]);
    await agent.waitForLog("command finished", { pred: (l) => l.message_id === row.message_id });
    agent.child.kill("SIGTERM");
    expect((await agent.exit(20_000)).code, agent.stderr()).toBe(0);
    // Ran once: one execution logged over the agent's whole run.
    expect(agent.logs().filter((l) => l.msg === "command finished" && l.message_id === row.message_id)).toHaveLength(1);
  });
});
