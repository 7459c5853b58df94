import { splitUtf8 } from "./output-tail.ts";

/** Largest `output` chunk in one `status` progress frame, in UTF-8 bytes. */
export const PROGRESS_CHUNK_BYTES = 16 * 1024;
/**
 * Output streamed as progress per command stops here; the response still carries the tail.
 * Matches what the relay stores per command (1 MiB), so streaming more would only be discarded.
 */
export const MAX_STREAMED_BYTES = 1024 * 1024;

export interface ProgressStreamOptions {
  /** Gathers output for this long before sending it as one chunk. Default 200 ms. */
  intervalMs?: number;
  /** Largest chunk, bytes. Default 16 KiB. */
  chunkBytes?: number;
  /** Total streamed bytes before streaming stops. Default 1 MiB. */
  maxStreamedBytes?: number;
}

/**
 * Coalesces output into progress chunks: at most one send per interval for trickling output,
 * full chunks at once for a flood, so a chatty command costs a bounded number of frames.
 */
export class ProgressStream {
  readonly #send: (chunk: string) => void;
  readonly #intervalMs: number;
  readonly #chunkBytes: number;
  readonly #maxStreamed: number;
  #pending = "";
  #pendingBytes = 0;
  #streamed = 0;
  #timer: NodeJS.Timeout | null = null;
  #capped = false;

  constructor(send: (chunk: string) => void, opts: ProgressStreamOptions = {}) {
    this.#send = send;
    this.#intervalMs = opts.intervalMs ?? 200;
    this.#chunkBytes = opts.chunkBytes ?? PROGRESS_CHUNK_BYTES;
    this.#maxStreamed = opts.maxStreamedBytes ?? MAX_STREAMED_BYTES;
  }

  write(text: string): void {
    if (this.#capped || text === "") return;
    this.#pending += text;
    this.#pendingBytes += Buffer.byteLength(text);
    if (this.#pendingBytes >= this.#chunkBytes) this.#emit(false);
    if (this.#pending !== "" && this.#timer === null) {
      this.#timer = setTimeout(() => {
        this.#timer = null;
        this.#emit(true);
      }, this.#intervalMs);
    }
  }

  /** Sends whatever is pending; call once the process has finished, before the response. */
  end(): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
    this.#emit(true);
  }

  // Full chunks always; the partial remainder only when `all` (timer or end).
  #emit(all: boolean): void {
    const pieces = splitUtf8(this.#pending, this.#chunkBytes);
    const last = pieces.at(-1);
    const keep = !all && last !== undefined && Buffer.byteLength(last) < this.#chunkBytes ? pieces.pop()! : "";
    this.#pending = keep;
    this.#pendingBytes = Buffer.byteLength(keep);
    for (const piece of pieces) {
      if (this.#capped) break;
      const bytes = Buffer.byteLength(piece);
      if (this.#streamed + bytes > this.#maxStreamed) {
        this.#capped = true;
        this.#pending = "";
        this.#send(`\n[streamed output limit of ${this.#maxStreamed} bytes reached; the response carries the last part]\n`);
        break;
      }
      this.#streamed += bytes;
      this.#send(piece);
    }
  }
}
