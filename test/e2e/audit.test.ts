/**
 * The audit trail end to end: the real local relay (workerd + TLS edge) with the audit key it
 * makes under its state directory, a real agent enrolled and running a command, then the NDJSON
 * export verified by `npm run audit-verify` (the script, as a user runs it): OK with counts; the
 * same export with one byte of a record changed fails naming that record's seq; with its last
 * record removed fails as a truncation.
 */
import { execFile } from "node:child_process";
import { readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type LocalRelay, REPO_ROOT } from "../../scripts/local-relay.ts";
import { type AgentChild, spawnAgentCli } from "../helpers/agent-cli.ts";
import { enrollAgent, type RelayFixture, startRelayFixture } from "../helpers/relay-fixture.ts";
import { type RelayRest, waitUntil } from "../helpers/relay-rest.ts";

const run = promisify(execFile);

let fx: RelayFixture;
let relay: LocalRelay;
let workDir: string;
let rest: RelayRest;
let agent: AgentChild | undefined;

beforeAll(async () => {
  fx = await startRelayFixture("audit");
  ({ relay, rest, workDir } = fx);
});

afterAll(() => fx?.stop());

/** `npm run audit-verify -- <file> --public-key <pem>`: exit code and output. */
async function auditVerify(file: string): Promise<{ code: number; out: string }> {
  try {
    const { stdout } = await run("npm", ["run", "-s", "audit-verify", "--", file, "--public-key", relay.auditPublicKeyPath], {
      cwd: REPO_ROOT,
    });
    return { code: 0, out: stdout };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, out: `${e.stdout}${e.stderr}` };
  }
}

async function exportTo(file: string): Promise<string[]> {
  const res = await fetch(`${relay.url}/api/audit/export`, { headers: { authorization: `Bearer ${rest.admin}` } });
  expect(res.status).toBe(200);
  expect(res.headers.get("content-type")).toBe("application/x-ndjson");
  const text = await res.text();
  await writeFile(file, text);
  return text.trimEnd().split("\n");
}

describe("audit export of a real run", () => {
  let lines: string[];
  const exported = () => path.join(workDir, "audit.ndjson");

  it("records enrolment, the connection and a command's life, and the export verifies", async () => {
    const stateDir = path.join(workDir, "agent");
    const { hostId, token } = await enrollAgent(fx, { stateDir });
    agent = spawnAgentCli(["run", "--state-dir", stateDir]);
    await agent.waitForLog("connected", { timeoutMs: 20_000 });
    const messageId = await rest.send(hostId, { command_type: "system_info" });
    expect((await rest.waitForCommand(hostId, messageId)).state).toBe("succeeded");

    // The command's final outcome travels through the relay's outbox; wait until the shard has it.
    const records = await waitUntil(
      async () => {
        const r = await rest.request("GET", `/api/audit?host_id=${hostId}&limit=100`, undefined, rest.admin);
        expect(r.status).toBe(200);
        const actions = (r.body.items as { action: string }[]).map((x) => x.action);
        return actions.includes("command.final") ? (r.body.items as any[]) : undefined;
      },
      { timeoutMs: 15_000, what: "the command.final audit record" },
    );
    const actions = records.map((r) => r.action);
    expect(actions).toEqual(expect.arrayContaining(["agent.connect", "command.create", "command.final"]));
    const connect = records.find((r) => r.action === "agent.connect");
    expect(connect.actor.cert_fingerprint).toMatch(/^[0-9a-f]{64}$/);
    const created = records.find((r) => r.action === "command.create");
    expect(created).toMatchObject({ actor: { sub: "e2e-operator", role: "operator" }, target: { host_id: hostId, message_id: messageId } });
    const enrolled = await rest.request("GET", "/api/audit?action=agent.enroll", undefined, rest.admin);
    expect(enrolled.body.items[0].request.token).toBe("[REDACTED]");

    lines = await exportTo(exported());
    expect(lines.join("\n")).not.toContain(token);
    const verified = await auditVerify(exported());
    expect(verified.code, verified.out).toBe(0);
    expect(verified.out).toMatch(/^OK: \d+ records, \d+ checkpoints in 4 shards/m);
    const total = Number(/OK: (\d+) records/.exec(verified.out)![1]);
    expect(total).toBe(lines.filter((l) => l.startsWith('{"action"') || l.includes('"type":"record"')).length);
  }, 90_000);

  it("one changed byte in a record fails, naming its shard and seq", async () => {
    const i = lines.findIndex((l) => l.includes('"action":"command.create"'));
    const record = JSON.parse(lines[i]!) as { shard: number; seq: number };
    const tampered = [...lines];
    // One byte: the action's first letter.
    tampered[i] = lines[i]!.replace('"action":"command.create"', '"action":"dommand.create"');
    const file = path.join(workDir, "tampered.ndjson");
    await writeFile(file, `${tampered.join("\n")}\n`);
    const result = await auditVerify(file);
    expect(result.code).toBe(1);
    expect(result.out).toContain(`shard ${record.shard} seq ${record.seq}`);
    expect(result.out).toMatch(/altered/);
  });

  it("removing the last record of a shard fails as a truncation", async () => {
    const recordLines = lines.map((l, i) => ({ l, i })).filter(({ l }) => l.includes('"type":"record"'));
    const last = recordLines.at(-1)!;
    const { shard, seq } = JSON.parse(last.l) as { shard: number; seq: number };
    const cut = lines.filter((_, i) => i !== last.i);
    const file = path.join(workDir, "truncated.ndjson");
    await writeFile(file, `${cut.join("\n")}\n`);
    const result = await auditVerify(file);
    expect(result.code).toBe(1);
    expect(result.out).toContain(`shard ${shard} seq ${seq}`);
    expect(result.out).toMatch(/removed from the end/);
    // The untouched file still verifies: the failures are the edits'.
    expect((await auditVerify(exported())).code).toBe(0);
    expect(await readFile(exported(), "utf8")).toContain('"type":"export"');
  });
});
