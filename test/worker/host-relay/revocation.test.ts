import { runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";

/** The relay's registry re-check (REGISTRY_CHECK_S default, worker/config.ts). */
const REGISTRY_CHECK_MS = 300_000;

import { CloseCode } from "../../../schemas/index.ts";
import { ManualClock } from "../../../worker/clock.ts";
import type { HostRelay } from "../../../worker/host-relay/host-relay.ts";
import { api, expectProblem, getHostView, registerHost, relayStub, TestAgent } from "../helpers.ts";
import { barrier, commandFrames, enqueue } from "./relay-helpers.ts";

const revoke = (hostId: string) => api(`/api/hosts/${hostId}/revoke`, { role: "admin", method: "POST" });
const queueOne = (hostId: string) => api(`/api/hosts/${hostId}/commands`, { role: "operator", body: { command_type: "system_info" } });

function arm(hostId: string, times: number): Promise<void> {
  return runInDurableObject(relayStub(hostId), (instance: HostRelay) => instance.faults.arm("relay.revoke", times));
}

describe("revocation reaches the relay before the API says it happened", () => {
  it("a failed first call is retried: the agent is disconnected, and nothing new is queued or delivered", async () => {
    const host = await registerHost();
    const agent = await TestAgent.connect(host.fingerprint);
    await arm(host.host_id, 1);
    const res = await revoke(host.host_id);
    expect(res.status).toBe(200);
    expect((await agent.waitClose()).code).toBe(CloseCode.REVOKED);
    await expectProblem(await queueOne(host.host_id), 409, "ERR_HOST_REVOKED");
    expect(commandFrames(agent)).toEqual([]);
    expect((await getHostView(host.host_id)).status).toBe("revoked");
  });

  it("when the relay cannot be reached at all: 503, nothing recorded, the agent untouched; a retry revokes", async () => {
    const host = await registerHost();
    const agent = await TestAgent.connect(host.fingerprint);
    await arm(host.host_id, 4);
    await expectProblem(await revoke(host.host_id), 503, "ERR_RELAY_UNAVAILABLE");
    // The API does not claim a revocation that has not taken effect.
    expect((await getHostView(host.host_id)).revoked_at).toBeNull();
    await barrier(agent);
    expect(agent.closed).toBeNull();

    expect((await revoke(host.host_id)).status).toBe(200);
    expect((await agent.waitClose()).code).toBe(CloseCode.REVOKED);
    expect((await getHostView(host.host_id)).status).toBe("revoked");
  });

  it("a revocation written to the registry by other means takes effect within the relay's registry check", async () => {
    const host = await registerHost();
    const agent = await TestAgent.connect(host.fingerprint);
    const clock = new ManualClock(Date.now());
    await runInDurableObject(relayStub(host.host_id), (instance: HostRelay) => {
      (instance as unknown as { rc: { clock: ManualClock } }).rc.clock = clock;
    });
    const before = await enqueue(host.host_id);
    await agent.command(before, 1);
    await env.DB.prepare("UPDATE hosts SET revoked_at = ? WHERE host_id = ?").bind(new Date().toISOString(), host.host_id).run();

    clock.advance(REGISTRY_CHECK_MS);
    expect(await runDurableObjectAlarm(relayStub(host.host_id))).toBe(true);
    expect((await agent.waitClose()).code).toBe(CloseCode.REVOKED);
    await expectProblem(await queueOne(host.host_id), 409, "ERR_HOST_REVOKED");
  });
});
