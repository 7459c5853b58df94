/**
 * Whether a Content-Type names JSON in the form the OpenAPI body validator accepts:
 * `application/json` or `application/<x>+json`, then `;name=value` parameters.
 *
 * Written as one split and per-part character scans rather than a regular expression: the header is
 * attacker-controlled and checked before authentication, so the work must stay linear in its length
 * (a backtracking pattern here once stalled the isolate for seconds on a 107-byte header).
 */
export function isJsonContentType(header: string): boolean {
  const parts = header.split(";");
  if (!isJsonEssence(parts[0] as string)) return false;
  for (let i = 1; i < parts.length; i++) {
    if (!isParameter(parts[i] as string)) return false;
  }
  return true;
}

const PREFIX = "application/";
const SUFFIX = "json";

function isJsonEssence(essence: string): boolean {
  if (essence.length < PREFIX.length + SUFFIX.length) return false;
  if (essence.slice(0, PREFIX.length).toLowerCase() !== PREFIX) return false;
  const subtype = essence.slice(PREFIX.length).toLowerCase();
  if (subtype === SUFFIX) return true;
  // A structured suffix: `<name>+json`, where the name is letters, dots and dashes.
  if (!subtype.endsWith(`+${SUFFIX}`)) return false;
  const name = subtype.slice(0, -(SUFFIX.length + 1));
  if (name.length === 0) return false;
  for (let i = 0; i < name.length; i++) {
    const c = name.charCodeAt(i);
    if (!(isLower(c) || c === 0x2e || c === 0x2d)) return false;
  }
  return true;
}

/** ` name=value`: optional leading whitespace, a token name, `=`, and a non-empty value. */
function isParameter(part: string): boolean {
  let i = 0;
  while (i < part.length && isWhitespace(part.charCodeAt(i))) i++;
  const nameStart = i;
  while (i < part.length && isNameChar(part.charCodeAt(i))) i++;
  if (i === nameStart || part.charCodeAt(i) !== 0x3d) return false;
  return i + 1 < part.length;
}

function isLower(c: number): boolean {
  return c >= 0x61 && c <= 0x7a;
}

function isNameChar(c: number): boolean {
  return isLower(c) || (c >= 0x41 && c <= 0x5a) || (c >= 0x30 && c <= 0x39) || c === 0x2d;
}

function isWhitespace(c: number): boolean {
  return c === 0x20 || c === 0x09;
}
