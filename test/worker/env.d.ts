declare namespace Cloudflare {
  interface Env {
    DB: D1Database;
    HOST_RELAY: DurableObjectNamespace<import("../../worker/host-relay/host-relay.ts").HostRelay>;
    JOB_COORDINATOR: DurableObjectNamespace<import("../../worker/job-coordinator/job-coordinator.ts").JobCoordinator>;
    FLEET_EVENTS: DurableObjectNamespace<import("../../worker/fleet-events/fleet-events.ts").FleetEvents>;
    ALERTING: DurableObjectNamespace<import("../../worker/alerting/alerting.ts").Alerting>;
    AUDIT_LOG: DurableObjectNamespace<import("../../worker/audit-log/audit-log.ts").AuditLog>;
    AUDIT_SIGNING_KEY: string;
    JWT_SECRET: string;
    FLEET_CA_CERT: string;
    FLEET_CA_KEY: string;
    TEST_FAULTS: string;
    FUZZ_SEED: string;
    FUZZ_RUNS: string;
    TEST_MIGRATIONS: import("cloudflare:test").D1Migration[];
  }
}

// Types `exports` from "cloudflare:workers" (the Worker under test) for the tests.
declare namespace Cloudflare {
  interface GlobalProps {
    mainModule: typeof import("../../worker/index.ts");
    durableNamespaces: "HostRelay" | "JobCoordinator" | "FleetEvents" | "Alerting" | "AuditLog";
  }
}
