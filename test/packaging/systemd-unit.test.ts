/**
 * agent/packaging: the systemd unit and install.sh. `systemd-analyze verify` (Debian's systemd
 * package; .ci/run installs it where it is missing) checks the unit as install.sh lays it out in a
 * scratch root, with its ExecStart pointing at the installed (stand-in) executable; the unit's
 * promises (state directory, restart, drain budget, hardening) are checked against the agent's own
 * defaults; install.sh installs, upgrades and uninstalls in that scratch root without systemctl.
 */
import { execFile, execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { chmod, mkdir, mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AGENT_DEFAULTS } from "../../agent/agent-options.ts";
import { DEFAULT_STATE_DIR } from "../../agent/cli-options.ts";

const execFileP = promisify(execFile);
const PACKAGING = path.resolve(import.meta.dirname, "../../agent/packaging");
const INSTALL = path.join(PACKAGING, "install.sh");

function systemdAnalyze(): { version: number } | null {
  try {
    const out = execFileSync("systemd-analyze", ["--version"], { encoding: "utf8" });
    return { version: Number(/^systemd (\d+)/.exec(out)?.[1] ?? 0) };
  } catch {
    return null;
  }
}
const analyze = systemdAnalyze();
if (analyze === null && process.env.CI) throw new Error("systemd-analyze is missing: .ci/run installs Debian's systemd package");

async function run(cmd: string, args: string[], env: NodeJS.ProcessEnv = {}) {
  try {
    const r = await execFileP(cmd, args, { env: { ...process.env, ...env }, timeout: 60_000 });
    return { code: 0, out: r.stdout + r.stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof e.code === "number" ? e.code : -1, out: (e.stdout ?? "") + (e.stderr ?? "") };
  }
}

/** `Key=value` lines of one section (later ones win, as in systemd; lists keep every value). */
function section(unit: string, name: string): Map<string, string[]> {
  const keys = new Map<string, string[]>();
  let current = "";
  for (const raw of unit.split("\n")) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) continue;
    const header = /^\[(.+)\]$/.exec(line);
    if (header) {
      current = header[1]!;
      continue;
    }
    if (current !== name) continue;
    const eq = line.indexOf("=");
    const key = line.slice(0, eq);
    keys.set(key, [...(keys.get(key) ?? []), line.slice(eq + 1)]);
  }
  return keys;
}

const seconds = (v: string) => {
  const m = /^(\d+)(s|min)?$/.exec(v);
  if (!m) throw new Error(`not a duration: ${v}`);
  return Number(m[1]) * (m[2] === "min" ? 60 : 1);
};

let root: string;
let fakeAgent: string;
let unitText: string;

beforeAll(async () => {
  root = await mkdtemp(path.join(os.tmpdir(), "fleet-agent-install-"));
  // A stand-in for the single executable (the real one is built and run by test/e2e/agent-binary.test.ts).
  fakeAgent = path.join(root, "fleet-agent-linux-x64");
  await writeFile(fakeAgent, '#!/bin/sh\ncase "$1" in --version) echo "fleet-agent 9.9.9 (node 24.0.0)";; *) exit 1;; esac\n');
  await chmod(fakeAgent, 0o755);
  unitText = await readFile(path.join(PACKAGING, "fleet-agent.service"), "utf8");
});

afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

describe("fleet-agent.service", () => {
  it("keeps the agent's state in /var/lib/fleet-agent, 0700, and runs the installed binary there", () => {
    const s = section(unitText, "Service");
    expect(s.get("StateDirectory")).toEqual(["fleet-agent"]);
    expect(s.get("StateDirectoryMode")).toEqual(["0700"]);
    expect(DEFAULT_STATE_DIR).toBe("/var/lib/fleet-agent");
    expect(s.get("ExecStart")).toEqual([`/usr/local/bin/fleet-agent run --state-dir ${DEFAULT_STATE_DIR}`]);
    expect(s.get("Type")).toEqual(["exec"]);
    expect(section(unitText, "Install").get("WantedBy")).toEqual(["multi-user.target"]);
  });

  it("restarts always, with a delay, but not after revocation (exit 3) or bad configuration (exit 2)", async () => {
    const s = section(unitText, "Service");
    expect(s.get("Restart")).toEqual(["always"]);
    expect(seconds(s.get("RestartSec")![0]!)).toBeGreaterThanOrEqual(1);
    expect(s.get("RestartPreventExitStatus")![0]!.split(/\s+/).sort()).toEqual(["2", "3", "4"]);
    expect(section(unitText, "Unit").get("StartLimitIntervalSec")).toEqual(["0"]);
    // The growing backoff is a drop-in, for systemd >= 254 only (Debian 12 has 252).
    const dropIn = section(await readFile(path.join(PACKAGING, "restart-backoff.conf"), "utf8"), "Service");
    expect([...dropIn.keys()].sort()).toEqual(["RestartMaxDelaySec", "RestartSteps"]);
    expect(seconds(dropIn.get("RestartMaxDelaySec")![0]!)).toBeGreaterThan(seconds(s.get("RestartSec")![0]!));
  });

  it("gives SIGTERM to the agent alone and time to drain: running command, kill grace, outbox flush", () => {
    const s = section(unitText, "Service");
    expect(s.get("KillMode")).toEqual(["mixed"]);
    expect(s.get("KillSignal")).toEqual(["SIGTERM"]);
    const drainS = (AGENT_DEFAULTS.shutdownGraceMs + AGENT_DEFAULTS.killGraceMs + AGENT_DEFAULTS.flushTimeoutMs) / 1000;
    expect(seconds(s.get("TimeoutStopSec")![0]!)).toBeGreaterThan(drainS);
  });

  it("logs to the journal; hardened where package operations allow", () => {
    const s = section(unitText, "Service");
    expect(s.get("StandardError")).toEqual(["journal"]);
    expect(s.get("SyslogIdentifier")).toEqual(["fleet-agent"]);
    expect(s.get("ProtectHome")).toEqual(["tmpfs"]);
    expect(s.get("PrivateTmp")).toEqual(["yes"]);
    // Left off on purpose (the README says why): these would break installing packages.
    for (const key of [
      "ProtectSystem",
      "ProtectKernelModules",
      "ProtectKernelTunables",
      "PrivateDevices",
      "RestrictSUIDSGID",
      "MemoryDenyWriteExecute",
      "User",
    ]) {
      expect(s.has(key), key).toBe(false);
    }
  });

  it.skipIf(analyze === null)("systemd-analyze verify: no complaint about the installed unit", async (ctx) => {
    const dir = path.join(root, "verify");
    await mkdir(dir, { recursive: true });
    const installed = path.join(root, "verify-root");
    const r = await run("sh", [INSTALL, "--root", installed, "--binary", fakeAgent], {
      FLEET_AGENT_SYSTEMD_VERSION: String(analyze!.version),
    });
    expect(r.code, r.out).toBe(0);
    // ExecStart must name an existing file for verify: the one install.sh put in the scratch root.
    const unit = (await readFile(path.join(installed, "etc/systemd/system/fleet-agent.service"), "utf8")).replace(
      "ExecStart=/usr/local/bin/fleet-agent",
      `ExecStart=${installed}/usr/local/bin/fleet-agent`,
    );
    const unitPath = path.join(dir, "fleet-agent.service");
    await writeFile(unitPath, unit);
    const verify = await run("systemd-analyze", ["verify", unitPath], { SYSTEMD_LOG_COLOR: "0" });
    expect(verify, verify.out).toEqual({ code: 0, out: "" });

    // The drop-in beside it: clean where systemd knows its keys; on older systemd exactly those two are unknown.
    await mkdir(path.join(dir, "fleet-agent.service.d"));
    await writeFile(
      path.join(dir, "fleet-agent.service.d/restart-backoff.conf"),
      await readFile(path.join(PACKAGING, "restart-backoff.conf")),
    );
    const withDropIn = await run("systemd-analyze", ["verify", unitPath], { SYSTEMD_LOG_COLOR: "0" });
    expect(withDropIn.code, withDropIn.out).toBe(0);
    if (analyze!.version >= 254) {
      expect(withDropIn.out).toBe("");
    } else {
      const complaints = withDropIn.out.split("\n").filter(Boolean);
      expect(complaints.map((l) => /Unknown key '?(\w+)'?/.exec(l)?.[1]).sort(), withDropIn.out).toEqual([
        "RestartMaxDelaySec",
        "RestartSteps",
      ]);
    }

    // The exposure score, for the record: a root agent that runs package managers cannot score well.
    const security = await run("systemd-analyze", ["security", "--offline=yes", unitPath], { SYSTEMD_LOG_COLOR: "0" });
    const score = /Overall exposure level for fleet-agent.service: (.+)/.exec(security.out)?.[1];
    if (score) {
      console.log(`systemd-analyze security (systemd ${analyze!.version}): ${score}`);
      ctx.annotate(`systemd ${analyze!.version}; exposure ${score}`);
    }
  });
});

describe("install.sh (in a scratch root, without systemctl)", () => {
  const tree = () => path.join(root, "tree");
  const mode = async (p: string) => (await stat(path.join(tree(), p))).mode & 0o777;

  it("installs: binary 0755, unit 0644, state directory 0700; the backoff drop-in only for systemd >= 254", async () => {
    const old = await run("sh", [INSTALL, "--root", tree(), "--binary", fakeAgent], { FLEET_AGENT_SYSTEMD_VERSION: "252" });
    expect(old.code, old.out).toBe(0);
    expect(old.out).toContain("installed fleet-agent 9.9.9");
    expect(old.out).toContain("not enrolled yet");
    expect(await mode("usr/local/bin/fleet-agent")).toBe(0o755);
    expect(await mode("etc/systemd/system/fleet-agent.service")).toBe(0o644);
    expect(await mode("var/lib/fleet-agent")).toBe(0o700);
    expect(await readFile(path.join(tree(), "etc/systemd/system/fleet-agent.service"), "utf8")).toBe(unitText);
    expect(existsSync(path.join(tree(), "etc/systemd/system/fleet-agent.service.d"))).toBe(false);

    const upgrade = await run("sh", [INSTALL, "--root", tree(), "--binary", fakeAgent], { FLEET_AGENT_SYSTEMD_VERSION: "257" });
    expect(upgrade.code, upgrade.out).toBe(0);
    expect(await mode("etc/systemd/system/fleet-agent.service.d/restart-backoff.conf")).toBe(0o644);
  });

  it("refuses a file that is not the agent, and a token given as an argument", async () => {
    const notAgent = await run("sh", [INSTALL, "--root", path.join(root, "other"), "--binary", "/bin/true"]);
    expect(notAgent.code).toBe(1);
    expect(notAgent.out).toContain("is not the fleet agent");
    const token = await run("sh", [INSTALL, "--root", path.join(root, "other"), "--binary", fakeAgent, "--token", "fet_x"]);
    expect(token.code).toBe(1);
    expect(token.out).toContain("FLEET_AGENT_TOKEN");
  });

  it("uninstalls, keeping the state unless --purge", async () => {
    await writeFile(path.join(tree(), "var/lib/fleet-agent/agent.json"), '{\n  "host_id": "11111111-2222-4333-8444-555555555555"\n}\n');
    const keep = await run("sh", [INSTALL, "--root", tree(), "--uninstall"]);
    expect(keep.code, keep.out).toBe(0);
    expect(existsSync(path.join(tree(), "usr/local/bin/fleet-agent"))).toBe(false);
    expect(existsSync(path.join(tree(), "etc/systemd/system/fleet-agent.service"))).toBe(false);
    expect(existsSync(path.join(tree(), "etc/systemd/system/fleet-agent.service.d"))).toBe(false);
    expect(existsSync(path.join(tree(), "var/lib/fleet-agent/agent.json"))).toBe(true);
    const purge = await run("sh", [INSTALL, "--root", tree(), "--uninstall", "--purge"]);
    expect(purge.code, purge.out).toBe(0);
    expect(purge.out).toContain("host 11111111-2222-4333-8444-555555555555");
    expect(existsSync(path.join(tree(), "var/lib/fleet-agent"))).toBe(false);
  });
});
