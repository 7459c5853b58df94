import { ProgressStream } from "./progress-stream.ts";
import { type ProcessOutcome, runProcess } from "./run-process.ts";
import type { ExecutionHooks, ExecutorSettings } from "./types.ts";

/** Runs one command's process under the executor settings, streaming its output as progress when asked. */
export async function runStreamed(
  proc: { argv: string[]; cwd?: string | undefined; env: NodeJS.ProcessEnv },
  timeoutS: number,
  settings: ExecutorSettings,
  hooks: ExecutionHooks,
): Promise<ProcessOutcome> {
  const progress = hooks.onProgress ? new ProgressStream(hooks.onProgress, { intervalMs: settings.progressIntervalMs }) : null;
  const outcome = await runProcess({
    ...proc,
    timeoutMs: timeoutS * 1000,
    maxOutputBytes: settings.maxOutputBytes,
    killGraceMs: settings.killGraceMs,
    signal: hooks.signal,
    onSpawn: hooks.onSpawn,
    onOutput: progress ? (t) => progress.write(t) : undefined,
  });
  progress?.end();
  return outcome;
}
