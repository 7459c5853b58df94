import { describe, expect, it } from "vitest";
import { MAX_JSON_DEPTH, parseStrictJson } from "../../schemas/index.ts";

describe("parseStrictJson", () => {
  it.each([
    ['{"a":1,"b":{"a":2},"c":[{"a":3},{"a":4}]}', { a: 1, b: { a: 2 }, c: [{ a: 3 }, { a: 4 }] }],
    ['{"k":"a \\" \\\\","v":"{\\"k\\":1,\\"k\\":2}"}', { k: 'a " \\', v: '{"k":1,"k":2}' }],
    ['["a","a",{"x":"a"}]', ["a", "a", { x: "a" }]],
    ["42", 42],
    ['"just a string"', "just a string"],
  ])("parses %s like JSON.parse when no key repeats", (text, value) => {
    expect(parseStrictJson(text)).toEqual({ ok: true, value });
  });

  it.each([
    ['{"command_type":"system_info","command_type":"shell"}', "command_type"],
    ['{"parameters":{"operation":"install","operation":"remove"}}', "parameters.operation"],
    ['{"a":[{"x":1},{"x":1,"x":2}]}', "a.1.x"],
    ['{"a":1,"\\u0061":2}', "a"],
    ['{"a\\"b":1,"a\\u0022b":2}', 'a"b'],
  ])("refuses %s with the duplicate's path", (text, path) => {
    const r = parseStrictJson(text);
    expect(r).toMatchObject({ ok: false, reason: "duplicate_key", path });
  });

  it("reports a syntax error as syntax, not as whatever the scan saw", () => {
    expect(parseStrictJson('{"a":1,"a":')).toMatchObject({ ok: false, reason: "syntax" });
    expect(parseStrictJson("{nope")).toMatchObject({ ok: false, reason: "syntax" });
  });

  it("refuses nesting past the depth limit without parsing it", () => {
    const ok = "[".repeat(MAX_JSON_DEPTH) + "]".repeat(MAX_JSON_DEPTH);
    expect(parseStrictJson(ok).ok).toBe(true);
    const deep = "[".repeat(100_000) + "]".repeat(100_000);
    expect(parseStrictJson(deep)).toMatchObject({ ok: false, reason: "too_deep" });
  });

  it("stays linear on long runs of backslashes and many keys", () => {
    // Counted work, not time: a quadratic scan of these inputs would still finish, so check results.
    const slashes = `{"k":"${"\\\\".repeat(50_000)}","k2":1}`;
    expect(parseStrictJson(slashes)).toMatchObject({ ok: true });
    const many = `{${Array.from({ length: 20_000 }, (_, i) => `"k${i}":${i}`).join(",")},"k7":0}`;
    expect(parseStrictJson(many)).toMatchObject({ ok: false, reason: "duplicate_key", path: "k7" });
  });
});
