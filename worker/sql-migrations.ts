/**
 * Applies a Durable Object's numbered, additive migrations (entry i is version i+1) that its
 * SQLite storage has not seen yet, recording each in `_migrations`.
 */
export function applySqlMigrations(sql: SqlStorage, migrations: readonly string[]): void {
  sql.exec("CREATE TABLE IF NOT EXISTS _migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)");
  const applied = sql.exec<{ v: number | null }>("SELECT MAX(version) AS v FROM _migrations").one().v ?? 0;
  migrations.forEach((migration, index) => {
    const version = index + 1;
    if (version <= applied) return;
    sql.exec(migration);
    sql.exec("INSERT INTO _migrations (version, applied_at) VALUES (?, ?)", version, Date.now());
  });
}
