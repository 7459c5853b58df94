import { describe, expect, it } from "vitest";
import { api, getCommand, registerHost, TestAgent } from "./helpers.ts";

describe("smoke", () => {
  it("seed request end to end", async () => {
    const host = await registerHost();
    const agent = await TestAgent.connect(host.fingerprint);
    const res = await api(`/api/hosts/${host.host_id}/packages/install`, {
      role: "operator",
      body: { packages: ["nginx", "curl"], options: { yes: true }, timeout: 300 },
    });
    expect(res.status).toBe(202);
    const accepted = (await res.json()) as any;
    expect(accepted.status).toBe("queued");
    const cmd = await agent.command(accepted.message_id);
    expect(cmd.parameters).toEqual({ operation: "install", packages: ["nginx", "curl"], options: { yes: true } });
    agent.ack(cmd.message_id);
    const fid = agent.respond(cmd.message_id, "success", {
      installed_packages: ["nginx", "curl"],
      execution_time: 45.2,
      output: "Packages installed successfully",
    });
    await agent.acked(fid);
    const view = await getCommand(host.host_id, accepted.message_id);
    expect(view.state).toBe("succeeded");
    expect(view.result.installed_packages).toEqual(["nginx", "curl"]);
  });
});
