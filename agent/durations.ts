const DURATION_UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };
const BYTE_UNITS: Record<string, number> = { "": 1, b: 1, k: 1024, kb: 1024, kib: 1024, m: 1024 ** 2, mb: 1024 ** 2, mib: 1024 ** 2 };

/**
 * Parses `500ms`, `1s`, `1.5m`, `12h`, `35d` into milliseconds. A bare number means seconds,
 * the unit operators use for timeouts everywhere else in the fleet.
 */
export function parseDuration(input: string | number): number {
  if (typeof input === "number") return checked(input * 1000, String(input));
  const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$/i.exec(input);
  if (!m) throw new RangeError(`not a duration: ${JSON.stringify(input)} (use e.g. 500ms, 30s, 5m, 12h, 35d)`);
  return checked(Number(m[1]) * DURATION_UNITS[(m[2] ?? "s").toLowerCase()]!, input);
}

/** Parses `262144`, `256KiB`, `1MiB` (K/M are binary, as the limits in schemas/ are). */
export function parseBytes(input: string | number): number {
  if (typeof input === "number") return checked(input, String(input));
  const m = /^\s*(\d+)\s*([a-z]*)\s*$/i.exec(input);
  const unit = m ? BYTE_UNITS[m[2]!.toLowerCase()] : undefined;
  if (!m || unit === undefined) throw new RangeError(`not a size: ${JSON.stringify(input)} (use e.g. 262144, 256KiB, 1MiB)`);
  return checked(Number(m[1]) * unit, input);
}

/** `60000` → `60s`, `3024000000` → `35d`: the largest unit that divides evenly. */
export function formatDuration(ms: number): string {
  for (const [unit, size] of [
    ["d", 86_400_000],
    ["h", 3_600_000],
    ["m", 60_000],
    ["s", 1000],
  ] as const) {
    if (ms >= size && ms % size === 0) return `${ms / size}${unit}`;
  }
  return `${ms}ms`;
}

function checked(value: number, input: string): number {
  if (!Number.isFinite(value) || value < 0) throw new RangeError(`out of range: ${input}`);
  return Math.round(value);
}
