import type { Env } from "./env.ts";

/**
 * The Durable Object stubs, named the one way every caller uses: a HostRelay per host id, a
 * JobCoordinator per job id, and the single FleetEvents instance.
 */
export function hostRelay(env: Env, hostId: string) {
  return env.HOST_RELAY.get(env.HOST_RELAY.idFromName(hostId));
}

export function jobCoordinator(env: Env, jobId: string) {
  return env.JOB_COORDINATOR.get(env.JOB_COORDINATOR.idFromName(jobId));
}

export function fleetEvents(env: Env) {
  return env.FLEET_EVENTS.get(env.FLEET_EVENTS.idFromName("fleet"));
}
