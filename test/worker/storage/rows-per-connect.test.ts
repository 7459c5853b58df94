import { describe, expect, it } from "vitest";
import { TestAgent } from "../helpers.ts";
import { connectedHost } from "../host-relay/relay-helpers.ts";
import { drained } from "../metrics/metrics-helpers.ts";
import { auditSettled, rowTotals } from "./rows-helpers.ts";

/**
 * SQLite rows written per agent connection (upgrade, hello → welcome, then the close), by object,
 * counted by SQLite (`total_changes()`), with the audit records, presence events and metrics they
 * cause delivered. A reconnect storm is this times the fleet, so the budget fails a change that adds
 * rows to the connect path without anyone deciding to. The registry's two D1 writes per connection
 * (online, offline) are not counted here.
 */

const N = 10;
/** Measured when the scale bench landed: 15.4, 4.4 and 6.1. Raise only on purpose. */
const BUDGET_PER_CONNECTION = { HostRelay: 16, FleetEvents: 5, AuditLog: 7 };

describe("rows written per agent connection", () => {
  it(`stays within its budget over ${N} reconnects`, async () => {
    const { host_id, fingerprint, agent } = await connectedHost();
    agent.ws.close(1000, "done");
    await agent.waitClose();
    await drained(host_id);
    await auditSettled();
    const before = await rowTotals(host_id);
    for (let i = 0; i < N; i++) {
      const again = await TestAgent.connect(fingerprint);
      again.ws.close(1000, "done");
      await again.waitClose();
    }
    await drained(host_id);
    await auditSettled();
    const after = await rowTotals(host_id);
    const per = Object.fromEntries(
      Object.keys(before).map((k) => [k, (after[k as keyof typeof after] - before[k as keyof typeof before]) / N]),
    );
    console.log(`rows written per agent connection: ${JSON.stringify(per)}`);
    for (const [object, budget] of Object.entries(BUDGET_PER_CONNECTION)) {
      expect(per[object], object).toBeLessThanOrEqual(budget);
      expect(per[object], object).toBeGreaterThan(0);
    }
  });
});
