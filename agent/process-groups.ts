import { readFileSync } from "node:fs";

/**
 * Start time of process `pid`: field 22 of `/proc/<pid>/stat` (clock ticks since boot), or null
 * when it cannot be read (no such process, or no /proc: not Linux). Together with the pid it names
 * one process for good: a recycled pid has another start time.
 */
export function processStartTime(pid: number): number | null {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  } catch {
    return null;
  }
  // Field 2 (comm) is parenthesised and may hold spaces or ')': the fixed fields follow the last ')'.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  // fields[0] is field 3 (state), so field 22 is fields[19].
  const start = Number(fields[19]);
  return Number.isSafeInteger(start) && start >= 0 ? start : null;
}

/** True while any process is in process group `pgid` (signal 0 probes without signalling). */
export function processGroupExists(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch (err) {
    // EPERM: the group exists but is not ours to signal.
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

export type OrphanVerdict =
  /** The group was still there and got SIGKILL. */
  | { killed: true; pgid: number; how: "start time matches" | "group exists; start time unreadable" }
  | { killed: false; pgid: number; why: string };

/**
 * Kills (SIGKILL to −pgid) what is left of an execution's process group after the agent died, only
 * when it is provably the same group: the leader's start time matches the one recorded at spawn, or
 * the leader is gone / unreadable and the group still exists (a pid is not reused while a group of
 * that id exists, so the group is still the one the agent started).
 */
export function killOrphanGroup(pgid: number, recordedStartTime: number | null): OrphanVerdict {
  if (!Number.isSafeInteger(pgid) || pgid <= 1) return { killed: false, pgid, why: "no usable process group id" };
  const now = processStartTime(pgid);
  if (now !== null) {
    if (recordedStartTime === null)
      return { killed: false, pgid, why: "pid is in use but no start time was recorded: cannot tell it from a recycled pid" };
    if (now !== recordedStartTime) return { killed: false, pgid, why: "pid was recycled (start time differs)" };
    return signalGroup(pgid, "start time matches");
  }
  if (!processGroupExists(pgid)) return { killed: false, pgid, why: "process group is gone" };
  return signalGroup(pgid, "group exists; start time unreadable");
}

function signalGroup(pgid: number, how: "start time matches" | "group exists; start time unreadable"): OrphanVerdict {
  try {
    process.kill(-pgid, "SIGKILL");
    return { killed: true, pgid, how };
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    return { killed: false, pgid, why: code === "ESRCH" ? "process group is gone" : `kill failed: ${code ?? (err as Error).message}` };
  }
}
