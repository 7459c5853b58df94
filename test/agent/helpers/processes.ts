import { readFileSync } from "node:fs";

/** True while `pid` exists and is not a zombie (containers may lack a reaper for orphans). */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, "utf8"));
  } catch {
    return false;
  }
}

/**
 * Waits (bounded) until none of `pids` is alive. A process that is not our child signals nothing
 * when it dies, so this checks /proc every 20 ms up to the deadline.
 */
export async function gone(pids: number[], timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (pids.every((p) => !alive(p))) return true;
    await new Promise((r) => setTimeout(r, 20));
  }
  return pids.every((p) => !alive(p));
}
