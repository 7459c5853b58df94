import { createExecutionContext, waitOnExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { createApp } from "../../../worker/app.ts";
import type { Env } from "../../../worker/env.ts";
import { api, BASE, registerHost, relayStub, TestAgent, token } from "../helpers.ts";
import { sql } from "../host-relay/relay-helpers.ts";
import { eventually, exportText, inShard, listed, shardOfHost, storedRecords, verify } from "./audit-helpers.ts";

const JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJlLXNpZ25hdHVyZQ";

async function commands(hostId: string): Promise<unknown[]> {
  const res = await api(`/api/hosts/${hostId}/commands`, { role: "viewer" });
  return ((await res.json()) as { items: unknown[] }).items;
}

describe("request ids", () => {
  it("every response carries X-Request-Id; a valid incoming one is kept, a bad one replaced", async () => {
    const fresh = await api("/healthz", { token: null });
    expect(fresh.headers.get("x-request-id")).toMatch(/^[0-9a-f-]{36}$/);
    const kept = await api("/api/nowhere", { headers: { "x-request-id": "trace-1234.abc" } });
    expect(kept.status).toBe(404);
    expect(kept.headers.get("x-request-id")).toBe("trace-1234.abc");
    expect(((await kept.json()) as { request_id: string }).request_id).toBe("trace-1234.abc");
    const bad = await api("/healthz", { token: null, headers: { "x-request-id": "no spaces please" } });
    expect(bad.headers.get("x-request-id")).toMatch(/^[0-9a-f-]{36}$/);
  });
});

describe("audit of REST mutations", () => {
  it("records a command's creation with actor, target (host and message id), outcome and request id", async () => {
    const host = await registerHost();
    const res = await api(`/api/hosts/${host.host_id}/commands`, {
      role: "operator",
      body: { command_type: "system_info" },
      headers: { "x-request-id": "req-cmd-create-1" },
    });
    expect(res.status).toBe(202);
    const { message_id } = (await res.json()) as { message_id: string };
    const record = await eventually(async () => (await listed(`host_id=${host.host_id}&action=command.create`))[0]);
    expect(record).toMatchObject({
      action: "command.create",
      actor: { kind: "user", sub: "test-user", role: "operator" },
      target: { host_id: host.host_id, message_id },
      outcome: { status: 202, code: null },
      request_id: "req-cmd-create-1",
      shard: shardOfHost(host.host_id),
    });
  });

  it("fail-closed: when the shard cannot take the first stage, a gated mutation is refused with 503 and changes nothing", async () => {
    const host = await registerHost();
    await inShard(shardOfHost(host.host_id), (_ac, instance) => instance.faults.arm("audit.append"));
    const res = await api(`/api/hosts/${host.host_id}/revoke`, { method: "POST", role: "admin" });
    expect(res.status).toBe(503);
    expect(res.headers.get("content-type")).toBe("application/problem+json");
    expect(((await res.json()) as { code: string }).code).toBe("ERR_AUDIT_UNAVAILABLE");
    const after = await api(`/api/hosts/${host.host_id}`, { role: "viewer" });
    expect(((await after.json()) as { status: string }).status).not.toBe("revoked");
  });

  it("fail-closed: a queued command's record is committed with the command, so a shard that is down delays the record, never loses it", async () => {
    const host = await registerHost();
    await inShard(shardOfHost(host.host_id), (_ac, instance) => instance.faults.arm("audit.append"));
    const res = await api(`/api/hosts/${host.host_id}/commands`, { role: "operator", body: { command_type: "system_info" } });
    expect(res.status).toBe(202);
    const { message_id } = (await res.json()) as { message_id: string };
    expect(await commands(host.host_id)).toHaveLength(1);
    // In the HostRelay's outbox, in the command's transaction, before the 202 went out.
    const pending = (await sql(host.host_id, "SELECT body FROM outbox WHERE kind = 'audit'")).map(
      (row) => JSON.parse(row.body as string) as { action: string; target: { message_id?: string } },
    );
    expect(pending.some((p) => p.action === "command.create" && p.target.message_id === message_id)).toBe(true);
    // The shard refused the first delivery; the outbox's retry brings it.
    const record = await eventually(async () => (await listed(`host_id=${host.host_id}&action=command.create`))[0], 15_000);
    expect(record).toMatchObject({ target: { host_id: host.host_id, message_id }, outcome: { status: 202, code: null } });
  });

  it("a refused enqueue (unknown host) changed nothing and is still recorded, with its error", async () => {
    const hostId = crypto.randomUUID();
    const res = await api(`/api/hosts/${hostId}/commands`, { role: "operator", body: { command_type: "system_info" } });
    expect(res.status).toBe(404);
    const record = await eventually(async () => (await listed(`host_id=${hostId}&action=command.create`))[0]);
    expect(record.outcome).toMatchObject({ status: 404 });
  });

  it("best-effort: the same failure lets a gated mutation through", async () => {
    const host = await registerHost();
    await inShard(shardOfHost(host.host_id), (_ac, instance) => instance.faults.arm("audit.append"));
    const app = createApp();
    const ctx = createExecutionContext();
    const res = await app.fetch(
      new Request(`${BASE}/api/hosts/${host.host_id}/revoke`, {
        method: "POST",
        headers: { authorization: `Bearer ${await token("admin")}` },
      }),
      { ...(env as unknown as Env), AUDIT_MODE: "best-effort" },
      ctx,
    );
    await waitOnExecutionContext(ctx);
    expect(res.status).toBe(200);
    const after = await api(`/api/hosts/${host.host_id}`, { role: "viewer" });
    expect(((await after.json()) as { status: string }).status).toBe("revoked");
  });

  it("never stores a secret or token from the body, in storage or in the export", async () => {
    const host = await registerHost();
    const res = await api(`/api/hosts/${host.host_id}/commands`, {
      role: "operator",
      body: {
        command_type: "shell",
        parameters: { command: `curl -H 'x: ${JWT}' x`, password: "hunter2-secret", api_token: "tok-123456" },
      },
    });
    expect([202, 400]).toContain(res.status);
    const shard = shardOfHost(host.host_id);
    const record = await eventually(async () =>
      (await storedRecords(shard)).find((r) => r.target.host_id === host.host_id && r.action === "command.create"),
    );
    const stored = JSON.stringify(record);
    for (const secret of ["hunter2-secret", "tok-123456", JWT]) expect(stored).not.toContain(secret);
    expect(stored).toContain("[REDACTED]");
    const exported = await exportText();
    for (const secret of ["hunter2-secret", "tok-123456", JWT]) expect(exported).not.toContain(secret);
  });

  it("bounds the stored request to 4 KiB", async () => {
    const host = await registerHost();
    const big = "y".repeat(8_000);
    await api(`/api/hosts/${host.host_id}/commands`, { role: "operator", body: { command_type: "shell", parameters: { command: big } } });
    const shard = shardOfHost(host.host_id);
    const record = await eventually(async () =>
      (await storedRecords(shard)).find((r) => r.target.host_id === host.host_id && r.action === "command.create"),
    );
    expect(record.request).toMatchObject({ truncated: true });
    expect(JSON.stringify(record.request).length).toBeLessThan(4096);
  });

  it("records refusals: 401 without a token and 403 for a too-small role", async () => {
    const host = await registerHost();
    expect((await api(`/api/hosts/${host.host_id}/revoke`, { method: "POST", token: null })).status).toBe(401);
    expect((await api(`/api/hosts/${host.host_id}/revoke`, { method: "POST", role: "viewer" })).status).toBe(403);
    const refused = await eventually(async () => {
      const r = await listed(`host_id=${host.host_id}&action=auth.refused`);
      return r.length >= 2 ? r : undefined;
    });
    expect(refused.map((r) => r.outcome).sort((a, b) => (a.status ?? 0) - (b.status ?? 0))).toEqual([
      { status: 401, code: "ERR_AUTH_MISSING" },
      { status: 403, code: "ERR_FORBIDDEN" },
    ]);
    expect(refused.find((r) => r.outcome.status === 403)?.actor).toMatchObject({ sub: "test-user", role: "viewer" });
  });
});

describe("audit records from the HostRelay", () => {
  it("agent connect and disconnect carry the certificate fingerprint; a re-delivered batch is not chained twice", async () => {
    const host = await registerHost();
    // The first delivery of the relay's audit rows is stored by the shard, then its answer is lost.
    const relay = relayStub(host.host_id);
    await runIn(relay, (i) => i.faults.arm("audit.after_ingest"));
    const agent = await TestAgent.connect(host.fingerprint);
    agent.close();
    const records = await eventually(async () => {
      const r = await listed(`host_id=${host.host_id}`);
      return r.some((x) => x.action === "agent.disconnect") ? r : undefined;
    });
    const connects = records.filter((r) => r.action === "agent.connect");
    expect(connects).toHaveLength(1);
    expect(connects[0]!.actor).toMatchObject({ kind: "agent", sub: host.host_id, cert_fingerprint: host.fingerprint });
    const result = await verify(await exportText());
    expect(result.ok, JSON.stringify(result)).toBe(true);
  });
});

async function runIn(stub: ReturnType<typeof relayStub>, fn: (instance: { faults: { arm(name: string): void } }) => void) {
  const { runInDurableObject } = await import("cloudflare:test");
  await runInDurableObject(stub, (instance) => fn(instance as never));
}
