/** The tables as migrations 1..`version` leave them, as one script without ALTERs, for objects created from scratch. */
export interface SqlBaseline {
  version: number;
  sql: string;
}

/**
 * Folds migrations into a baseline: each `ALTER TABLE t ADD COLUMN c` becomes part of t's CREATE
 * TABLE (ALTER appends, so the column order is the same); indexes and data statements stay in order.
 * Null when a migration holds anything else (the object then runs the migrations one by one).
 * test/worker/host-relay/storage-schema.test.ts checks the result against the migrations.
 */
export function foldMigrations(migrations: readonly string[]): SqlBaseline | null {
  const tables = new Map<string, string>();
  const script: (string | { table: string })[] = [];
  for (const migration of migrations) {
    // Comments may hold semicolons; the migrations' string literals hold neither "--" nor ";".
    const statements = migration
      .replace(/--[^\n]*/g, "")
      .split(";")
      .map((st) => st.trim().replace(/\s+/g, " "))
      .filter((st) => st !== "");
    for (const st of statements) {
      const create = /^CREATE TABLE (\w+) \(.*\)$/i.exec(st);
      const alter = /^ALTER TABLE (\w+) ADD COLUMN (.+)$/i.exec(st);
      if (create) {
        tables.set(create[1]!, st);
        script.push({ table: create[1]! });
      } else if (alter) {
        const table = tables.get(alter[1]!);
        if (table === undefined) return null;
        tables.set(alter[1]!, `${table.slice(0, -1)}, ${alter[2]})`);
      } else if (/^(CREATE (UNIQUE )?INDEX|UPDATE|DELETE) /i.test(st)) {
        script.push(st);
      } else {
        return null;
      }
    }
  }
  const sql = script.map((st) => (typeof st === "string" ? st : tables.get(st.table)!)).join(";\n");
  return { version: migrations.length, sql };
}

/**
 * Applies a Durable Object's numbered, additive migrations (entry i is version i+1) that its
 * SQLite storage has not seen yet, recording each in `_migrations`. An empty storage given a
 * `baseline` gets it instead of migrations 1..baseline.version: the same tables for a fraction of
 * the work (each ALTER makes SQLite re-read the whole schema), which counts when a job creates
 * thousands of objects at once. Later migrations run on top as usual.
 */
export function applySqlMigrations(sql: SqlStorage, migrations: readonly string[], baseline?: SqlBaseline): void {
  sql.exec("CREATE TABLE IF NOT EXISTS _migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)");
  const applied = sql.exec<{ v: number | null }>("SELECT MAX(version) AS v FROM _migrations").one().v ?? 0;
  if (applied >= migrations.length) return;
  const fromBaseline = applied === 0 && baseline !== undefined && baseline.version <= migrations.length;
  const start = fromBaseline ? baseline.version : applied;
  const scripts = [...(fromBaseline ? [baseline.sql] : []), ...migrations.slice(start)];
  const versions = Array.from({ length: migrations.length - applied }, (_, i) => `(${applied + i + 1}, ${Date.now()})`).join(", ");
  // One script and one call (one transaction either way).
  sql.exec(`${scripts.join(";\n")};\nINSERT INTO _migrations (version, applied_at) VALUES ${versions};`);
}
