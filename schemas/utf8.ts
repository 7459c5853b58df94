/**
 * UTF-8 byte counting without encoding a copy: frame and body limits are in bytes, and a
 * string's `length` counts UTF-16 code units (a 3-byte character is 1 unit, an emoji 2 units
 * for 4 bytes), so `length` alone lets multi-byte text through at up to 3× the limit.
 */

/** The number of bytes `s` takes in UTF-8 (a lone surrogate counts as U+FFFD, 3 bytes, as TextEncoder writes it). */
export function utf8ByteLength(s: string): number {
  return countUtf8(s, Number.POSITIVE_INFINITY);
}

/**
 * Whether `s` takes more than `maxBytes` bytes in UTF-8. Linear, allocation-free, and usually
 * constant time: every code unit takes 1 to 3 bytes, so the length alone decides most strings;
 * only those in between are counted, and the count stops as soon as it passes the limit.
 */
export function exceedsUtf8Bytes(s: string, maxBytes: number): boolean {
  if (s.length > maxBytes) return true;
  if (s.length * 3 <= maxBytes) return false;
  return countUtf8(s, maxBytes) > maxBytes;
}

/** Counts UTF-8 bytes, stopping early once the count passes `stopAbove`. */
function countUtf8(s: string, stopAbove: number): number {
  let bytes = 0;
  for (let i = 0; i < s.length && bytes <= stopAbove; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) bytes += 1;
    else if (c < 0x800) bytes += 2;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length && isLowSurrogate(s.charCodeAt(i + 1))) {
      bytes += 4;
      i++;
    } else bytes += 3;
  }
  return bytes;
}

function isLowSurrogate(c: number): boolean {
  return c >= 0xdc00 && c <= 0xdfff;
}
