import { describe, expect, it } from "vitest";
import { api, errorPaths, expectProblem, uniqueFingerprint } from "../helpers.ts";

describe("host names follow RFC 1123", () => {
  it.each(["a..b", "x".repeat(253), "-web", "web-"])("registering %j → 400 naming hostname", async (hostname) => {
    const res = await api("/api/hosts", { body: { hostname, cert_fingerprint_sha256: uniqueFingerprint() } });
    expect(errorPaths(await expectProblem(res, 400, "ERR_VALIDATION"))).toEqual(["hostname"]);
  });

  it("a multi-label name of 63-character labels is registered", async () => {
    const hostname = `${"a".repeat(63)}.example.com`;
    const res = await api("/api/hosts", { body: { hostname, cert_fingerprint_sha256: uniqueFingerprint() } });
    expect(res.status).toBe(201);
    expect(((await res.json()) as { hostname: string }).hostname).toBe(hostname);
  });
});
