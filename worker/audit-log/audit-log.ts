import { DurableObject } from "cloudflare:workers";
import { DurableEntry } from "../durable-entry.ts";
import type { Env } from "../env.ts";

/** One shard of the audit trail: a hash chain with signed checkpoints, pruned by alarm. */
export class AuditLog extends DurableObject<Env> {
  private readonly entry = new DurableEntry("AuditLog", () => {});

  override async alarm(): Promise<void> {
    return this.entry.hook("alarm", () => {});
  }
}
