/**
 * The relay's other pure helpers under Deno: backoff, Content-Type matching, strict JSON, list
 * cursors, and a wire frame decoded through the zod schemas (zod resolved from node_modules, offline).
 */
import assert from "node:assert/strict";
import { decodeFrame } from "../../schemas/frames.ts";
import { AgentFrame } from "../../schemas/messages.ts";
import { managerNameProblem, packageNameProblem } from "../../schemas/package-names.ts";
import { parseStrictJson } from "../../schemas/strict-json.ts";
import { backoffMs, OUTBOX_BACKOFF } from "../../worker/backoff.ts";
import { Cursor } from "../../worker/cursor.ts";
import { isJsonContentType } from "../../worker/media-type.ts";

Deno.test("backoff: full jitter under an exponential, capped ceiling", () => {
  const policy = { baseMs: 1000, capMs: 8000 };
  assert.equal(
    backoffMs(1, policy, () => 0),
    0,
  );
  assert.equal(
    backoffMs(1, policy, () => 0.999),
    999,
  );
  assert.equal(
    backoffMs(3, policy, () => 0.5),
    2000,
  );
  assert.equal(
    backoffMs(30, policy, () => 0.5),
    4000,
  ); // capped at 8 s
  assert.equal(
    backoffMs(0, policy, () => 0.5),
    500,
  ); // attempt 0 counts as the first
  assert.equal(
    backoffMs(10_000, OUTBOX_BACKOFF, () => 0.999_999),
    59_999,
  );
});

Deno.test("media type: application/json and +json, parameters only", () => {
  for (const ok of ["application/json", "Application/JSON; charset=utf-8", "application/problem+json"])
    assert.equal(isJsonContentType(ok), true, ok);
  for (const bad of ["text/json", "application/jsonx", "application/+json", "application/json;", "application/json; charset"]) {
    assert.equal(isJsonContentType(bad), false, bad);
  }
  // Linear on hostile input.
  const start = performance.now();
  assert.equal(isJsonContentType(`application/${"a.".repeat(50_000)}json`), false);
  assert.ok(performance.now() - start < 500);
});

Deno.test("strict JSON refuses duplicate keys, also after unescaping, and deep nesting", () => {
  assert.deepEqual(parseStrictJson('{"a":1,"b":[1,2]}'), { ok: true, value: { a: 1, b: [1, 2] } });
  const dup = parseStrictJson('{"command_type":"system_info","\\u0063ommand_type":"shell"}');
  assert.equal(dup.ok, false);
  assert.equal(!dup.ok && dup.reason, "duplicate_key");
  const deep = parseStrictJson("[".repeat(100) + "]".repeat(100));
  assert.equal(!deep.ok && deep.reason, "too_deep");
  assert.equal((parseStrictJson("{") as { reason: string }).reason, "syntax");
});

Deno.test("cursors: one codec, foreign cursors refused", () => {
  assert.equal(Cursor.encode("c", 123), "c123");
  assert.equal(Cursor.encode("c", null), null);
  assert.equal(Cursor.decodeNumber("c", "c123"), 123);
  assert.equal(Cursor.decodeNumber("c", undefined), null);
  assert.equal(Cursor.decodeNumber("c", "s123"), "invalid");
  assert.equal(Cursor.decodeNumber("c", "c12x"), "invalid");
  assert.equal(Cursor.decodeString("h", "habc", /^[a-z]+$/), "abc");
  assert.equal(Cursor.rpcInvalid().ok, false);
});

Deno.test("schemas: frames decode through zod; package names follow the grammar", () => {
  const ack = {
    message_id: crypto.randomUUID(),
    timestamp: new Date().toISOString(),
    message_type: "ack",
    original_message_id: crypto.randomUUID(),
  };
  const decoded = decodeFrame(JSON.stringify(ack));
  assert.ok(decoded.ok);
  assert.equal(AgentFrame.safeParse(decoded.json).success, true);
  assert.equal(AgentFrame.safeParse({ ...ack, original_message_id: "nope" }).success, false);
  const dup = decodeFrame('{"message_type":"ack","message_type":"hello"}');
  assert.equal(!dup.ok && dup.code, "ERR_FRAME_MALFORMED_JSON");
  assert.equal(packageNameProblem("nginx"), null);
  assert.notEqual(packageNameProblem("-y"), null);
  assert.notEqual(packageNameProblem("http://evil/x.deb"), null);
  assert.equal(managerNameProblem("apt-get", "nginx=1.24.0-1~deb12u1"), null);
  assert.notEqual(managerNameProblem("apt-get", "Nginx"), null);
});
