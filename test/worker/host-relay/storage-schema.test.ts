import { runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { HOST_RELAY_BASELINE, HOST_RELAY_MIGRATIONS } from "../../../worker/host-relay/storage-schema.ts";
import { applySqlMigrations, foldMigrations } from "../../../worker/sql-migrations.ts";
import { relayStub } from "../helpers.ts";

/** Every table's columns and every index's definition, as SQLite reports them (ALTER rewrites a table's SQL text, so not that). */
function describeSchema(sql: SqlStorage) {
  const objects = sql
    .exec<{ type: string; name: string; tbl_name: string; sql: string | null }>(
      "SELECT type, name, tbl_name, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' AND name NOT LIKE '_cf_%' ORDER BY type, name",
    )
    .toArray();
  return objects.map((o) =>
    o.type === "table"
      ? { table: o.name, columns: sql.exec(`SELECT name, type, "notnull", dflt_value, pk FROM pragma_table_info('${o.name}')`).toArray() }
      : { index: o.name, on: o.tbl_name, sql: o.sql?.replace(/\s+/g, " ") ?? null },
  );
}

async function schemaOf(build: (sql: SqlStorage) => void) {
  return runInDurableObject(relayStub(crypto.randomUUID()), (_instance, state) => {
    build(state.storage.sql);
    return {
      schema: describeSchema(state.storage.sql),
      versions: state.storage.sql.exec<{ version: number }>("SELECT version FROM _migrations ORDER BY version").toArray(),
    };
  });
}

describe("HostRelay schema baseline", () => {
  it("a fresh object gets the same tables, columns and indexes as one migrated step by step, and the same versions", async () => {
    expect(HOST_RELAY_BASELINE, "the HostRelay migrations fold into a baseline").toBeDefined();
    expect(HOST_RELAY_BASELINE!.sql).not.toMatch(/ALTER/i);
    const stepwise = await schemaOf((sql) => {
      for (let v = 1; v <= HOST_RELAY_MIGRATIONS.length; v++) applySqlMigrations(sql, HOST_RELAY_MIGRATIONS.slice(0, v));
    });
    const fresh = await schemaOf((sql) => applySqlMigrations(sql, HOST_RELAY_MIGRATIONS, HOST_RELAY_BASELINE));
    expect(stepwise.schema.length).toBeGreaterThan(10);
    expect(fresh.schema).toEqual(stepwise.schema);
    expect(fresh.versions.map((r) => r.version)).toEqual(HOST_RELAY_MIGRATIONS.map((_, i) => i + 1));
  });

  it("an object on an older version runs only the migrations after it, not the baseline", async () => {
    const upgraded = await schemaOf((sql) => {
      applySqlMigrations(sql, HOST_RELAY_MIGRATIONS.slice(0, 1));
      applySqlMigrations(sql, HOST_RELAY_MIGRATIONS, HOST_RELAY_BASELINE);
    });
    const stepwise = await schemaOf((sql) => applySqlMigrations(sql, HOST_RELAY_MIGRATIONS));
    expect(upgraded.schema).toEqual(stepwise.schema);
    expect(upgraded.versions).toEqual(stepwise.versions);
  });

  it("folding refuses what it cannot fold: an ALTER of an unknown table, or any other statement", () => {
    expect(foldMigrations(["CREATE TABLE a (x INTEGER)", "ALTER TABLE b ADD COLUMN y TEXT"])).toBeNull();
    expect(foldMigrations(["CREATE TABLE a (x INTEGER)", "ALTER TABLE a RENAME COLUMN x TO y"])).toBeNull();
    expect(
      foldMigrations(["CREATE TABLE a (x INTEGER); -- a; comment\n", "ALTER TABLE a ADD COLUMN y TEXT; CREATE INDEX a_y ON a(y)"]),
    ).toEqual({
      version: 2,
      sql: "CREATE TABLE a (x INTEGER, y TEXT);\nCREATE INDEX a_y ON a(y)",
    });
  });
});
