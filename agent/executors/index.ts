import type { CommandMessage } from "../../schemas/index.ts";
import { CommandSpec } from "../../schemas/index.ts";
import { packageArgv } from "./package-managers.ts";
import { NO_PACKAGE_MANAGER_REASON, runPackageOperation } from "./package-operation.ts";
import { runShell, SHELL_DISABLED_REASON } from "./shell.ts";
import { runSystemInfo } from "./system-info.ts";
import type { ExecutionHooks, ExecutionOutcome, ExecutorSettings } from "./types.ts";

export { NO_PACKAGE_MANAGER_REASON } from "./package-operation.ts";
export { AGENT_STOPPED_REASON } from "./process-outcome.ts";
export { SHELL_DISABLED_REASON } from "./shell.ts";
export type { ExecutionHooks, ExecutionOutcome, ExecutorSettings } from "./types.ts";

export const EXPIRED_REASON = "expired before delivery";

/** Command types this agent runs, as announced in `hello` (shell only when enabled). */
export function supportedCommands(settings: Pick<ExecutorSettings, "allowShell">): string[] {
  return settings.allowShell ? ["package_operation", "system_info", "shell"] : ["package_operation", "system_info"];
}

/**
 * Why a command must not run at all, decided when it arrives (null when it may run).
 * Rejections are answered at once and never count as executions.
 */
export function rejectionFor(command: CommandMessage, settings: ExecutorSettings, hostId: string | null, now: number): string | null {
  if (Date.parse(command.expires_at) <= now) return EXPIRED_REASON;
  if (hostId !== null && command.target_host !== hostId) {
    return `addressed to host ${command.target_host}; this agent is ${hostId}`;
  }
  // Parameters again through the shared schema: a journaled frame may come from an older build.
  const spec = CommandSpec.safeParse({ command_type: command.command_type, parameters: command.parameters });
  if (!spec.success) return `invalid parameters: ${spec.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ")}`;
  if (spec.data.command_type === "shell" && !settings.allowShell) return SHELL_DISABLED_REASON;
  if (spec.data.command_type === "package_operation") {
    if (settings.packageManager === null) return NO_PACKAGE_MANAGER_REASON;
    const mapped = packageArgv(settings.packageManager, spec.data.parameters);
    if (!mapped.ok) return mapped.reason;
  }
  return null;
}

/** Runs one command with its type's executor. */
export async function executeCommand(
  command: CommandMessage,
  settings: ExecutorSettings,
  hooks: ExecutionHooks = {},
): Promise<ExecutionOutcome> {
  switch (command.command_type) {
    case "package_operation":
      return runPackageOperation(command, settings, hooks);
    case "system_info":
      return runSystemInfo(command, settings);
    case "shell":
      return runShell(command, settings, hooks);
  }
}
