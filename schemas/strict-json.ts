/**
 * Strict JSON: `JSON.parse` keeps the last of two equal keys, so `{"command_type":"system_info",
 * "command_type":"shell"}` reads as shell to us and possibly as system_info to whatever logged or
 * checked it first. Every JSON text that crosses a trust boundary (REST bodies, frames in both
 * directions) goes through `parseStrictJson`, which refuses duplicate keys at any depth (keys
 * compared after unescaping, so `"a"` and `"\u0061"` collide) and nesting past a depth limit.
 *
 * One linear pass over the text with a stack of per-object key sets, then `JSON.parse` for the
 * value. The scan only tracks structure (strings, brackets, commas); syntax is `JSON.parse`'s job,
 * and a syntax error is reported as such even when the scan saw something else first.
 */

/** Deepest nesting of objects and arrays accepted. */
export const MAX_JSON_DEPTH = 64;

export type StrictJson =
  | { ok: true; value: unknown }
  | { ok: false; reason: "syntax" | "too_deep"; detail: string }
  | { ok: false; reason: "duplicate_key"; detail: string; path: string };

interface Container {
  /** Keys seen so far in this object; null for an array. */
  keys: Set<string> | null;
  /** The current member's key (objects) or index (arrays), for paths. */
  at: string | number;
}

const QUOTE = 0x22;
const BACKSLASH = 0x5c;

export function parseStrictJson(text: string, maxDepth: number = MAX_JSON_DEPTH): StrictJson {
  const scan = scanStructure(text, maxDepth);
  if (scan?.reason === "too_deep") return { ok: false, reason: "too_deep", detail: `JSON nested deeper than ${maxDepth} levels` };
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    return { ok: false, reason: "syntax", detail: (err as Error).message };
  }
  if (scan)
    return { ok: false, reason: "duplicate_key", path: scan.path, detail: `duplicate key ${JSON.stringify(scan.key)} at ${scan.path}` };
  return { ok: true, value };
}

type ScanProblem = { reason: "too_deep" } | { reason: "duplicate_key"; key: string; path: string };

/** Finds the first duplicate key or excess depth; null if there is neither. Never throws, on any input. */
function scanStructure(text: string, maxDepth: number): ScanProblem | null {
  const stack: Container[] = [];
  let expectKey = false;
  let i = 0;
  const n = text.length;
  while (i < n) {
    const c = text.charCodeAt(i);
    if (c === QUOTE) {
      const end = stringEnd(text, i + 1);
      const top = stack[stack.length - 1];
      if (expectKey && top?.keys) {
        const key = decodeKey(text.slice(i + 1, end));
        if (top.keys.has(key)) return { reason: "duplicate_key", key, path: pathOf(stack, key) };
        top.keys.add(key);
        top.at = key;
        expectKey = false;
      }
      i = end + 1;
      continue;
    }
    if (c === 0x7b /* { */ || c === 0x5b /* [ */) {
      if (stack.length >= maxDepth) return { reason: "too_deep" };
      const isObject = c === 0x7b;
      stack.push({ keys: isObject ? new Set() : null, at: isObject ? "" : 0 });
      expectKey = isObject;
    } else if (c === 0x7d /* } */ || c === 0x5d /* ] */) {
      stack.pop();
      expectKey = false;
    } else if (c === 0x2c /* , */) {
      const top = stack[stack.length - 1];
      if (top?.keys) expectKey = true;
      else if (top) top.at = (top.at as number) + 1;
    }
    i++;
  }
  return null;
}

/** Index of the quote closing a string whose contents start at `from` (or the text's length if unclosed). */
function stringEnd(text: string, from: number): number {
  let j = from;
  for (;;) {
    const q = text.indexOf('"', j);
    if (q < 0) return text.length;
    // The quote is escaped if an odd number of backslashes precede it.
    let k = q - 1;
    while (k >= from && text.charCodeAt(k) === BACKSLASH) k--;
    if ((q - 1 - k) % 2 === 0) return q;
    j = q + 1;
  }
}

function decodeKey(raw: string): string {
  if (!raw.includes("\\")) return raw;
  try {
    return JSON.parse(`"${raw}"`) as string;
  } catch {
    return raw; // malformed escape: JSON.parse of the whole text reports it
  }
}

/** Dotted path of `key` in the innermost object, like validation errors (`parameters.packages.0`). */
function pathOf(stack: Container[], key: string): string {
  const parts = stack.slice(0, -1).map((s) => String(s.at));
  parts.push(key);
  return parts.join(".");
}
