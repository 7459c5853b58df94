import type { Env } from "../env.ts";

/** The single FleetEvents instance every publisher and subscriber uses. */
export function fleetEvents(env: Env) {
  return env.FLEET_EVENTS.get(env.FLEET_EVENTS.idFromName("fleet"));
}

export function jobCoordinator(env: Env, jobId: string) {
  return env.JOB_COORDINATOR.get(env.JOB_COORDINATOR.idFromName(jobId));
}
