/**
 * Applies a Durable Object's numbered, additive migrations (entry i is version i+1) that its
 * SQLite storage has not seen yet, recording each in `_migrations`.
 */
export function applySqlMigrations(sql: SqlStorage, migrations: readonly string[]): void {
  sql.exec("CREATE TABLE IF NOT EXISTS _migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)");
  const applied = sql.exec<{ v: number | null }>("SELECT MAX(version) AS v FROM _migrations").one().v ?? 0;
  if (applied >= migrations.length) return;
  // The pending ones as one script (a fresh object's first write runs them all): one call, one transaction either way.
  const pending = migrations.slice(applied);
  const versions = pending.map((_, i) => `(${applied + i + 1}, ${Date.now()})`).join(", ");
  sql.exec(`${pending.join(";\n")};\nINSERT INTO _migrations (version, applied_at) VALUES ${versions};`);
}
