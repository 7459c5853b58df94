/**
 * An object's `meta (key TEXT PRIMARY KEY, value TEXT)` rows, each read at most once per instance
 * and then kept by this class's own writes. Only the owning object writes its meta table, and a
 * value is cached only after its statement succeeded (a failed commit resets the object, and with
 * it this copy), so the copy stays true for the instance's life.
 */
export class MetaTable {
  readonly #sql: SqlStorage;
  readonly #cache = new Map<string, string | null>();

  constructor(sql: SqlStorage) {
    this.#sql = sql;
  }

  get(key: string): string | null {
    const cached = this.#cache.get(key);
    if (cached !== undefined) return cached;
    const value = this.#sql.exec<{ value: string }>("SELECT value FROM meta WHERE key = ?", key).toArray()[0]?.value ?? null;
    this.#cache.set(key, value);
    return value;
  }

  set(key: string, value: string | number): void {
    const text = String(value);
    this.#sql.exec("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value", key, text);
    this.#cache.set(key, text);
  }

  /** Stores `value` unless the key has one already (an epoch chosen once). */
  setOnce(key: string, value: string): void {
    this.#sql.exec("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO NOTHING", key, value);
    this.#cache.delete(key);
  }
}
