import { runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import type { Alerting } from "../../../worker/alerting/alerting.ts";
import { productionInputs } from "../../../worker/alerting/inputs.ts";
import { connectedHost, enqueue, retryNow } from "../host-relay/relay-helpers.ts";
import { drained } from "../metrics/metrics-helpers.ts";
import { AlertRig, alertingStub, alerts, clearAlerting, createRule } from "./alerting-helpers.ts";

/**
 * The metric rules over the real pipeline, not injected inputs: a HostRelay dead-letters a command,
 * its metrics row rides the event publish to FleetEvents, and the Alerting object reads FleetEvents'
 * metricsSummary() and the registry as it does in production.
 */
describe("metric rules over the real metrics pipeline", () => {
  it("dead_letters fires after a HostRelay dead-letters a command", async () => {
    const rig = await AlertRig.install();
    await clearAlerting(rig);
    await runInDurableObject(alertingStub(), (instance: Alerting) => {
      (instance as any).ac.inputs = productionInputs(env);
    });
    const rule = await createRule({ kind: "dead_letters", name: "dead letters", window: "5m", for: "0s" });

    const { host_id, agent } = await connectedHost();
    const id = await enqueue(host_id, { max_attempts: 1 });
    await agent.command(id, 1);
    await retryNow(host_id, id);
    // Its event and metrics rows have reached FleetEvents.
    await drained(host_id);

    await rig.tick(1000);
    await rig.tick(1000);
    const active = (await alerts()).active.filter((a) => a.rule_id === rule.rule_id);
    expect(active).toEqual([expect.objectContaining({ state: "firing", labels: expect.objectContaining({ alertname: "dead letters" }) })]);
  });
});
