import { ShellParameters } from "../../schemas/index.ts";
import type { CommandMessage } from "../../schemas/index.ts";
import { processResponse } from "./process-outcome.ts";
import { ProgressStream } from "./progress-stream.ts";
import { runProcess } from "./run-process.ts";
import { type ExecutionHooks, type ExecutionOutcome, type ExecutorSettings, commandEnv, rejected } from "./types.ts";

export const SHELL_DISABLED_REASON = "shell commands are disabled on this agent";

/** `/bin/sh -c script`, only when the agent's configuration allows shell commands. */
export async function runShell(command: CommandMessage, settings: ExecutorSettings, hooks: ExecutionHooks = {}): Promise<ExecutionOutcome> {
  if (!settings.allowShell) return rejected(SHELL_DISABLED_REASON);
  const params = ShellParameters.safeParse(command.parameters);
  if (!params.success) return rejected(`invalid shell parameters: ${params.error.issues.map((i) => i.message).join("; ")}`);
  const progress = hooks.onProgress ? new ProgressStream(hooks.onProgress, { intervalMs: settings.progressIntervalMs }) : null;
  const outcome = await runProcess({
    argv: ["/bin/sh", "-c", params.data.script],
    cwd: params.data.cwd,
    env: commandEnv(params.data.env),
    timeoutMs: command.timeout * 1000,
    maxOutputBytes: settings.maxOutputBytes,
    killGraceMs: settings.killGraceMs,
    signal: hooks.signal,
    onSpawn: hooks.onSpawn,
    onOutput: progress ? (t) => progress.write(t) : undefined,
  });
  progress?.end();
  return processResponse(outcome, command.timeout);
}
