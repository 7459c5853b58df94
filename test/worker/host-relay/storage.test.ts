import { describe, expect, it } from "vitest";
import { api, getCommand, registerHost } from "../helpers.ts";
import {
  advanceClock,
  connectedHost,
  DAY_MS,
  enqueue,
  getAlarm,
  responseFrame,
  runAlarm,
  sendAndAwaitAck,
  sql,
  statusFrame,
} from "./relay-helpers.ts";

describe("retention", () => {
  it("the alarm prunes terminal commands older than the retention window and keeps younger ones", async () => {
    const { host_id, agent } = await connectedHost();
    const finish = async (id: string) => {
      await agent.command(id, 1);
      agent.ack(id);
      await sendAndAwaitAck(agent, statusFrame(id, "progress", "chunk", 0));
      await sendAndAwaitAck(agent, responseFrame(id, "success", { output: "x" }));
    };
    const old = await enqueue(host_id);
    await finish(old);
    expect(await sql(host_id, "SELECT id FROM outputs WHERE message_id = ?", old)).toHaveLength(1);
    // The relay's clock, not its stored timestamps, is what moves: a day later the second one ends.
    await advanceClock(host_id, DAY_MS);
    const young = await enqueue(host_id);
    await finish(young);
    await advanceClock(host_id, 29 * DAY_MS + 60_000);

    await runAlarm(host_id);

    const gone = await api(`/api/hosts/${host_id}/commands/${old}`, { role: "viewer" });
    expect(gone.status).toBe(404);
    expect(await sql(host_id, "SELECT id FROM transitions WHERE message_id = ?", old)).toEqual([]);
    expect(await sql(host_id, "SELECT id FROM outputs WHERE message_id = ?", old)).toEqual([]);
    expect((await getCommand(host_id, young)).state).toBe("succeeded");
  });

  it("with only terminal commands left, the alarm is set for the oldest one's prune time", async () => {
    const host = await registerHost();
    const id = await enqueue(host.host_id);
    const res = await api(`/api/hosts/${host.host_id}/commands/${id}`, { role: "operator", method: "DELETE" });
    expect(res.status).toBe(200);
    const [row] = await sql<{ terminal_at: number }>(host.host_id, "SELECT terminal_at FROM commands WHERE message_id = ?", id);
    expect(await getAlarm(host.host_id)).toBe(row!.terminal_at + 30 * DAY_MS);
  });
});
