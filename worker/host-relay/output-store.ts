import type { CommandRow } from "./command-store.ts";

/** Most output kept per command; later chunks are dropped and the cut is noted once. */
export const MAX_STORED_OUTPUT_BYTES = 1024 * 1024;

export type AppendResult = "stored" | "duplicate" | "truncated" | "dropped";

/** Owns the `outputs` table: output streamed in `status` frames, kept in `seq` order. */
export class OutputStore {
  readonly #sql: SqlStorage;

  constructor(sql: SqlStorage) {
    this.#sql = sql;
  }

  /** Stores one chunk; a resent frame (same frame id) is a no-op. "truncated" the first time the limit is hit. */
  append(row: CommandRow, frameId: string, seq: number | null, chunk: string, now: number): AppendResult {
    const bytes = new TextEncoder().encode(chunk).byteLength;
    if (row.output_bytes + bytes > MAX_STORED_OUTPUT_BYTES) {
      if (row.output_bytes > MAX_STORED_OUTPUT_BYTES) return "dropped";
      this.#sql.exec("UPDATE commands SET output_bytes = ? WHERE message_id = ?", MAX_STORED_OUTPUT_BYTES + 1, row.message_id);
      row.output_bytes = MAX_STORED_OUTPUT_BYTES + 1;
      return "truncated";
    }
    const cursor = this.#sql.exec(
      "INSERT INTO outputs (message_id, frame_id, seq, chunk, at) VALUES (?, ?, ?, ?, ?) ON CONFLICT(frame_id) DO NOTHING",
      row.message_id,
      frameId,
      seq,
      chunk,
      now,
    );
    if (cursor.rowsWritten === 0) return "duplicate";
    this.#sql.exec("UPDATE commands SET output_bytes = output_bytes + ? WHERE message_id = ?", bytes, row.message_id);
    row.output_bytes += bytes;
    return "stored";
  }

  /** The highest `seq` stored for the command (null: none), so a live view knows which streamed chunks GET already holds. */
  lastSeq(messageId: string): number | null {
    return this.#sql.exec<{ s: number | null }>("SELECT MAX(seq) AS s FROM outputs WHERE message_id = ?", messageId).one().s;
  }

  read(messageId: string): string {
    return this.#sql
      .exec<{ chunk: string }>("SELECT chunk FROM outputs WHERE message_id = ? ORDER BY seq, id", messageId)
      .toArray()
      .map((r) => r.chunk)
      .join("");
  }
}
