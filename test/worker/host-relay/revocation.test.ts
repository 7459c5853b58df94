import { runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { CloseCode } from "../../../schemas/index.ts";
import { ManualClock } from "../../../worker/clock.ts";
import type { HostRelay } from "../../../worker/host-relay/host-relay.ts";
import { REGISTRY_CHECK_MS } from "../../../worker/host-relay/operations.ts";
import { TestAgent, api, expectProblem, registerHost, relayStub } from "../helpers.ts";
import { barrier, commandFrames, enqueue } from "./relay-helpers.ts";

describe("revocation: the registry is the one authority", () => {
  it("when every call to the HostRelay fails, nothing new is queued and the agent is disconnected within the registry check", async () => {
    const host = await registerHost();
    const agent = await TestAgent.connect(host.fingerprint);
    const clock = new ManualClock(Date.now());
    await runInDurableObject(relayStub(host.host_id), (instance: HostRelay) => {
      (instance as unknown as { rc: { clock: ManualClock } }).rc.clock = clock;
      instance.faults.fail("revoke", 10);
    });

    const res = await api(`/api/hosts/${host.host_id}/revoke`, { role: "admin", method: "POST" });
    expect(res.status).toBe(200);
    expect(((await res.json()) as { revoked_at: string | null }).revoked_at).not.toBeNull();
    // The relay was not told: the agent is still connected...
    await barrier(agent);
    expect(agent.closed).toBeNull();

    // ...but nothing new reaches it: the enqueue route asks the registry.
    const refused = await api(`/api/hosts/${host.host_id}/commands`, { role: "operator", body: { command_type: "system_info" } });
    await expectProblem(refused, 409, "ERR_HOST_REVOKED");
    await barrier(agent);
    expect(commandFrames(agent)).toEqual([]);

    // The relay's own registry check closes the connection within REGISTRY_CHECK_MS.
    clock.advance(REGISTRY_CHECK_MS);
    expect(await runDurableObjectAlarm(relayStub(host.host_id))).toBe(true);
    const closed = await agent.waitClose();
    expect(closed.code).toBe(CloseCode.REVOKED);
    expect((await relayStub(host.host_id).stats()).connected).toBe(false);
  });

  it("a failed first call is retried by the route: the agent is disconnected at once", async () => {
    const host = await registerHost();
    const agent = await TestAgent.connect(host.fingerprint);
    const queued = await enqueue(host.host_id);
    await agent.command(queued, 1);
    await runInDurableObject(relayStub(host.host_id), (instance: HostRelay) => instance.faults.fail("revoke", 1));
    const res = await api(`/api/hosts/${host.host_id}/revoke`, { role: "admin", method: "POST" });
    expect(res.status).toBe(200);
    expect((await agent.waitClose()).code).toBe(CloseCode.REVOKED);
  });
});
