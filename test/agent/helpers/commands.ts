import type { CommandMessage } from "../../../schemas/index.ts";
import { nowRfc3339 } from "../../../schemas/index.ts";

/** A valid command frame for `hostId`; fields override the defaults (expires in 1 h, timeout 30 s). */
export function commandFrame(
  hostId: string,
  fields: Partial<Omit<CommandMessage, "command_type" | "parameters">> & {
    command_type: CommandMessage["command_type"];
    parameters: Record<string, unknown>;
  },
): CommandMessage {
  return {
    message_id: crypto.randomUUID(),
    timestamp: nowRfc3339(),
    message_type: "command",
    target_host: hostId,
    expires_at: nowRfc3339(Date.now() + 3_600_000),
    attempt: 1,
    timeout: 30,
    ...fields,
  } as CommandMessage;
}
