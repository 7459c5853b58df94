/**
 * Hostile values shared by the fuzz suites: strings, numbers and JSON values that have broken
 * parsers, validators, SQL, routers and object models elsewhere.
 */
import fc from "fast-check";

/** Keys that mean something to JavaScript objects (prototype pollution) or to storage. */
export const PROTO_KEYS = ["__proto__", "constructor", "prototype", "toString", "valueOf", "hasOwnProperty", "__defineGetter__"];

const FIXED_STRINGS = [
  "",
  " ",
  "\u0000",
  "a\u0000b",
  "\t\r\n",
  "\r\nX-Injected: 1",
  "\u0007\u0008\u001b[31m",
  "\u202eevil\u202c",
  "\u200b\u200c\u200d\ufeff",
  "\ud800",
  "\udfff\ud800",
  "😀",
  "👩‍👩‍👧‍👦",
  "é",
  "e\u0301",
  "Ω≈ç√∫",
  "ｆｕｌｌｗｉｄｔｈ",
  "' OR '1'='1",
  "'; DROP TABLE hosts; --",
  '" OR 1=1 --',
  "1; SELECT * FROM sqlite_master",
  "%",
  "_",
  "%00",
  "%2e%2e%2f",
  "../../etc/passwd",
  "..\\..\\windows",
  "/",
  "//",
  "a/b",
  "%2F",
  "file:///etc/passwd",
  "http://169.254.169.254/latest",
  "<script>alert(1)</script>",
  "${jndi:ldap://x/a}",
  "{{7*7}}",
  '{"a":1}',
  "[1,2",
  "null",
  "true",
  "NaN",
  "Infinity",
  "-0",
  "1e309",
  "0x10",
  "-1",
  "00000000-0000-0000-0000-000000000000",
  "ffffffff-ffff-ffff-ffff-ffffffffffff",
  "00000000-0000-4000-8000-00000000000g",
  ...PROTO_KEYS,
  "job:abc",
  "JOB:abc",
  "c1",
  "c-1",
  "c999999999999999",
  "c9999999999999999999",
  "h00000000-0000-4000-8000-000000000000",
  "j1",
  "s1",
  "t",
];

/** A string from the fixed hostile list, a random unicode string, or a long repetition. */
export function hostileString(): fc.Arbitrary<string> {
  return fc.oneof(
    { weight: 5, arbitrary: fc.constantFrom(...FIXED_STRINGS) },
    { weight: 2, arbitrary: fc.string({ unit: "binary", maxLength: 40 }) },
    {
      weight: 1,
      arbitrary: fc.string({ unit: fc.constantFrom("\u0000", "\u001f", "\u007f", "\u0085", "\u2028", "\u2029", "\ufffe"), maxLength: 20 }),
    },
    {
      weight: 1,
      arbitrary: fc
        .tuple(
          fc.constantFrom("a", "€", "😀", "%", "/", "\\", '"', "0"),
          fc.constantFrom(63, 64, 65, 127, 128, 129, 200, 201, 253, 254, 4097, 20_000),
        )
        .map(([c, n]) => c.repeat(n)),
    },
  );
}

/** Numbers at and around the edges a schema usually has. */
export function hostileNumber(min?: number, max?: number): fc.Arbitrary<number> {
  const edges = [
    0,
    -0,
    -1,
    1,
    0.5,
    1.5,
    -1.5,
    2 ** 31 - 1,
    2 ** 31,
    2 ** 32,
    2 ** 53 - 1,
    2 ** 53 + 2,
    -(2 ** 53),
    1e21,
    1e308,
    Number.MAX_VALUE,
    Number.MIN_VALUE,
    -Number.MAX_VALUE,
  ];
  for (const b of [min, max]) if (b !== undefined) edges.push(b, b - 1, b + 1, b + 0.5, b - 0.5);
  return fc.oneof(
    { weight: 4, arbitrary: fc.constantFrom(...edges) },
    { weight: 1, arbitrary: fc.double({ noNaN: true, noDefaultInfinity: true }) },
    { weight: 1, arbitrary: fc.integer() },
  );
}

/** A JSON value of some other type than expected (the caller picks which). */
export function wrongTypeValue(): fc.Arbitrary<unknown> {
  return fc.oneof(
    fc.constant(null),
    fc.boolean(),
    hostileNumber(),
    hostileString(),
    fc.constant([]),
    fc.constant({}),
    fc.constant([[[]]]),
    fc.array(hostileString(), { maxLength: 3 }),
    fc.dictionary(hostileString(), fc.jsonValue({ maxDepth: 1 }), { maxKeys: 3 }),
  );
}

/** Any JSON value, sometimes with hostile keys and strings inside. */
export function anyJson(): fc.Arbitrary<unknown> {
  return fc.oneof(
    { weight: 3, arbitrary: fc.jsonValue({ maxDepth: 3 }) },
    { weight: 1, arbitrary: fc.dictionary(fc.oneof(hostileString(), fc.constantFrom(...PROTO_KEYS)), wrongTypeValue(), { maxKeys: 5 }) },
  );
}

/** `{"__proto__": …}` as an own key: JSON.parse makes one, an object literal would set the prototype. */
export function withOwnKey(target: Record<string, unknown>, key: string, value: unknown): Record<string, unknown> {
  const copy = JSON.parse(JSON.stringify(target)) as Record<string, unknown>;
  if (PROTO_KEYS.includes(key)) {
    const patched = JSON.parse(`{${JSON.stringify(key)}:${JSON.stringify(value) ?? "null"}}`) as Record<string, unknown>;
    for (const [k, v] of Object.entries(copy))
      Object.defineProperty(patched, k, { value: v, enumerable: true, writable: true, configurable: true });
    return patched;
  }
  copy[key] = value;
  return copy;
}

/** Nested arrays or objects `depth` levels deep around `inner`. */
export function nested(depth: number, kind: "array" | "object", inner = "1"): string {
  return kind === "array" ? "[".repeat(depth) + inner + "]".repeat(depth) : '{"a":'.repeat(depth) + inner + "}".repeat(depth);
}

export const textBytes = (s: string): number => new TextEncoder().encode(s).length;
