import type { Env } from "./env.ts";

/**
 * The Durable Object stubs, named the one way every caller uses: a HostRelay per host id, a
 * JobCoordinator per job id, the single FleetEvents and Alerting instances, and the audit shards.
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

export function alerting(env: Env) {
  return env.ALERTING.get(env.ALERTING.idFromName("fleet"));
}

/** Audit shard `n` (0-based); which shard a record goes to is decided in worker/audit-log/. */
export function auditLog(env: Env, shard: number) {
  return env.AUDIT_LOG.get(env.AUDIT_LOG.idFromName(`audit-${shard}`));
}
