import { createApp } from "./app.ts";
import type { Env } from "./env.ts";

export { Alerting } from "./alerting/alerting.ts";
export { AuditLog } from "./audit-log/audit-log.ts";
export { FleetEvents } from "./fleet-events/fleet-events.ts";
export { HostRelay } from "./host-relay/host-relay.ts";
export { JobCoordinator } from "./job-coordinator/job-coordinator.ts";

const app = createApp();

export default {
  fetch: (request, env, ctx) => app.fetch(request, env, ctx),
} satisfies ExportedHandler<Env>;
