import { DurableObject } from "cloudflare:workers";
import { DurableEntry } from "../durable-entry.ts";
import type { Env } from "../env.ts";

/** Alert rules, their evaluation from alarms, receivers and the notification outbox (one instance, "fleet"). */
export class Alerting extends DurableObject<Env> {
  private readonly entry = new DurableEntry("Alerting", () => {});

  override async alarm(): Promise<void> {
    return this.entry.hook("alarm", () => {});
  }
}
