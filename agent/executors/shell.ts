import type { CommandMessage } from "../../schemas/index.ts";
import { ShellParameters } from "../../schemas/index.ts";
import { processResponse } from "./process-outcome.ts";
import { runStreamed } from "./streamed-run.ts";
import { commandEnv, type ExecutionHooks, type ExecutionOutcome, type ExecutorSettings, rejected } from "./types.ts";

export const SHELL_DISABLED_REASON = "shell commands are disabled on this agent";

/** `/bin/sh -c script`, only when the agent's configuration allows shell commands. */
export async function runShell(command: CommandMessage, settings: ExecutorSettings, hooks: ExecutionHooks = {}): Promise<ExecutionOutcome> {
  if (!settings.allowShell) return rejected(SHELL_DISABLED_REASON);
  const params = ShellParameters.safeParse(command.parameters);
  if (!params.success) return rejected(`invalid shell parameters: ${params.error.issues.map((i) => i.message).join("; ")}`);
  const outcome = await runStreamed(
    { argv: ["/bin/sh", "-c", params.data.script], cwd: params.data.cwd, env: commandEnv(params.data.env) },
    command.timeout,
    settings,
    hooks,
  );
  return processResponse(outcome, command.timeout);
}
