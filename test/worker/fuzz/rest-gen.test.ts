import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { paramText, validArb } from "./rest-gen.ts";

const pools = { ids: {}, cursors: [], tokens: [], enrollmentTokens: [], csr: "" };

describe("REST fuzz generators", () => {
  // CI at 8422d96 died generating a request: `history_limit` (`type: ["integer", "null"]`) fell to
  // `jsonValue`, which made `{"toString": …}`, and `String` threw on it.
  it("a nullable parameter yields its own types, never arbitrary JSON", () => {
    const values = fc.sample(validArb({ type: ["integer", "null"], minimum: 0, maximum: 500 }, pools), {
      seed: 1,
      numRuns: 2000,
    });
    expect(values.every((v) => v === null || (Number.isInteger(v) && (v as number) >= 0 && (v as number) <= 500))).toBe(true);
    expect(values).toContain(null);
  });

  it("any generated value becomes parameter text", () => {
    expect(paramText({ toString: 1 })).toBe('{"toString":1}');
    expect(paramText(Object.create(null))).toBe("{}");
    expect(paramText(7)).toBe("7");
    fc.assert(
      fc.property(fc.jsonValue(), (v) => typeof paramText(v) === "string"),
      { seed: 2, numRuns: 5000 },
    );
  });
});
