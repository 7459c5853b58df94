import { DurableObject } from "cloudflare:workers";
import type { AlertReceiverInput, AlertReceiverUpdate, AlertRuleInput } from "../../schemas/index.ts";
import { systemClock } from "../clock.ts";
import { alertConfig } from "../config.ts";
import { DurableEntry } from "../durable-entry.ts";
import type { Env } from "../env.ts";
import { TestFaults } from "../test-faults.ts";
import type { AlertingContext } from "./context.ts";
import { productionInputs } from "./inputs.ts";
import * as ops from "./operations.ts";
import { runRound, scheduleAlarm } from "./rounds.ts";
import type { DeliveryState } from "./storage.ts";
import { AlertingStorage } from "./storage.ts";

/**
 * Alert rules, their evaluation from alarms, receivers and the notification outbox (one instance,
 * "fleet"). Hooks and RPC methods only hand off to the named handlers in this folder, each through
 * the DurableEntry, which logs what they throw and recomputes the alarm after every call.
 */
export class Alerting extends DurableObject<Env> {
  private readonly ac: AlertingContext;
  private readonly entry: DurableEntry;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    const store = new AlertingStorage(ctx.storage);
    this.ac = {
      ctx,
      env,
      store,
      config: alertConfig(env),
      clock: systemClock,
      inputs: productionInputs(env),
      transport: (request) => fetch(request),
      faults: new TestFaults(env),
      alarmAt: undefined,
      rounds: Promise.resolve(),
    };
    this.entry = new DurableEntry("Alerting", () => scheduleAlarm(this.ac, this.ac.clock.now()));
    ctx.blockConcurrencyWhile(async () => store.migrate());
  }

  override async alarm(): Promise<void> {
    return this.entry.hook("alarm", () => {
      this.ac.alarmAt = null;
      return runRound(this.ac);
    });
  }

  // ---- RPC, called by the Worker's routes ----

  createRule(spec: AlertRuleInput, origin?: string) {
    return this.entry.rpc("createRule", () => ops.createRule(this.ac, spec, origin, this.ac.clock.now()));
  }

  listRules() {
    return this.entry.rpc("listRules", () => ops.listRules(this.ac));
  }

  getRule(ruleId: string) {
    return this.entry.rpc("getRule", () => ops.getRule(this.ac, ruleId));
  }

  updateRule(ruleId: string, spec: AlertRuleInput, origin?: string) {
    return this.entry.rpc("updateRule", () => ops.updateRule(this.ac, ruleId, spec, origin, this.ac.clock.now()));
  }

  deleteRule(ruleId: string) {
    return this.entry.rpc("deleteRule", () => ops.deleteRule(this.ac, ruleId));
  }

  createReceiver(input: AlertReceiverInput) {
    return this.entry.rpc("createReceiver", () => ops.createReceiver(this.ac, input, this.ac.clock.now()));
  }

  listReceivers() {
    return this.entry.rpc("listReceivers", () => ops.listReceivers(this.ac));
  }

  getReceiver(receiverId: string) {
    return this.entry.rpc("getReceiver", () => ops.getReceiver(this.ac, receiverId));
  }

  updateReceiver(receiverId: string, input: AlertReceiverUpdate) {
    return this.entry.rpc("updateReceiver", () => ops.updateReceiver(this.ac, receiverId, input, this.ac.clock.now()));
  }

  deleteReceiver(receiverId: string) {
    return this.entry.rpc("deleteReceiver", () => ops.deleteReceiver(this.ac, receiverId));
  }

  listAlerts(q: { history_limit: number; history_before?: number | undefined }) {
    return this.entry.rpc("listAlerts", () => ops.listAlerts(this.ac, q));
  }

  listNotifications(q: { state?: DeliveryState | undefined; limit: number }) {
    return this.entry.rpc("listNotifications", () => ops.listNotifications(this.ac, q));
  }
}
