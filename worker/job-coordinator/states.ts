import type { CommandState, JobHostState, JobState } from "../../schemas/index.ts";
import { ERROR_JOB_HOST_STATES, FINAL_JOB_HOST_STATES, JobHostState as JobHostStateSchema } from "../../schemas/index.ts";
import { ACTIVE_ORDER, GIVE_UP_STATES } from "../host-relay/command-states.ts";

/** Pure rules for per-host and per-job state; no storage here. */

export const FINAL = new Set<JobHostState>(FINAL_JOB_HOST_STATES);
export const ERRORS = new Set<JobHostState>(ERROR_JOB_HOST_STATES);
/**
 * Had its turn and not final: what the window counts. A waiting host holds its slot as a command
 * queued on an offline host would, so a rollout does not run ahead of hosts it could not reach.
 */
export const ACTIVE: readonly JobHostState[] = ["waiting", "dispatching", ...ACTIVE_ORDER];
export const ALL_HOST_STATES: readonly JobHostState[] = JobHostStateSchema.options;

/** pending, waiting, dispatching, then the command's own order (command-states.ts), then any final state. */
const ORDER: readonly JobHostState[] = ["pending", "waiting", "dispatching", ...ACTIVE_ORDER];
const rank = (s: JobHostState): number => (FINAL.has(s) ? ORDER.length : ORDER.indexOf(s));

export function isHostState(s: string): s is JobHostState {
  return (ALL_HOST_STATES as readonly string[]).includes(s);
}

/**
 * Whether a host may move from `from` to `to`. Updates from a HostRelay arrive in order but may be
 * repeated, and the answer of a dispatch can land after the command's first updates. So states only
 * move forward, with the command state machine's two exits from a final state: an agent's late answer
 * for a command the relay had given up on (GIVE_UP_STATES) records what really ran, and a requeued
 * dead letter is queued again — the latter only if it is newer than the dead-lettering, so a stale
 * `queued` cannot reopen it.
 */
export function mayMove(from: JobHostState, fromAt: number, to: JobHostState, toAt: number): boolean {
  if (from === to) return false;
  if (FINAL.has(from)) {
    if (GIVE_UP_STATES.has(from as CommandState) && FINAL.has(to) && to !== "skipped") return true;
    return from === "dead_lettered" && to === "queued" && toAt > fromAt;
  }
  return rank(to) > rank(from);
}

export type StopKind = "cancelled" | "max_errors";

/** The job's state, derived from its host counts and whether it was stopped. */
export function jobState(counts: Record<string, number>, stopKind: StopKind | null): JobState {
  const open = ALL_HOST_STATES.filter((s) => !FINAL.has(s)).reduce((n, s) => n + (counts[s] ?? 0), 0);
  if (stopKind !== null) {
    if (open > 0) return "stopping";
    return stopKind === "cancelled" ? "cancelled" : "stopped";
  }
  if ((counts.pending ?? 0) > 0) return "dispatching";
  return open > 0 ? "running" : "completed";
}

export function errorCount(counts: Record<string, number>): number {
  return ERROR_JOB_HOST_STATES.reduce((n, s) => n + (counts[s] ?? 0), 0);
}

export function finalCount(counts: Record<string, number>): number {
  return FINAL_JOB_HOST_STATES.reduce((n, s) => n + (counts[s] ?? 0), 0);
}

export function activeCount(counts: Record<string, number>): number {
  return ACTIVE.reduce((n, s) => n + (counts[s] ?? 0), 0);
}
