import type { CommandMessage } from "../../schemas/index.ts";
import { PackageOperationParameters } from "../../schemas/index.ts";
import { packageArgv, parseAptSimulation } from "./package-managers.ts";
import { processResponse } from "./process-outcome.ts";
import { runStreamed } from "./streamed-run.ts";
import { commandEnv, type ExecutionHooks, type ExecutionOutcome, type ExecutorSettings, rejected } from "./types.ts";

export const NO_PACKAGE_MANAGER_REASON = "no supported package manager found on this host";

/** install / remove / update / upgrade through the host's package manager. */
export async function runPackageOperation(
  command: CommandMessage,
  settings: ExecutorSettings,
  hooks: ExecutionHooks = {},
): Promise<ExecutionOutcome> {
  const parsed = PackageOperationParameters.safeParse(command.parameters);
  if (!parsed.success) return rejected(`invalid package_operation parameters: ${parsed.error.issues.map((i) => i.message).join("; ")}`);
  const params = parsed.data;
  if (settings.packageManager === null) return rejected(NO_PACKAGE_MANAGER_REASON);
  const mapped = packageArgv(settings.packageManager, params);
  if (!mapped.ok) return rejected(mapped.reason);

  const outcome = await runStreamed({ argv: mapped.argv, env: commandEnv() }, command.timeout, settings, hooks);

  const extra: Record<string, unknown> = { package_manager: settings.packageManager, operation: params.operation };
  const simulate = params.options.simulate ?? false;
  if (outcome.exitCode === 0 && (params.operation === "install" || params.operation === "remove")) {
    const key = params.operation === "install" ? "installed_packages" : "removed_packages";
    if (simulate && settings.packageManager === "apt-get") {
      // The simulation lists exactly what would change, dependencies included.
      const plan = parseAptSimulation(outcome.output);
      extra[key] = params.operation === "install" ? plan.installed : plan.removed;
    } else if (!simulate) {
      extra[key] = params.packages;
    }
  }
  if (simulate) extra.simulated = true;
  return processResponse(outcome, command.timeout, extra);
}
