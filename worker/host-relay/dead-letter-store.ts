import type { DeadLetter } from "../../schemas/index.ts";
import type { CommandRow } from "./command-store.ts";

const iso = (ms: number): string => new Date(ms).toISOString();

/** Owns the `dead_letters` table: commands that ran out of attempts, listable and requeueable over REST. */
export class DeadLetterStore {
  readonly #sql: SqlStorage;

  constructor(sql: SqlStorage) {
    this.#sql = sql;
  }

  add(messageId: string, now: number, reason: string): void {
    this.#sql.exec(
      "INSERT INTO dead_letters (message_id, dead_lettered_at, reason) VALUES (?, ?, ?) ON CONFLICT(message_id) DO UPDATE SET dead_lettered_at = excluded.dead_lettered_at, reason = excluded.reason",
      messageId,
      now,
      reason,
    );
  }

  remove(messageId: string): void {
    this.#sql.exec("DELETE FROM dead_letters WHERE message_id = ?", messageId);
  }

  count(): number {
    return this.#sql.exec<{ n: number }>("SELECT COUNT(*) AS n FROM dead_letters").one().n;
  }

  list(limit: number, beforeSeq: number | null): { items: DeadLetter[]; lastSeq: number | null } {
    const rows = this.#sql
      .exec<CommandRow & { dead_lettered_at: number; reason: string }>(
        `SELECT c.*, d.dead_lettered_at, d.reason FROM dead_letters d JOIN commands c USING (message_id)
         WHERE (? IS NULL OR c.seq < ?) ORDER BY c.seq DESC LIMIT ?`,
        beforeSeq,
        beforeSeq,
        limit + 1,
      )
      .toArray();
    const page = rows.slice(0, limit);
    return {
      items: page.map((r) => ({
        message_id: r.message_id,
        command_type: r.command_type as DeadLetter["command_type"],
        attempts: r.attempts,
        reason: r.reason,
        dead_lettered_at: iso(r.dead_lettered_at),
        created_at: iso(r.created_at),
        expires_at: iso(r.expires_at),
      })),
      lastSeq: rows.length > limit ? page[page.length - 1]!.seq : null,
    };
  }
}
