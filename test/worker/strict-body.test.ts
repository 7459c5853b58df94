import { describe, expect, it } from "vitest";
import { api, errorPaths, expectProblem, listHostCommands, registerHost } from "./helpers.ts";

describe("REST bodies are strict JSON", () => {
  it("a repeated command_type is refused with 400 ERR_DUPLICATE_KEY naming it, and nothing is queued", async () => {
    const host = await registerHost();
    const res = await api(`/api/hosts/${host.host_id}/commands`, {
      role: "operator",
      rawBody: '{"command_type":"system_info","parameters":{},"command_type":"shell","parameters":{"script":"id"}}',
      headers: { "content-type": "application/json" },
    });
    const problem = await expectProblem(res, 400, "ERR_DUPLICATE_KEY");
    expect(errorPaths(problem)).toEqual(["command_type"]);
    expect((await listHostCommands(host.host_id)).items).toEqual([]);
  });

  it("a duplicate nested key is refused with its path", async () => {
    const host = await registerHost();
    const res = await api(`/api/hosts/${host.host_id}/packages/install`, {
      role: "operator",
      rawBody: '{"packages":["nginx"],"options":{"simulate":true,"simulate":false}}',
      headers: { "content-type": "application/json" },
    });
    expect(errorPaths(await expectProblem(res, 400, "ERR_DUPLICATE_KEY"))).toEqual(["options.simulate"]);
    expect((await listHostCommands(host.host_id)).items).toEqual([]);
  });

  it("nesting past the depth limit is 400 ERR_MALFORMED_JSON; a plain body still works", async () => {
    const host = await registerHost();
    const deep = `{"packages":["nginx"],"x":${"[".repeat(1000)}${"]".repeat(1000)}}`;
    const res = await api(`/api/hosts/${host.host_id}/packages/install`, {
      role: "operator",
      rawBody: deep,
      headers: { "content-type": "application/json" },
    });
    await expectProblem(res, 400, "ERR_MALFORMED_JSON");
    const ok = await api(`/api/hosts/${host.host_id}/packages/install`, { role: "operator", body: { packages: ["nginx"] } });
    expect(ok.status).toBe(202);
  });
});
