/**
 * deploy/prometheus: the alert rules shipped for teams running Prometheus. `promtool` (Debian's
 * prometheus package; .ci/run installs it where it is missing) checks the rules file and runs its
 * unit tests (alerts.test.yml). The rules must cover the relay's five rule kinds over the metric
 * names /metrics serves.
 */
import { execFile, execFileSync } from "node:child_process";
import { copyFile, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { AlertRuleKind } from "../../schemas/index.ts";

const execFileP = promisify(execFile);
const DIR = path.resolve(import.meta.dirname, "../../deploy/prometheus");

function havePromtool(): boolean {
  try {
    execFileSync("promtool", ["--version"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}
const promtool = havePromtool();
if (!promtool && process.env.CI) throw new Error("promtool is missing: .ci/run installs Debian's prometheus package");

async function run(args: string[]) {
  try {
    const r = await execFileP("promtool", args, { cwd: DIR, timeout: 60_000 });
    return { code: 0, out: r.stdout + r.stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof e.code === "number" ? e.code : -1, out: (e.stdout ?? "") + (e.stderr ?? "") };
  }
}

const title = promtool ? "deploy/prometheus/alerts.yml under promtool" : "promtool (SKIPPED: not installed; apt-get install prometheus)";

describe.skipIf(!promtool)(title, () => {
  it("promtool check rules: valid, five rules", async () => {
    const r = await run(["check", "rules", "alerts.yml"]);
    expect(r.out).toContain("SUCCESS: 5 rules found");
    expect(r.code, r.out).toBe(0);
  });

  it("promtool test rules alerts.test.yml: every case passes", async () => {
    const r = await run(["test", "rules", "alerts.test.yml"]);
    expect(r.out).toContain("SUCCESS");
    expect(r.out).not.toContain("FAILED");
    expect(r.code, r.out).toBe(0);
  });

  it("a broken expectation fails (the unit tests can fail)", async () => {
    const tests = await readFile(path.join(DIR, "alerts.test.yml"), "utf8");
    const broken = tests.replace('summary: "1 job(s) stopped by max_errors"', 'summary: "2 job(s) stopped by max_errors"');
    expect(broken).not.toBe(tests);
    const dir = await mkdtemp(path.join(os.tmpdir(), "fleet-prom-rules-"));
    try {
      await copyFile(path.join(DIR, "alerts.yml"), path.join(dir, "alerts.yml"));
      await writeFile(path.join(dir, "alerts.test.yml"), broken);
      const r = await execFileP("promtool", ["test", "rules", "alerts.test.yml"], { cwd: dir }).then(
        () => ({ code: 0 }),
        (e: { code?: number }) => ({ code: e.code ?? -1 }),
      );
      expect(r.code).not.toBe(0);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe("deploy/prometheus/alerts.yml contents", () => {
  it("one rule per relay rule kind, over the metric names /metrics serves", async () => {
    const text = await readFile(path.join(DIR, "alerts.yml"), "utf8");
    const alerts = [...text.matchAll(/- alert: (\S+)/g)].map((m) => m[1]);
    expect(alerts).toHaveLength(AlertRuleKind.options.length);
    for (const metric of [
      'fleet_relay_hosts{status="offline"}',
      'fleet_relay_hosts{status="online"}',
      "fleet_relay_dead_letters_total",
      "fleet_relay_command_delivery_seconds_bucket",
      'fleet_relay_jobs{state="stopped"}',
    ]) {
      expect(text).toContain(metric);
    }
  });
});
