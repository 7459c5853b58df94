/** Mutations of a valid JSON value: drop a field, change a type, hostile numbers and strings, extra keys, long arrays. */
import fc from "fast-check";
import { hostileNumber, hostileString, PROTO_KEYS, withOwnKey, wrongTypeValue } from "./hostile.ts";

type Path = (string | number)[];

function paths(v: unknown, prefix: Path = [], out: Path[] = []): Path[] {
  out.push(prefix);
  if (Array.isArray(v)) v.forEach((x, i) => paths(x, [...prefix, i], out));
  else if (v && typeof v === "object") for (const [k, x] of Object.entries(v)) paths(x, [...prefix, k], out);
  return out;
}

function getAt(v: any, p: Path): any {
  return p.reduce((o, k) => (o == null ? undefined : o[k]), v);
}

function setAt(root: unknown, p: Path, f: (old: any) => any): unknown {
  if (p.length === 0) return f(root);
  const clone = JSON.parse(JSON.stringify(root ?? null));
  const parent = getAt(clone, p.slice(0, -1));
  if (parent && typeof parent === "object") parent[p[p.length - 1]!] = f(parent[p[p.length - 1]!]);
  return clone;
}

export type Mutation =
  | { op: "drop"; at: number }
  | { op: "wrong_type"; at: number; value: unknown }
  | { op: "number"; at: number; value: number }
  | { op: "string"; at: number; value: string }
  | { op: "add_key"; at: number; key: string; value: unknown }
  | { op: "grow_array"; at: number; n: number };

export const mutationArb: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ op: fc.constant("drop" as const), at: fc.nat() }),
  fc.record({ op: fc.constant("wrong_type" as const), at: fc.nat(), value: wrongTypeValue() }),
  fc.record({ op: fc.constant("number" as const), at: fc.nat(), value: hostileNumber(1, 100) }),
  fc.record({ op: fc.constant("string" as const), at: fc.nat(), value: hostileString() }),
  fc.record({
    op: fc.constant("add_key" as const),
    at: fc.nat(),
    key: fc.oneof(fc.constantFrom(...PROTO_KEYS), hostileString(), fc.constantFrom("extra", "command_type", "host_id", "status")),
    value: wrongTypeValue(),
  }),
  fc.record({ op: fc.constant("grow_array" as const), at: fc.nat(), n: fc.constantFrom(65, 201, 1000, 1601) }),
);

export function applyMutation(value: unknown, m: Mutation): unknown {
  const all = paths(value);
  const p = all[m.at % all.length]!;
  switch (m.op) {
    case "drop": {
      if (p.length === 0) return undefined;
      const parentPath = p.slice(0, -1);
      return setAt(value, parentPath, (parent) => {
        if (Array.isArray(parent)) return parent.filter((_, i) => i !== p[p.length - 1]);
        const { [p[p.length - 1] as string]: _drop, ...rest } = parent;
        return rest;
      });
    }
    case "wrong_type":
      return setAt(value, p, () => m.value);
    case "number":
      return setAt(value, p, () => m.value);
    case "string":
      return setAt(value, p, () => m.value);
    case "add_key": {
      const objects = all.filter((q) => {
        const o = getAt(value, q);
        return o && typeof o === "object" && !Array.isArray(o);
      });
      if (objects.length === 0) return value;
      const q = objects[m.at % objects.length]!;
      return setAt(value, q, (o) => withOwnKey(o, m.key, m.value));
    }
    case "grow_array": {
      const arrays = all.filter((q) => Array.isArray(getAt(value, q)));
      if (arrays.length === 0) return value;
      const q = arrays[m.at % arrays.length]!;
      return setAt(value, q, (a: unknown[]) => Array.from({ length: m.n }, (_, i) => a[i % Math.max(1, a.length)] ?? `x${i}`));
    }
  }
}
