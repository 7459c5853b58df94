import { describe, expect, it } from "vitest";
import { getCommand } from "../helpers.ts";
import { connectedHost, enqueue } from "../host-relay/relay-helpers.ts";
import { drained } from "../metrics/metrics-helpers.ts";
import { auditSettled, rowTotals } from "./rows-helpers.ts";

/**
 * SQLite rows written per command, by object, measured with SQLite's own count (`total_changes()`
 * of each object's connection) over commands run end to end: REST → HostRelay → agent → response,
 * with the events, metrics and audit records they cause delivered. Rows written are what Durable
 * Object storage bills and what every write path costs; the budget below fails a change that adds
 * rows to the command path without anyone deciding to.
 */

const N = 20;
/**
 * Measured at the observability merge: 24.2, 6.5 and 10.1 (before metrics and audit: 18.1, 6 and none).
 * Then 22.15, 6.5 and 6.05: a queued command's audit record rides the HostRelay's transaction and
 * outbox (no first stage in the AuditLog), and outbox leases live in memory. Raise only on purpose.
 */
const BUDGET_PER_COMMAND = { HostRelay: 23, FleetEvents: 7, AuditLog: 7 };

async function runCommand(hostId: string, agent: Awaited<ReturnType<typeof connectedHost>>["agent"]): Promise<void> {
  const id = await enqueue(hostId);
  const cmd = await agent.command(id);
  agent.ack(cmd.message_id);
  await agent.acked(agent.respond(cmd.message_id, "success", { output: "ok", execution_time: 0.1 }));
  expect((await getCommand(hostId, id)).state).toBe("succeeded");
}

describe("rows written per command", () => {
  it(`stays within its budget over ${N} commands`, async () => {
    const { host_id, agent } = await connectedHost();
    // The first command pays for lazy set-up (migrations, the host's first metrics rows): not per command.
    await runCommand(host_id, agent);
    await drained(host_id);
    await auditSettled();
    const before = await rowTotals(host_id);
    for (let i = 0; i < N; i++) await runCommand(host_id, agent);
    await drained(host_id);
    await auditSettled();
    const after = await rowTotals(host_id);
    const per = Object.fromEntries(
      Object.keys(before).map((k) => [k, (after[k as keyof typeof before] - before[k as keyof typeof before]) / N]),
    ) as Record<keyof typeof BUDGET_PER_COMMAND, number>;
    console.log(`rows written per command: ${JSON.stringify(per)}`);
    for (const [object, budget] of Object.entries(BUDGET_PER_COMMAND)) {
      expect(per[object as keyof typeof per], object).toBeLessThanOrEqual(budget);
      expect(per[object as keyof typeof per], object).toBeGreaterThan(0);
    }
  });
});
