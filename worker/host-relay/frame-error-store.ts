const MAX_FRAME_ERRORS = 100;

/** Owns the `frame_errors` table: invalid frames from the agent, newest kept (bounded). */
export class FrameErrorStore {
  readonly #sql: SqlStorage;

  constructor(sql: SqlStorage) {
    this.#sql = sql;
  }

  record(code: string, detail: string, now: number): void {
    this.#sql.exec("INSERT INTO frame_errors (at, code, detail) VALUES (?, ?, ?)", now, code, detail.slice(0, 2000));
    this.#sql.exec(
      "DELETE FROM frame_errors WHERE id <= (SELECT id FROM frame_errors ORDER BY id DESC LIMIT 1 OFFSET ?)",
      MAX_FRAME_ERRORS,
    );
  }

  list(): { at: string; code: string; detail: string }[] {
    return this.#sql
      .exec<{ at: number; code: string; detail: string }>("SELECT at, code, detail FROM frame_errors ORDER BY id")
      .toArray()
      .map((r) => ({ at: new Date(r.at).toISOString(), code: r.code, detail: r.detail }));
  }
}
