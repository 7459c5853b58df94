import type { CommandResult } from "../../schemas/index.ts";
import type { ProcessOutcome } from "./run-process.ts";
import type { ExecutionOutcome } from "./types.ts";

/** Reason recorded when the agent's shutdown ended a command. */
export const AGENT_STOPPED_REASON = "agent stopped";

/** Maps a finished process onto the response's status and common result fields. */
export function processResponse(p: ProcessOutcome, timeoutS: number, extra: Partial<CommandResult> = {}): ExecutionOutcome {
  const result: CommandResult = {
    output: p.output,
    exit_code: p.exitCode,
    execution_time: p.executionTime,
    ...(p.outputTruncatedBytes > 0 ? { output_truncated_bytes: p.outputTruncatedBytes } : {}),
    ...extra,
  };
  if (p.spawnError) return { status: "failure", result: { ...result, reason: `could not start: ${p.spawnError.message}` } };
  // Aborted (agent stopping, or a cancel from the relay): the caller decides what to call it.
  if (p.aborted)
    return {
      status: "failure",
      aborted: true,
      result: { ...result, ...(p.signal ? { signal: p.signal } : {}), reason: AGENT_STOPPED_REASON },
    };
  if (p.timedOut) return { status: "timeout", result: { ...result, reason: `timed out after ${timeoutS} s; process group killed` } };
  if (p.exitCode === 0) return { status: "success", result };
  return { status: "failure", result: p.signal ? { ...result, reason: `killed by ${p.signal}` } : result };
}
