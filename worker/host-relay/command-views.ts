import type { CommandState, CommandSummary, CommandView, StateChange } from "../../schemas/index.ts";
import type { CommandRow } from "./command-store.ts";
import type { OutputStore } from "./output-store.ts";

const iso = (ms: number | null): string | null => (ms === null ? null : new Date(ms).toISOString());

/** Read views of commands for the REST API; writes nothing. */
export class CommandViews {
  readonly #sql: SqlStorage;
  readonly #outputs: OutputStore;

  constructor(sql: SqlStorage, outputs: OutputStore) {
    this.#sql = sql;
    this.#outputs = outputs;
  }

  list(
    hostId: string,
    states: CommandState[] | undefined,
    limit: number,
    beforeSeq: number | null,
  ): { items: CommandSummary[]; lastSeq: number | null } {
    const stateFilter = states?.length ? `AND state IN (${states.map(() => "?").join(",")})` : "";
    const rows = this.#sql
      .exec<CommandRow>(
        `SELECT * FROM commands WHERE (? IS NULL OR seq < ?) ${stateFilter} ORDER BY seq DESC LIMIT ?`,
        beforeSeq,
        beforeSeq,
        ...(states ?? []),
        limit + 1,
      )
      .toArray();
    const page = rows.slice(0, limit);
    return { items: page.map((r) => summary(hostId, r)), lastSeq: rows.length > limit ? page[page.length - 1]!.seq : null };
  }

  view(hostId: string, r: CommandRow): CommandView {
    const history: StateChange[] = this.#sql
      .exec<{ state: CommandState; at: number; attempt: number | null; detail: string | null }>(
        "SELECT state, at, attempt, detail FROM transitions WHERE message_id = ? ORDER BY id",
        r.message_id,
      )
      .toArray()
      .map((t) => ({ state: t.state, at: iso(t.at)!, attempt: t.attempt, detail: t.detail }));
    return {
      ...summary(hostId, r),
      parameters: JSON.parse(r.parameters) as Record<string, unknown>,
      last_attempt_at: iso(r.last_attempt_at),
      history,
      result: r.result === null ? null : (JSON.parse(r.result) as CommandView["result"]),
      output: this.#outputs.read(r.message_id),
      output_seq: this.#outputs.lastSeq(r.message_id),
    };
  }
}

export function summary(hostId: string, r: CommandRow): CommandSummary {
  return {
    message_id: r.message_id,
    host_id: hostId,
    command_type: r.command_type as CommandSummary["command_type"],
    state: r.state,
    attempts: r.attempts,
    max_attempts: r.max_attempts,
    timeout: r.timeout_s,
    expires_at: iso(r.expires_at)!,
    created_at: iso(r.created_at)!,
    updated_at: iso(r.updated_at)!,
    response_status: r.response_status as CommandSummary["response_status"],
  };
}
