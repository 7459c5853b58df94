/**
 * Helpers for the HostRelay tests: queue commands over REST, read and rewrite the relay's
 * SQLite rows and socket attachments, and drive its alarm without waiting on the clock.
 */
import { runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { expect } from "vitest";
import { nowRfc3339 } from "../../../schemas/index.ts";
import type { Clock } from "../../../worker/clock.ts";
import { type AgentAttachment, attachment, type RelayContext, saveAttachment } from "../../../worker/host-relay/context.ts";
import type { HostRelay } from "../../../worker/host-relay/host-relay.ts";
import { type CommandRow, HostRelayStorage } from "../../../worker/host-relay/storage.ts";
import { api, objectClockTo, registerHost, relayStub, TestAgent } from "../helpers.ts";

export const ACK_TIMEOUT_MS = 1000;
export const RETRY_BASE_MS = 100;
export const RETRY_CAP_MS = 1000;
export const STALE_AFTER_MS = 90_000;
export const DAY_MS = 86_400_000;

/** A registered host with a connected, greeted agent. */
export async function connectedHost(): Promise<{ host_id: string; fingerprint: string; agent: TestAgent }> {
  const host = await registerHost();
  const agent = await TestAgent.connect(host.fingerprint);
  return { ...host, agent };
}

/** Queues one command over REST (system_info unless `body` says otherwise); returns its message_id. */
export async function enqueue(hostId: string, body: Record<string, unknown> = {}): Promise<string> {
  const res = await api(`/api/hosts/${hostId}/commands`, { role: "operator", body: { command_type: "system_info", ...body } });
  expect(res.status, await res.clone().text()).toBe(202);
  const accepted = (await res.json()) as { message_id: string; status: string };
  expect(accepted.status).toBe("queued");
  return accepted.message_id;
}

/** Runs SQL inside the host's relay against its real storage. */
export function sql<T extends Record<string, SqlStorageValue> = Record<string, SqlStorageValue>>(
  hostId: string,
  query: string,
  ...binds: unknown[]
): Promise<T[]> {
  return runInDurableObject(relayStub(hostId), (_instance, state) => state.storage.sql.exec<T>(query, ...binds).toArray());
}

export async function commandRow(hostId: string, messageId: string): Promise<CommandRow> {
  const [row] = await sql<CommandRow>(hostId, "SELECT * FROM commands WHERE message_id = ?", messageId);
  expect(row, `command ${messageId} stored`).toBeDefined();
  return row!;
}

/** Runs the relay's alarm now, and fails if none was scheduled (every test state here has one). */
export async function runAlarm(hostId: string): Promise<void> {
  expect(await runDurableObjectAlarm(relayStub(hostId)), "an alarm was scheduled").toBe(true);
}

/**
 * Moves the relay's clock forward so that it reads at least `at` (installing an offset clock the
 * first time): time is faked through the injected clock, never by rewriting stored timestamps.
 */
export function clockTo(hostId: string, at: number): Promise<void> {
  return objectClockTo(relayStub(hostId), at);
}

/** Moves the relay's clock forward by `ms`. */
export async function advanceClock(hostId: string, ms: number): Promise<void> {
  const now = await runInDurableObject(relayStub(hostId), (instance: HostRelay) =>
    (instance as unknown as { rc: { clock: Clock } }).rc.clock.now(),
  );
  await clockTo(hostId, now + ms);
}

/** Makes the retry of in-flight commands due (all, or one) by moving the relay's clock, and runs the alarm. */
export async function retryNow(hostId: string, messageId?: string): Promise<void> {
  const rows = await sql<{ retry_at: number }>(
    hostId,
    `SELECT retry_at FROM commands WHERE in_flight = 1 ${messageId ? "AND message_id = ?" : ""} ORDER BY retry_at DESC LIMIT 1`,
    ...(messageId ? [messageId] : []),
  );
  if (rows[0]) await clockTo(hostId, rows[0].retry_at);
  await runAlarm(hostId);
}

/**
 * The relay's alarm once its notification outbox has drained: while events or job updates are
 * on their way the alarm also covers them, so reading it earlier would race the flush.
 */
export async function getAlarm(hostId: string): Promise<number | null> {
  const deadline = Date.now() + 5000;
  for (;;) {
    const [pending, alarm] = await runInDurableObject(
      relayStub(hostId),
      async (_instance, state) =>
        [state.storage.sql.exec<{ n: number }>("SELECT COUNT(*) AS n FROM outbox").one().n, await state.storage.getAlarm()] as const,
    );
    if (pending === 0) return alarm;
    if (Date.now() > deadline) throw new Error(`outbox still holds ${pending} notifications`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** Rewrites the attachment of every agent socket the relay holds (e.g. to age it). */
export function patchAttachments(hostId: string, patch: (a: AgentAttachment) => Partial<AgentAttachment>): Promise<number> {
  return runInDurableObject(relayStub(hostId), (instance, state) => {
    // Through the instance, which keeps its own copy of each attachment.
    const rc = (instance as unknown as { rc: RelayContext }).rc;
    const sockets = state.getWebSockets();
    for (const ws of sockets) {
      const a = attachment(rc, ws);
      saveAttachment(rc, ws, { ...a, ...patch(a) });
    }
    return sockets.length;
  });
}

export function attachments(hostId: string): Promise<AgentAttachment[]> {
  return runInDurableObject(relayStub(hostId), (_instance, state) =>
    state.getWebSockets().map((ws) => ws.deserializeAttachment() as AgentAttachment),
  );
}

export async function problem(res: Response, status: number): Promise<{ code: string; detail?: string }> {
  const text = await res.text();
  expect(res.status, text).toBe(status);
  expect(res.headers.get("content-type")).toContain("application/problem+json");
  return JSON.parse(text) as { code: string; detail?: string };
}

export async function hostStatus(hostId: string): Promise<string> {
  const res = await api(`/api/hosts/${hostId}`, { role: "viewer" });
  expect(res.status).toBe(200);
  return ((await res.json()) as { status: string }).status;
}

/** Command frames the agent has received, in arrival order. */
export function commandFrames(agent: TestAgent): any[] {
  return agent.frames.filter((f) => f?.message_type === "command");
}

/** Sends a frame and waits for the relay's ack of it (registered before sending, so repeats count too). */
export async function sendAndAwaitAck(agent: TestAgent, frame: Record<string, unknown> & { message_id: string }): Promise<any> {
  const acked = agent.nextNew((f) => f.message_type === "ack" && f.original_message_id === frame.message_id);
  agent.send(frame);
  return acked;
}

export function responseFrame(
  commandId: string,
  status = "success",
  result: object = { output: "ok", exit_code: 0, execution_time: 0.1 },
  frameId: string = crypto.randomUUID(),
) {
  return { message_id: frameId, timestamp: nowRfc3339(), message_type: "response", original_message_id: commandId, status, result };
}

export function statusFrame(
  commandId: string,
  state: "running" | "progress",
  output?: string,
  seq?: number,
  frameId: string = crypto.randomUUID(),
) {
  return { message_id: frameId, timestamp: nowRfc3339(), message_type: "status", original_message_id: commandId, state, output, seq };
}

/**
 * Ordering barrier: a status for a command the relay never had is answered with an error and an
 * ack, so once that ack is here every frame the relay sent before it is here too.
 */
export async function barrier(agent: TestAgent): Promise<void> {
  await sendAndAwaitAck(agent, statusFrame(crypto.randomUUID(), "running"));
}

export const states = (view: { history: { state: string }[] }): string[] => view.history.map((h) => h.state);

/** `sql` with every `exec` counted and its query kept: for tests that a cached answer or a skipped sweep runs no statement. */
export function countingSql(sql: SqlStorage): { sql: SqlStorage; statements: () => number; queries: string[] } {
  const queries: string[] = [];
  const exec = sql.exec.bind(sql);
  const counted = new Proxy(sql, {
    get: (target, prop) =>
      prop === "exec"
        ? (query: string, ...binds: unknown[]) => {
            queries.push(query);
            return exec(query, ...binds);
          }
        : Reflect.get(target, prop),
  });
  return { sql: counted, statements: () => queries.length, queries };
}

/**
 * Gives the host's relay a fresh storage layer over a counting `sql` (its caches start empty, as
 * after an eviction) and returns the queries it runs from now on.
 */
export function countRelayQueries(hostId: string): Promise<string[]> {
  return runInDurableObject(relayStub(hostId), (instance: HostRelay, state) => {
    const rc = (instance as unknown as { rc: RelayContext }).rc;
    const counting = countingSql(state.storage.sql);
    rc.store = new HostRelayStorage({ sql: counting.sql } as DurableObjectStorage);
    rc.store.open();
    return counting.queries;
  });
}
