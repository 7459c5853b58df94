import { describe, expect, it } from "vitest";
import { isJsonContentType } from "../../worker/media-type.ts";
import { api, expectProblem, listHostCommands, registerHost } from "./helpers.ts";

// The header the probe used: 18 repeats stalled the isolate for 4.5 s under the old backtracking pattern.
const PROBE_HEADER = `application/json${";a=  ".repeat(18)};`;

describe("isJsonContentType", () => {
  it.each([
    ["application/json", true],
    ["APPLICATION/JSON", true],
    ["application/json;charset=utf-8", true],
    ["application/json; charset=utf-8", true],
    ["application/json; charset=utf-8; q=1", true],
    ["application/merge-patch+json", true],
    ["application/vnd.fleet+json", true],
    ["", false],
    ["text/plain", false],
    ["application/jsonx", false],
    ["application/+json", false],
    ["application/vnd.fleet+v1+json", false],
    ["application/json; foo", false],
    ["application/json;", false],
    ["application/json; a=", false],
    ["application/json ; charset=utf-8", false],
    [PROBE_HEADER, false],
  ])("%j → %s", (header, expected) => {
    expect(isJsonContentType(header)).toBe(expected);
  });

  it("stays linear on 100 KB hostile headers (a superlinear check would not finish this loop)", () => {
    const size = 100_000;
    const hostile = [
      `application/json${";a=  ".repeat(size / 5)};`,
      `application/json${"; a=".repeat(size / 4)}`,
      `application/json;${"a".repeat(size)}`,
      `application/${"a".repeat(size)}+json;`,
      `application/json;a=${";".repeat(size)}`,
    ];
    let refused = 0;
    // 5 shapes × 200 runs × 100 KB = 100 MB of scanning: well under a second when linear; a quadratic
    // check needs ~10^12 steps here, and an exponential one never returns.
    for (let run = 0; run < 200; run++) {
      for (const header of hostile) if (!isJsonContentType(header)) refused++;
    }
    expect(refused).toBe(200 * hostile.length);
  });
});

describe("Content-Type check on the REST surface", () => {
  it("answers the probe's hostile header with 415 before authentication", async () => {
    const host = await registerHost();
    const res = await api(`/api/hosts/${host.host_id}/packages/install`, {
      token: null,
      rawBody: JSON.stringify({ packages: ["nginx"] }),
      headers: { "content-type": PROBE_HEADER },
    });
    await expectProblem(res, 415, "ERR_UNSUPPORTED_MEDIA_TYPE");
    expect((await listHostCommands(host.host_id)).items).toEqual([]);
  });

  it("answers a 100 KB hostile header with 415", async () => {
    const res = await api("/api/hosts", {
      role: "admin",
      rawBody: "{}",
      headers: { "content-type": `application/json${";a=  ".repeat(20_000)};` },
    });
    await expectProblem(res, 415, "ERR_UNSUPPORTED_MEDIA_TYPE");
  });
});
