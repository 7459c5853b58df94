import { randomUUID } from "node:crypto";
import { describe, expect, it } from "vitest";
import { AgentFrame, CommandMessage, ResponseMessage, WelcomeMessage } from "../../schemas/index.ts";

// The product page's examples, verbatim except for the placeholder ids ("uuid-v4", "host-uuid",
// "response-uuid"), which stand for real UUIDs in the page's own text.
const seedCommand = `{ "message_id": "uuid-v4", "timestamp": "2024-09-20T12:00:00Z", "message_type": "command", "command_type": "package_operation", "target_host": "host-uuid", "parameters": { "operation": "install", "packages": ["nginx", "curl"], "options": {"yes": true} }, "expires_at": "2024-09-20T12:30:00Z" }`;
const seedResponse = `{ "message_id": "response-uuid", "original_message_id": "uuid-v4", "timestamp": "2024-09-20T12:05:00Z", "message_type": "response", "status": "success", "result": { "installed_packages": ["nginx", "curl"], "execution_time": 45.2, "output": "Packages installed successfully" } }`;

const ids = { "uuid-v4": randomUUID(), "host-uuid": randomUUID(), "response-uuid": randomUUID() };
const withIds = (s: string) => s.replace(/"(uuid-v4|host-uuid|response-uuid)"/g, (_, k: keyof typeof ids) => `"${ids[k]}"`);

describe("wire protocol v1", () => {
  it("parses the product page's command example", () => {
    const parsed = CommandMessage.safeParse(JSON.parse(withIds(seedCommand)));
    expect(parsed.success).toBe(true);
    if (!parsed.success) return;
    expect(parsed.data.command_type).toBe("package_operation");
    expect(parsed.data.parameters).toEqual({ operation: "install", packages: ["nginx", "curl"], options: { yes: true } });
    // Fields the page leaves out get the protocol's defaults.
    expect(parsed.data.attempt).toBe(1);
    expect(parsed.data.timeout).toBe(300);
  });

  it("parses the product page's response example as an agent frame", () => {
    const parsed = AgentFrame.safeParse(JSON.parse(withIds(seedResponse)));
    expect(parsed.success).toBe(true);
    if (!parsed.success || parsed.data.message_type !== "response") throw new Error("not a response");
    expect(parsed.data.status).toBe("success");
    expect(parsed.data.result.installed_packages).toEqual(["nginx", "curl"]);
    expect(parsed.data.result.execution_time).toBe(45.2);
  });

  it("refuses a command whose parameters do not match its type", () => {
    const bad = JSON.parse(withIds(seedCommand));
    bad.parameters.packages = ["nginx; reboot"];
    expect(CommandMessage.safeParse(bad).success).toBe(false);
    bad.parameters = { operation: "install", packages: ["nginx"], options: { force: true } };
    expect(CommandMessage.safeParse(bad).success).toBe(false);
    bad.command_type = "format_disk";
    expect(CommandMessage.safeParse(bad).success).toBe(false);
  });

  it("refuses envelopes with a non-UUID id or a non-UTC timestamp", () => {
    const base = JSON.parse(withIds(seedResponse));
    expect(ResponseMessage.safeParse({ ...base, message_id: "42" }).success).toBe(false);
    expect(ResponseMessage.safeParse({ ...base, timestamp: "2024-09-20 12:05" }).success).toBe(false);
    expect(ResponseMessage.safeParse({ ...base, status: "maybe" }).success).toBe(false);
  });

  it("discriminates agent frames on message_type", () => {
    const ack = { message_id: randomUUID(), timestamp: new Date().toISOString(), message_type: "ack", original_message_id: randomUUID() };
    const parsed = AgentFrame.parse(ack);
    expect(parsed.message_type).toBe("ack");
    expect(AgentFrame.safeParse({ ...ack, message_type: "welcome" }).success).toBe(false);
  });

  it("drops unknown envelope fields so newer peers stay compatible", () => {
    const welcome = WelcomeMessage.parse({
      message_id: randomUUID(),
      timestamp: new Date().toISOString(),
      message_type: "welcome",
      host_id: randomUUID(),
      server_time: new Date().toISOString(),
      heartbeat_interval: 30,
      future_field: true,
    });
    expect("future_field" in welcome).toBe(false);
    expect(welcome.protocol_version).toBe(1);
  });
});
