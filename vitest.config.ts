import path from "node:path";
import { cloudflareTest, readD1Migrations } from "@cloudflare/vitest-plugin";
import { defineConfig } from "vitest/config";
import { generateAuditKeyPem } from "./worker/audit-log/signing.ts";
import { createCa } from "./worker/pki/fleet-ca.ts";

const migrations = await readD1Migrations(path.join(import.meta.dirname, "migrations"));
// A throwaway fleet CA for the Worker tests' enrolment and renewal.
const testCa = await createCa("Fleet relay test CA");
// A throwaway audit key; the tests read the public half through the AuditLog's publicKey().
const testAuditKey = await generateAuditKeyPem();

export default defineConfig({
  test: {
    projects: [
      {
        // Worker code runs inside workerd with real Durable Objects, SQLite storage, alarms and D1.
        plugins: [
          cloudflareTest({
            wrangler: { configPath: "./wrangler.toml" },
            miniflare: {
              bindings: {
                TEST_MIGRATIONS: migrations,
                FLEET_CA_CERT: testCa.certificatePem,
                FLEET_CA_KEY: testCa.keyPem,
                JWT_SECRET: "test-secret-test-secret-test-secret-0123456789",
                AUDIT_SIGNING_KEY: testAuditKey.privatePem,
                // One JSON line per request would drown the test output.
                REQUEST_LOGS: "0",
                // Short timings so retry/backoff/stale tests run fast; production defaults live in worker/config.ts.
                ACK_TIMEOUT_MS: "1000",
                RETRY_BASE_MS: "100",
                RETRY_CAP_MS: "1000",
                // A small frame budget so the flood test stays quick; production defaults are 200/s, burst 1,000.
                FRAME_RATE_PER_S: "100",
                FRAME_BURST: "300",
                // Every enrolment in these tests shares one source bucket (no edge address); production default 10/min.
                ENROLL_RATE_LIMIT: "50",
                // Alerting: evaluate every second, give up on a notification after a minute (production: 15 s, 24 h),
                // and allow http:// receivers on loopback as the local relay does.
                ALERT_EVAL_INTERVAL_S: "1",
                ALERT_NOTIFY_MAX_AGE_S: "60",
                ALERT_ALLOW_HTTP_LOOPBACK: "1",
                // Test-only fault hooks (worker/test-faults.ts); inert without this binding.
                TEST_FAULTS: "1",
                // Replays a fuzz run (test/worker/fuzz/): the seed each run prints, and how many inputs it generates.
                FUZZ_SEED: process.env.FUZZ_SEED ?? "",
                FUZZ_RUNS: process.env.FUZZ_RUNS ?? "",
              },
            },
          }),
        ],
        test: {
          name: "worker",
          include: ["test/worker/**/*.test.ts"],
          setupFiles: ["test/worker/setup.ts"],
        },
      },
      {
        test: {
          name: "node",
          environment: "node",
          include: [
            "test/schemas/**/*.test.ts",
            "test/agent/**/*.test.ts",
            "test/e2e/**/*.test.ts",
            "test/packaging/**/*.test.ts",
            "test/bench/**/*.test.ts",
          ],
          testTimeout: 60_000,
          hookTimeout: 60_000,
        },
      },
    ],
  },
});
