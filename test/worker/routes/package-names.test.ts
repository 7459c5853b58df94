import { describe, expect, it } from "vitest";
import { api, errorPaths, expectProblem, listHostCommands, registerHost } from "../helpers.ts";

describe("package names shaped like URLs, paths or package files are refused at the API", () => {
  it.each(["http://attacker.example/evil.rpm", "tmp/evil.deb", "file:/etc/x", "evil.rpm", "-y"])(
    "%s → 400 naming packages.1",
    async (name) => {
      const host = await registerHost();
      const res = await api(`/api/hosts/${host.host_id}/packages/install`, { role: "operator", body: { packages: ["nginx", name] } });
      const problem = await expectProblem(res, 400, "ERR_VALIDATION");
      expect(errorPaths(problem)).toEqual(["packages.1"]);
      expect((await listHostCommands(host.host_id)).items).toEqual([]);
    },
  );

  it("a job with a URL package is refused too", async () => {
    const host = await registerHost();
    const res = await api("/api/jobs", {
      role: "operator",
      body: {
        command_type: "package_operation",
        parameters: { operation: "install", packages: ["http://attacker.example/evil.rpm"] },
        target: { host_ids: [host.host_id] },
      },
    });
    expect(errorPaths(await expectProblem(res, 400, "ERR_VALIDATION"))).toEqual(["parameters.packages.0"]);
  });
});
