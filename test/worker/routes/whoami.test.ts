import { describe, expect, it } from "vitest";
import { api, expectProblem, token } from "../helpers.ts";

describe("GET /api/whoami", () => {
  it.each(["metrics", "viewer", "operator", "admin"])("answers the %s token's subject and role", async (role) => {
    const res = await api("/api/whoami", { token: await token(role) });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ sub: "test-user", role });
  });

  it("without a token: 401", async () => {
    await expectProblem(await api("/api/whoami", { token: null }), 401, "ERR_AUTH_MISSING");
  });
});
