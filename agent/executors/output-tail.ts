/**
 * Keeps the last `maxBytes` (UTF-8) of a command's output, so a chatty command cannot
 * grow the agent's memory or the response frame without bound.
 */
export class OutputTail {
  readonly maxBytes: number;
  #chunks: string[] = [];
  #bytes = 0;
  #dropped = 0;

  constructor(maxBytes: number) {
    this.maxBytes = maxBytes;
  }

  push(text: string): void {
    if (text === "") return;
    this.#chunks.push(text);
    this.#bytes += Buffer.byteLength(text);
    while (this.#bytes > this.maxBytes && this.#chunks.length > 0) {
      const first = this.#chunks[0]!;
      const size = Buffer.byteLength(first);
      const excess = this.#bytes - this.maxBytes;
      if (size <= excess) {
        this.#chunks.shift();
        this.#bytes -= size;
        this.#dropped += size;
      } else {
        const kept = utf8Suffix(first, size - excess);
        const keptBytes = Buffer.byteLength(kept);
        this.#chunks[0] = kept;
        this.#bytes -= size - keptBytes;
        this.#dropped += size - keptBytes;
      }
    }
  }

  /** Bytes dropped from the front so far. */
  get droppedBytes(): number {
    return this.#dropped;
  }

  /** The kept output, preceded by a one-line note when the front was dropped. */
  text(): string {
    const body = this.#chunks.join("");
    return this.#dropped > 0 ? `[output truncated: first ${this.#dropped} bytes dropped]\n${body}` : body;
  }
}

/** The longest suffix of `text` that fits in `maxBytes` of UTF-8, cut on a character boundary. */
export function utf8Suffix(text: string, maxBytes: number): string {
  const buf = Buffer.from(text);
  if (buf.length <= maxBytes) return text;
  let start = buf.length - maxBytes;
  // Skip UTF-8 continuation bytes (10xxxxxx) so no character is cut in half.
  while (start < buf.length && (buf[start]! & 0xc0) === 0x80) start++;
  return buf.subarray(start).toString("utf8");
}

/** Splits `text` into pieces of at most `maxBytes` UTF-8 bytes each, on character boundaries. */
export function splitUtf8(text: string, maxBytes: number): string[] {
  const buf = Buffer.from(text);
  if (buf.length <= maxBytes) return text === "" ? [] : [text];
  const pieces: string[] = [];
  let start = 0;
  while (start < buf.length) {
    let end = Math.min(start + maxBytes, buf.length);
    while (end < buf.length && end > start && (buf[end]! & 0xc0) === 0x80) end--;
    pieces.push(buf.subarray(start, end).toString("utf8"));
    start = end;
  }
  return pieces;
}
