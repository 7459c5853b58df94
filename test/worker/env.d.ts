declare namespace Cloudflare {
  interface Env {
    DB: D1Database;
    HOST_RELAY: DurableObjectNamespace<import("../../worker/host-relay/host-relay.ts").HostRelay>;
    JWT_SECRET: string;
    TEST_MIGRATIONS: import("cloudflare:test").D1Migration[];
  }
}
