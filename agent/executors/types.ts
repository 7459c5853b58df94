import type { CommandResult, ResponseStatus } from "../../schemas/index.ts";
import type { PackageManagerName } from "./package-managers.ts";

/** What an agent's configuration decides about execution. */
export interface ExecutorSettings {
  /** Run `shell` commands at all. Default false. */
  allowShell: boolean;
  /** Manager for `package_operation`; null when none was found (those commands are rejected). */
  packageManager: PackageManagerName | null;
  /** Output kept for the response (its tail), bytes. */
  maxOutputBytes: number;
  /** Progress output is coalesced for this long per status frame, ms. */
  progressIntervalMs: number;
  /** SIGTERM → SIGKILL grace when a process group is killed. Default 5 s. */
  killGraceMs?: number;
}

/** Per-execution callbacks from the command processor. */
export interface ExecutionHooks {
  /**
   * Aborted when the agent stops or the relay cancels the command: the process group is killed
   * (SIGTERM, then SIGKILL after the grace) and the outcome is marked `aborted`.
   */
  signal?: AbortSignal;
  onSpawn?: (pid: number) => void;
  /** Coalesced output chunks (≤ 16 KiB) for `status` progress frames. */
  onProgress?: (chunk: string) => void;
}

export interface ExecutionOutcome {
  status: ResponseStatus;
  result: CommandResult;
  /** The abort signal ended the process group before it finished on its own. */
  aborted?: boolean;
}

/** Environment every spawned process gets: no prompts, stable (C locale) output to parse. */
export function commandEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  return { ...process.env, DEBIAN_FRONTEND: "noninteractive", LC_ALL: "C", ...extra };
}

export function rejected(reason: string): ExecutionOutcome {
  return { status: "rejected", result: { reason } };
}
