/**
 * Generators for the REST fuzz suite, derived from the relay's own `/openapi.json`: every operation,
 * its path, query and header parameters and its JSON body schema. Valid values come from the
 * schemas; mutations, hostile strings, size and depth extremes and odd content types are layered on.
 */
import fc from "fast-check";
import { anyJson, hostileNumber, hostileString, nested, PROTO_KEYS } from "./hostile.ts";
import { applyMutation, mutationArb } from "./json-mutations.ts";

const METHODS = ["get", "put", "post", "delete", "patch"] as const;

export interface Param {
  name: string;
  in: "path" | "query" | "header";
  required: boolean;
  schema: any;
}

export interface Operation {
  method: string;
  path: string;
  params: Param[];
  body: any | null;
}

/** Every operation of the document, with `$ref`s resolved. */
export function operationsFromSpec(spec: any): Operation[] {
  const resolve = (node: any): any => {
    let n = node;
    while (n && typeof n.$ref === "string") {
      n = n.$ref
        .replace(/^#\//, "")
        .split("/")
        .reduce((o: any, k: string) => o?.[k.replaceAll("~1", "/").replaceAll("~0", "~")], spec);
    }
    if (n && typeof n === "object") {
      for (const [k, v] of Object.entries(n)) if (v && typeof v === "object") n[k] = resolve(v);
    }
    return n;
  };
  return Object.entries(spec.paths as Record<string, any>).flatMap(([path, item]) =>
    METHODS.filter((m) => item[m]).map((method) => {
      const op = item[method];
      const params = [...(item.parameters ?? []), ...(op.parameters ?? [])].map(resolve) as Param[];
      const body = op.requestBody ? (resolve(op.requestBody).content?.["application/json"]?.schema ?? {}) : null;
      return { method: method.toUpperCase(), path, params, body };
    }),
  );
}

/** Ids and values the generators draw on; filled by the suite as it creates things. */
export interface Pools {
  /** Real ids by parameter name (`host_id`, `message_id`, `job_id`), and `uuid` for any other uuid. */
  ids: Record<string, string[]>;
  /** Cursors the API handed out, of every kind. */
  cursors: string[];
  /** Bearer tokens: valid ones of every role and broken ones; `null` sends no Authorization header. */
  tokens: { label: string; value: string | null }[];
  /** Unused enrolment tokens, and a certificate request for enrolment bodies. */
  enrollmentTokens: string[];
  csr: string;
}

const pick = <T>(pool: () => T[], fallback: T) =>
  fc.nat().map((i) => {
    const p = pool();
    return p.length ? p[i % p.length]! : fallback;
  });

// ---- valid values from a JSON schema ----

const hostnameArb = fc
  .array(fc.stringMatching(/^[a-z0-9]([a-z0-9-]{0,8}[a-z0-9])?$/), { minLength: 1, maxLength: 3 })
  .map((labels) => labels.join("."));

/** Values for properties whose rule the JSON schema cannot express (a refinement in zod). */
function hinted(name: string | undefined, pools: Pools): fc.Arbitrary<unknown> | null {
  switch (name) {
    case "hostname":
      return hostnameArb;
    case "cert_fingerprint_sha256":
      return fc.oneof(fc.stringMatching(/^[0-9a-f]{64}$/), fc.stringMatching(/^([0-9A-F]{2}:){31}[0-9A-F]{2}$/));
    case "csr":
      return fc.constant(pools.csr);
    case "token":
      return pick(() => pools.enrollmentTokens, "no-token");
    case "script":
      return fc.constantFrom("echo hi", "uname -a", "true");
    case "target":
      // Exactly one way to pick hosts (a refinement the schema cannot say).
      return fc.oneof(
        fc.record({
          host_ids: fc.array(
            pick(() => pools.ids.host_id ?? [], crypto.randomUUID()),
            { minLength: 1, maxLength: 3 },
          ),
        }),
        fc.record(
          {
            tags: fc.array(fc.constantFrom("web", "db", "victim", "fuzz", "none"), { minLength: 1, maxLength: 2 }),
            match: fc.constantFrom("any", "all"),
          },
          { requiredKeys: ["tags"] },
        ),
        fc.constant({ all: true }),
      );
    default:
      return null;
  }
}

export function validArb(schema: any, pools: Pools, name?: string): fc.Arbitrary<unknown> {
  if (!schema || typeof schema !== "object") return fc.jsonValue({ maxDepth: 1 });
  const hint = hinted(name, pools);
  if (hint) return hint;
  if (schema.oneOf || schema.anyOf) return fc.oneof(...(schema.oneOf ?? schema.anyOf).map((s: any) => validArb(s, pools, name)));
  if (schema.enum) return fc.constantFrom(...schema.enum);
  if ("const" in schema) return fc.constant(schema.const);
  // OpenAPI 3.1 nullable: `type: ["integer", "null"]` is one of its types.
  if (Array.isArray(schema.type))
    return fc.oneof(...schema.type.map((t: string) => (t === "null" ? fc.constant(null) : validArb({ ...schema, type: t }, pools, name))));
  switch (schema.type) {
    case "object": {
      const props = (schema.properties ?? {}) as Record<string, any>;
      const required = new Set<string>(schema.required ?? []);
      const entries = Object.entries(props);
      if (entries.length === 0 && schema.additionalProperties && typeof schema.additionalProperties === "object") {
        return fc.dictionary(fc.stringMatching(/^[A-Z_]{1,8}$/), validArb(schema.additionalProperties, pools), { maxKeys: 3 });
      }
      const shape = Object.fromEntries(entries.map(([k, s]) => [k, validArb(s, pools, k)]));
      return fc.record(shape, { requiredKeys: entries.map(([k]) => k).filter((k) => required.has(k)) });
    }
    case "array": {
      const min = schema.minItems ?? 0;
      return fc.array(validArb(schema.items, pools, name === "host_ids" ? "host_id" : undefined), {
        minLength: min,
        maxLength: Math.min(schema.maxItems ?? 4, min + 3),
      });
    }
    case "string": {
      if (schema.format === "uuid")
        return fc.oneof(
          pick(() => pools.ids[name ?? ""] ?? pools.ids.host_id ?? [], crypto.randomUUID()),
          fc.uuid({ version: 4 }),
        );
      if (schema.format === "date-time") {
        // Mostly within the 30-day delivery bound; sometimes past it, or already passed.
        return fc
          .oneof(
            { weight: 4, arbitrary: fc.integer({ min: 3600, max: 29 * 86_400 }) },
            { weight: 1, arbitrary: fc.integer({ min: -86_400, max: 40 * 86_400 }) },
          )
          .map((s) => new Date(Date.now() + s * 1000).toISOString());
      }
      if (schema.pattern) return fc.stringMatching(new RegExp(schema.pattern));
      return fc.string({ minLength: schema.minLength ?? 0, maxLength: Math.min(schema.maxLength ?? 16, 16) });
    }
    case "integer":
      return fc.integer({ min: schema.minimum ?? -1000, max: Math.min(schema.maximum ?? 1000, (schema.minimum ?? 0) + 100_000) });
    case "number":
      return fc.double({ min: schema.minimum ?? -1000, max: schema.maximum ?? 1000, noNaN: true });
    case "boolean":
      return fc.boolean();
    default:
      return fc.jsonValue({ maxDepth: 1 });
  }
}

// ---- raw bodies ----

/** Pads a JSON text to about `bytes` UTF-8 bytes inside a string field (or a new one). */
function padTo(value: unknown, bytes: number, char: string): string {
  const base = JSON.stringify(value && typeof value === "object" && !Array.isArray(value) ? value : { value }) ?? "{}";
  const charBytes = new TextEncoder().encode(char).length;
  const room = Math.max(0, bytes - new TextEncoder().encode(base).length - 10);
  const pad = char.repeat(Math.floor(room / charBytes));
  const obj = JSON.parse(base);
  const stringKey = Object.keys(obj).find((k) => typeof obj[k] === "string");
  obj[stringKey ?? "pad"] = pad;
  return JSON.stringify(obj);
}

const MALFORMED = [
  "{",
  "}",
  '{"a":}',
  "{'a':1}",
  '{"a":1,}',
  "[1,]",
  '{"a":1} x',
  "\ufeff{}",
  "{/* c */}",
  '{"a":NaN}',
  '{"a":1e999}',
  '{"a":-1e999}',
  '{"a":01}',
  '{"a":"\\x41"}',
  '{"a":"\u0000"}',
  '{"a":"\\ud800"}',
  '"just a string"',
  "123",
  "null",
  "true",
  "[]",
  "\u0000",
  " ",
  '{"a":1,"a":2}',
  '{"a":1,"\\u0061":2}',
  '{"x":{"b":[{"c":1,"c":1}]}}',
  '{"__proto__":{"admin":true}}',
  '{"__proto__":1,"__proto__":2}',
  '{"constructor":{"prototype":{"polluted":true}}}',
];

export type BodyLabel = "valid" | "mutated" | "random_json" | "raw" | "duplicate_key" | "deep" | "many_keys" | "size" | "empty" | "none";

export function bodyArb(schema: any, pools: Pools): fc.Arbitrary<{ label: BodyLabel; text: string | undefined }> {
  const valid = validArb(schema, pools);
  return fc.oneof(
    { weight: 10, arbitrary: valid.map((v) => ({ label: "valid" as const, text: JSON.stringify(v) })) },
    {
      weight: 8,
      arbitrary: fc.tuple(valid, fc.array(mutationArb, { minLength: 1, maxLength: 3 })).map(([v, ms]) => {
        const out = ms.reduce((acc, m) => applyMutation(acc, m), v);
        return { label: "mutated" as const, text: out === undefined ? "" : JSON.stringify(out) };
      }),
    },
    { weight: 2, arbitrary: anyJson().map((v) => ({ label: "random_json" as const, text: JSON.stringify(v) ?? "null" })) },
    { weight: 2, arbitrary: fc.constantFrom(...MALFORMED).map((text) => ({ label: "raw" as const, text })) },
    {
      weight: 1,
      arbitrary: fc.tuple(valid, fc.constantFrom(...PROTO_KEYS, "tags", "command_type", "hostname", "target")).map(([v, key]) => {
        const text = JSON.stringify(v) ?? "{}";
        // Repeat a key at the top level or one level down: strict parsing refuses both.
        return {
          label: "duplicate_key" as const,
          text:
            text.startsWith("{") && text.length > 2
              ? `{${JSON.stringify(key)}:1,${JSON.stringify(key)}:2,${text.slice(1)}`
              : `{${JSON.stringify(key)}:1,${JSON.stringify(key)}:1}`,
        };
      }),
    },
    {
      weight: 1,
      arbitrary: fc
        .tuple(
          fc.constantFrom(10, 63, 64, 65, 100, 1000, 10_000, 30_000),
          fc.constantFrom("array" as const, "object" as const),
          fc.boolean(),
        )
        .map(([d, kind, wrap]) => ({
          label: "deep" as const,
          text: wrap ? `{"tags":${nested(d, kind)}}` : nested(d, kind),
        })),
    },
    {
      weight: 1,
      arbitrary: fc.constantFrom(100, 1000, 5000).map((n) => ({
        label: "many_keys" as const,
        text: `{${Array.from({ length: n }, (_, i) => `"k${i}":${i}`).join(",")}}`,
      })),
    },
    {
      weight: 1,
      arbitrary: fc
        .tuple(valid, fc.constantFrom(65_535, 65_536, 65_537, 70_000, 200_000), fc.constantFrom("a", "€", "😀"))
        .map(([v, bytes, ch]) => ({
          label: "size" as const,
          text: padTo(v, bytes, ch),
        })),
    },
    { weight: 1, arbitrary: fc.constant({ label: "empty" as const, text: "" }) },
    { weight: 1, arbitrary: fc.constant({ label: "none" as const, text: undefined }) },
  );
}

// ---- parameters ----

/** Percent-encodes, replacing lone surrogates first (they have no UTF-8 form to encode). */
const enc = (s: string): string => encodeURIComponent(s.toWellFormed());

/**
 * A generated value as parameter text. `String` is not total: it throws on an object whose
 * `toString` is not callable (`{"toString": 1}`, which `jsonValue` makes), so objects go as JSON.
 */
export const paramText = (v: unknown): string => (v !== null && typeof v === "object" ? JSON.stringify(v) : String(v));

function pathValueArb(op: Operation, p: Param, pools: Pools): fc.Arbitrary<string> {
  // Real hosts for revocation come from their own pool, so the fuzz cannot revoke the hosts it reads back.
  const pool = op.path.endsWith("/revoke") && p.name === "host_id" ? "revocable_host_id" : p.name;
  const real =
    p.schema?.format === "uuid" ? pick(() => pools.ids[pool] ?? [], crypto.randomUUID()) : validArb(p.schema, pools).map(paramText);
  return fc.oneof(
    { weight: 14, arbitrary: real.map(enc) },
    { weight: 2, arbitrary: fc.uuid().map(String) },
    { weight: 2, arbitrary: hostileString().map(enc) },
    {
      weight: 1,
      arbitrary: fc.constantFrom(
        "%2F",
        "a%2Fb",
        "..%2F..%2Fhealthz",
        "%2e%2e",
        "%252F",
        "%00",
        "%ZZ",
        "%",
        "%E2%82",
        "%C0%AF",
        "x".repeat(5000),
        `${"0".repeat(8)}-0000-4000-8000-${"0".repeat(12)}%2F..`,
        "00000000-0000-4000-8000-000000000000.json",
        "00000000-0000-4000-8000-00000000000",
        "00000000000040008000000000000000",
        "{00000000-0000-4000-8000-000000000000}",
        "00000000-0000-4000-8000-000000000000%20",
        "INSTALL",
        "install%00",
      ),
    },
  );
}

function queryValueArb(p: Param, pools: Pools): fc.Arbitrary<string> {
  if (p.name === "cursor") {
    return fc.oneof(
      { weight: 3, arbitrary: pick(() => pools.cursors, "c1") },
      {
        weight: 2,
        arbitrary: fc
          .tuple(
            fc.constantFrom("c", "h", "j", "s", "t", "d", "x", ""),
            fc.oneof(fc.nat().map(String), fc.uuid().map(String), hostileString()),
          )
          .map(([k, v]) => k + v),
      },
      { weight: 1, arbitrary: hostileString() },
    );
  }
  if (p.name === "state" || p.name === "types") {
    const items = [
      "queued",
      "delivered",
      "running",
      "succeeded",
      "failed",
      "pending",
      "skipped",
      "host.online",
      "command.state",
      "job.progress",
      "bogus",
      "",
    ];
    return fc.array(fc.oneof(fc.constantFrom(...items), hostileString()), { minLength: 0, maxLength: 4 }).map((xs) => xs.join(","));
  }
  if (p.name === "hosts" || p.name === "jobs") {
    return fc
      .array(
        fc.oneof(
          pick(() => pools.ids[p.name === "hosts" ? "host_id" : "job_id"] ?? [], "x"),
          fc.uuid().map(String),
          hostileString(),
        ),
        { maxLength: 25 },
      )
      .map((xs) => xs.join(","));
  }
  return fc.oneof(
    { weight: 3, arbitrary: validArb(p.schema, pools).map(paramText) },
    { weight: 1, arbitrary: hostileNumber(p.schema?.minimum, p.schema?.maximum).map(String) },
    { weight: 1, arbitrary: hostileString() },
  );
}

const CONTENT_TYPES = [
  "application/json",
  "application/json; charset=utf-8",
  "APPLICATION/JSON",
  "application/problem+json",
  "application/vnd.api+json",
  "application/json;",
  "application/json; charset",
  "application/json; charset=",
  "application/json;;charset=utf-8",
  "application/json; charset=utf-8; charset=latin1",
  `application/json; ${"a=b;".repeat(500)}`,
  `application/${"a".repeat(2000)}+json`,
  "application/json\u0000",
  "application/jsonx",
  "application/+json",
  "text/json",
  "text/plain",
  "application/x-www-form-urlencoded",
  "multipart/form-data; boundary=x",
  "*/*",
  "",
];

export interface FuzzRequest {
  op: Operation;
  method: string;
  url: string;
  headers: Record<string, string>;
  body: string | undefined;
  bodyLabel: BodyLabel;
  tokenLabel: string;
  /** The path parameters as sent (decoded when they decode), for the suite's bookkeeping. */
  pathValues: Record<string, string>;
}

export function requestArb(ops: Operation[], pools: Pools): fc.Arbitrary<FuzzRequest> {
  return fc.constantFrom(...ops).chain((op) => {
    const pathParams = op.params.filter((p) => p.in === "path");
    const queryParams = op.params.filter((p) => p.in === "query");
    const headerParams = op.params.filter((p) => p.in === "header");
    return fc
      .record({
        path: fc.tuple(...pathParams.map((p) => pathValueArb(op, p, pools))),
        query: fc.tuple(...queryParams.map((p) => fc.option(queryValueArb(p, pools), { freq: 2 }))),
        extraQuery: fc.oneof(
          { weight: 8, arbitrary: fc.constant(null) },
          {
            weight: 1,
            arbitrary: fc.tuple(fc.oneof(fc.constantFrom(...PROTO_KEYS, "limit", "cursor", "x"), hostileString()), hostileString()),
          },
        ),
        headers: fc.tuple(
          ...headerParams.map((p) =>
            fc.option(
              fc.oneof(validArb(p.schema, pools).map(paramText), hostileString(), fc.constantFrom("job:x", "JoB:1", "a".repeat(129))),
              { freq: 2 },
            ),
          ),
        ),
        token: fc.nat(),
        body: op.body
          ? bodyArb(op.body, pools)
          : fc.oneof(
              { weight: 9, arbitrary: fc.constant({ label: "none" as BodyLabel, text: undefined as string | undefined }) },
              { weight: 1, arbitrary: fc.constant({ label: "raw" as BodyLabel, text: "{}" }) },
            ),
        contentType: fc.oneof(
          { weight: 16, arbitrary: fc.constant("application/json") },
          { weight: 3, arbitrary: fc.constantFrom(...CONTENT_TYPES) },
          { weight: 1, arbitrary: fc.constant(null) },
        ),
        method: fc.oneof(
          { weight: 30, arbitrary: fc.constant(op.method) },
          { weight: 1, arbitrary: fc.constantFrom("GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD") },
        ),
        upgrade: fc.oneof({ weight: 4, arbitrary: fc.constant(false) }, { weight: 1, arbitrary: fc.constant(true) }),
        ip: fc.ipV4(),
      })
      .map((g) => {
        const pathValues: Record<string, string> = {};
        let path = op.path;
        pathParams.forEach((p, i) => {
          const v = g.path[i]!;
          try {
            pathValues[p.name] = decodeURIComponent(v);
          } catch {
            pathValues[p.name] = v;
          }
          path = path.replace(`{${p.name}}`, v);
        });
        const qs: string[] = [];
        queryParams.forEach((p, i) => {
          const v = g.query[i];
          if (v !== null && v !== undefined) qs.push(`${enc(p.name)}=${enc(v)}`);
        });
        if (g.extraQuery) qs.push(`${enc(g.extraQuery[0])}=${enc(g.extraQuery[1])}`);
        const headers: Record<string, string> = { "cf-connecting-ip": g.ip };
        headerParams.forEach((p, i) => {
          const v = g.headers[i];
          if (v !== null && v !== undefined) headers[p.name] = v;
        });
        const token = pools.tokens[g.token % pools.tokens.length]!;
        if (token.value !== null) headers.authorization = token.value;
        const method = g.method;
        const body = method === "GET" || method === "HEAD" ? undefined : g.body.text;
        if (body !== undefined && g.contentType !== null) headers["content-type"] = g.contentType;
        // Only a GET can be a WebSocket handshake; workerd's service transport turns any request carrying
        // `Upgrade: websocket` into one (a GET without its body), which would test the runtime, not the relay.
        if (g.upgrade && method === "GET") headers.upgrade = "websocket";
        return {
          op,
          method,
          url: `${path}${qs.length ? `?${qs.join("&")}` : ""}`,
          headers,
          body,
          bodyLabel: body === undefined ? "none" : g.body.label,
          tokenLabel: token.label,
          pathValues,
        } satisfies FuzzRequest;
      });
  });
}

/** Headers whose value a `Headers` object refuses (so the request could never be sent). */
export function sendableHeaders(headers: Record<string, string>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(headers)) {
    // Header values may not hold NUL, CR or LF, nor start or end with whitespace issues the runtime rejects.
    out[k] = v.replace(/[\u0000\r\n]/g, "").replace(/[^\u0009\u0020-\u007e\u0080-\u00ff]/g, "?");
  }
  return out;
}
