/**
 * Generators for the frame fuzz suite: agent → relay frames, valid and mutated, for real commands
 * (by slot, resolved when the session knows its ids) and unknown ones, plus random JSON, hostile
 * text, binary, oversized multi-byte and duplicate-key frames.
 */
import fc from "fast-check";
import { Limits, nowRfc3339 } from "../../../schemas/index.ts";
import { anyJson, hostileNumber, hostileString, nested } from "./hostile.ts";
import { applyMutation, type Mutation, mutationArb } from "./json-mutations.ts";

/** Which command a frame names: one of the session's real commands, an unknown id, or junk. */
export type Target = { slot: number } | { unknown: true } | { junk: unknown };

export type FrameSpec =
  | {
      kind: "frame";
      type: "ack" | "status" | "response" | "error" | "hello";
      target: Target;
      fields: Record<string, unknown>;
      mutations: Mutation[];
      reuseId: boolean;
    }
  | { kind: "json"; value: unknown }
  | { kind: "text"; text: string }
  | { kind: "binary"; bytes: Uint8Array }
  | { kind: "oversized"; bytes: number; char: string; target: Target }
  | { kind: "duplicate"; key: string; target: Target }
  | { kind: "deep"; depth: number; target: Target };

const targetArb = (slots: number): fc.Arbitrary<Target> =>
  fc.oneof(
    { weight: 6, arbitrary: fc.nat({ max: slots - 1 }).map((slot) => ({ slot })) },
    { weight: 2, arbitrary: fc.constant({ unknown: true as const }) },
    { weight: 1, arbitrary: fc.oneof(hostileString(), hostileNumber(), fc.constant(null)).map((junk) => ({ junk })) },
  );

const outputArb = fc.oneof(
  { weight: 6, arbitrary: fc.string({ maxLength: 40 }) },
  { weight: 2, arbitrary: hostileString() },
  { weight: 1, arbitrary: fc.constantFrom(Limits.MAX_OUTPUT_CHARS, Limits.MAX_OUTPUT_CHARS + 1).map((n) => "o".repeat(n)) },
);

const fieldsFor: Record<string, fc.Arbitrary<Record<string, unknown>>> = {
  ack: fc.constant({}),
  status: fc.record(
    { state: fc.constantFrom("running", "progress"), output: outputArb, seq: fc.oneof(fc.nat({ max: 20 }), hostileNumber(0)) },
    { requiredKeys: ["state"] },
  ),
  response: fc.record(
    {
      status: fc.constantFrom("success", "failure", "timeout", "rejected", "cancelled"),
      result: fc.record(
        {
          output: outputArb,
          exit_code: fc.oneof(fc.integer({ min: -1, max: 255 }), fc.constant(null), hostileNumber()),
          execution_time: fc.oneof(fc.double({ min: 0, max: 1e6, noNaN: true }), hostileNumber(0)),
          installed_packages: fc.array(fc.string({ maxLength: 10 }), { maxLength: 3 }),
          reason: fc.oneof(fc.string({ maxLength: 20 }), fc.constant("r".repeat(4097))),
          extra: anyJson(),
        },
        { requiredKeys: [] },
      ),
    },
    { requiredKeys: ["status"] },
  ),
  error: fc.record({
    code: fc.oneof(
      fc.constantFrom("ERR_FRAME_INVALID", "ERR_FRAME_MALFORMED_JSON", "ERR_FRAME_TOO_LARGE", "ERR_SOMETHING"),
      hostileString(),
    ),
    detail: fc.oneof(fc.string({ maxLength: 30 }), hostileString()),
  }),
  hello: fc.record({
    agent_version: fc.constantFrom("0.1.0", "", "9".repeat(65)),
    protocol_version: fc.constant(1),
    hostname: fc.constantFrom("web-1", "-bad-", "a".repeat(254)),
    os: fc.constant({ name: "debian" }),
    supported_commands: fc.constant(["system_info"]),
  }),
};

export function frameSpecArb(slots: number): fc.Arbitrary<FrameSpec> {
  const t = targetArb(slots);
  const framed = fc.constantFrom("ack", "status", "response", "error", "hello").chain((type) =>
    fc.record({
      kind: fc.constant("frame" as const),
      type: fc.constant(type as "ack"),
      target: t,
      fields: fieldsFor[type]!,
      mutations: fc.oneof(
        { weight: 3, arbitrary: fc.constant([] as Mutation[]) },
        { weight: 4, arbitrary: fc.array(mutationArb, { minLength: 1, maxLength: 2 }) },
      ),
      // Now and then the previous frame's message_id again (a repeated frame).
      reuseId: fc.nat({ max: 9 }).map((n) => n === 0),
    }),
  );
  return fc.oneof(
    { weight: 14, arbitrary: framed },
    { weight: 2, arbitrary: anyJson().map((value) => ({ kind: "json" as const, value })) },
    {
      weight: 2,
      arbitrary: fc
        .oneof(hostileString(), fc.constantFrom("ping", "PING", "pong", "ping ", "{}", "[]", "null", "", '{"message_type":"ack"}'))
        .map((text) => ({ kind: "text" as const, text })),
    },
    { weight: 1, arbitrary: fc.uint8Array({ maxLength: 64 }).map((bytes) => ({ kind: "binary" as const, bytes })) },
    {
      weight: 1,
      arbitrary: fc.record({
        kind: fc.constant("oversized" as const),
        // The limit is counted in UTF-8 bytes: at it, just past it, and far past it in fewer characters.
        bytes: fc.constantFrom(
          Limits.MAX_FRAME_BYTES - 1,
          Limits.MAX_FRAME_BYTES,
          Limits.MAX_FRAME_BYTES + 1,
          Limits.MAX_FRAME_BYTES + 3,
          2 * Limits.MAX_FRAME_BYTES,
        ),
        char: fc.constantFrom("a", "é", "€", "😀"),
        target: t,
      }),
    },
    {
      weight: 1,
      arbitrary: fc.record({
        kind: fc.constant("duplicate" as const),
        key: fc.constantFrom("message_type", "original_message_id", "message_id", "status", "__proto__", "state"),
        target: t,
      }),
    },
    {
      weight: 1,
      arbitrary: fc.record({ kind: fc.constant("deep" as const), depth: fc.constantFrom(62, 63, 64, 65, 1000, 100_000), target: t }),
    },
  );
}

/** One frame ready to send, with the id it carries (if any). */
export interface BuiltFrame {
  raw: string | Uint8Array;
  spec: FrameSpec;
}

function resolve(target: Target, ids: string[]): unknown {
  if ("slot" in target) return ids[target.slot % ids.length];
  if ("unknown" in target) return crypto.randomUUID();
  return target.junk;
}

export function buildFrame(spec: FrameSpec, ids: string[], lastFrameId: string | null): BuiltFrame {
  const envelope = (type: string, target: Target) => ({
    message_id: crypto.randomUUID(),
    timestamp: nowRfc3339(),
    message_type: type,
    original_message_id: resolve(target, ids),
  });
  switch (spec.kind) {
    case "frame": {
      const base: Record<string, unknown> = { ...envelope(spec.type, spec.target), ...spec.fields };
      if (spec.type === "hello") delete base.original_message_id;
      if (spec.reuseId && lastFrameId) base.message_id = lastFrameId;
      const mutated = spec.mutations.reduce<unknown>((v, m) => applyMutation(v, m), base);
      return { raw: mutated === undefined ? "" : JSON.stringify(mutated), spec };
    }
    case "json":
      return { raw: JSON.stringify(spec.value) ?? "null", spec };
    case "text":
      return { raw: spec.text, spec };
    case "binary":
      return { raw: spec.bytes, spec };
    case "oversized": {
      const head = JSON.stringify({ ...envelope("ack", spec.target), pad: "" });
      const room = spec.bytes - new TextEncoder().encode(head).length;
      const charBytes = new TextEncoder().encode(spec.char).length;
      const pad = spec.char.repeat(Math.max(0, Math.floor(room / charBytes))) + "a".repeat(Math.max(0, room % charBytes));
      return { raw: head.replace(`"pad":""`, `"pad":"${pad}"`), spec };
    }
    case "duplicate": {
      const e = envelope("ack", spec.target);
      const json = JSON.stringify(e);
      const value =
        spec.key === "message_type" ? '"ack"' : spec.key === "__proto__" ? "{}" : JSON.stringify(resolve(spec.target, ids) ?? null);
      return { raw: `${json.slice(0, -1)},${JSON.stringify(spec.key)}:${value}}`, spec };
    }
    case "deep": {
      const e = { ...envelope("response", spec.target), status: "success" };
      return { raw: `${JSON.stringify(e).slice(0, -1)},"result":{"x":${nested(spec.depth, "array")}}}`, spec };
    }
  }
}
