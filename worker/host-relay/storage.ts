import { MetaTable } from "../meta-table.ts";
import { applySqlMigrations } from "../sql-migrations.ts";
import { CommandStore } from "./command-store.ts";
import { CommandViews } from "./command-views.ts";
import { DeadLetterStore } from "./dead-letter-store.ts";
import { FrameErrorStore } from "./frame-error-store.ts";
import { OutboxStore } from "./outbox-store.ts";
import { OutputStore } from "./output-store.ts";
import { HOST_RELAY_BASELINE, HOST_RELAY_MIGRATIONS } from "./storage-schema.ts";

export type { CommandRow, NewCommand, Transition } from "./command-store.ts";
export type { OutboxRow } from "./outbox-store.ts";
export { MAX_STORED_OUTPUT_BYTES } from "./output-store.ts";

/** A HostRelay's SQLite storage: one store per responsibility, all over the same database. */
export class HostRelayStorage {
  readonly #sql: SqlStorage;
  readonly commands: CommandStore;
  readonly outputs: OutputStore;
  readonly deadLetters: DeadLetterStore;
  readonly outbox: OutboxStore;
  readonly frameErrors: FrameErrorStore;
  readonly views: CommandViews;

  constructor(storage: DurableObjectStorage) {
    this.#sql = storage.sql;
    this.commands = new CommandStore(this.#sql);
    this.outputs = new OutputStore(this.#sql);
    this.deadLetters = new DeadLetterStore(this.#sql);
    this.outbox = new OutboxStore(this.#sql);
    this.frameErrors = new FrameErrorStore(this.#sql);
    this.views = new CommandViews(this.#sql, this.outputs);
    this.#meta = new MetaTable(this.#sql);
  }

  /** Whether this object has tables yet. A relay is created lazily: reads for an unknown host write nothing. */
  initialized = false;

  /** Brings existing storage up to date; leaves an empty object empty. */
  open(): void {
    const existing = this.#sql.exec("SELECT name FROM sqlite_master WHERE type = 'table' AND name = '_migrations'").toArray().length > 0;
    if (existing) this.initialize();
  }

  /** Creates or migrates the tables (the first write for a registered host). */
  initialize(): void {
    applySqlMigrations(this.#sql, HOST_RELAY_MIGRATIONS, HOST_RELAY_BASELINE);
    this.initialized = true;
  }

  /** Meta rows, read once per instance (only this object writes them). */
  readonly #meta: MetaTable;

  getMeta(key: string): string | null {
    return this.initialized ? this.#meta.get(key) : null;
  }

  setMeta(key: string, value: string): void {
    this.#meta.set(key, value);
  }
}
