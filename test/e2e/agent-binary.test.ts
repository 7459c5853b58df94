/**
 * The single executable, end to end: `scripts/build-agent.ts` (what `npm run build:agent` runs)
 * builds `fleet-agent-linux-x64` into a temporary directory; that file — not the TypeScript
 * sources — enrols with the local relay, connects over mutual TLS 1.3, runs the product page's
 * install as a dry run (apt-get -s; its journal is the built-in node:sqlite) and drains on SIGTERM.
 *
 * It runs as on a host with no Node.js or Deno: in a private mount namespace where every node and
 * deno binary of this machine is covered by /dev/null, with only the system directories on PATH,
 * from a directory with no package.json or node_modules (where `unshare` is not allowed, it runs
 * with the system PATH only, and says so).
 *
 * Prints the file's size, the build time and the startup time (process start → `connected`,
 * from the agent's own JSON log lines): figures, not assertions.
 */
import { execFileSync, spawn, spawnSync } from "node:child_process";
import { existsSync, realpathSync } from "node:fs";
import { mkdtemp, readFile, rm, stat } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { denoBinary } from "../../scripts/deno.ts";
import { type LocalRelay, startLocalRelay } from "../../scripts/local-relay.ts";
import { type AgentChild, killAllAgents, spawnAgentProcess } from "../helpers/agent-cli.ts";
import { choosePackages, expectInstallDryRun } from "../helpers/apt-dry-run.ts";
import { RelayRest } from "../helpers/relay-rest.ts";

const ROOT = path.resolve(import.meta.dirname, "../..");
const SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

let relay: LocalRelay;
let relayDir: string;
let workDir: string;
let binary: string;
let rest: RelayRest;
let buildSeconds: number;

/** Every node and deno binary this machine has (on PATH, the usual places, this test's own). */
function runtimesOnThisMachine(): string[] {
  const found = new Set<string>([process.execPath, denoBinary()]);
  for (const name of ["node", "nodejs", "deno"]) {
    try {
      for (const p of execFileSync("which", ["-a", name], { encoding: "utf8", env: { PATH: `${process.env.PATH}:${SYSTEM_PATH}` } }).split(
        "\n",
      )) {
        if (p) found.add(p);
      }
    } catch {}
  }
  for (const p of ["/usr/local/bin/node", "/usr/bin/node", "/usr/local/bin/deno", "/usr/bin/deno"]) if (existsSync(p)) found.add(p);
  return [...found].filter(existsSync).map((p) => realpathSync(p));
}

/**
 * How to start the binary with no Node.js or Deno around: `unshare` (root here) gives it a mount
 * namespace in which /dev/null covers each runtime binary; the shell checks that none runs, then
 * execs the agent (same pid, so signals reach it).
 */
function isolation(): { prefix: string[]; isolated: boolean } {
  const hidden = runtimesOnThisMachine();
  const script = [
    "set -e",
    'for f in $HIDE; do mount --bind /dev/null "$f"; done',
    'for r in node nodejs deno; do if command -v "$r" >/dev/null 2>&1 && "$r" --version >/dev/null 2>&1; then echo "$r still runs" >&2; exit 97; fi; done',
    'exec "$@"',
  ].join("\n");
  const prefix = ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "fleet-agent"];
  const probe = spawnSync(prefix[0]!, [...prefix.slice(1), "true"], {
    env: { PATH: SYSTEM_PATH, HIDE: hidden.join(" ") },
    encoding: "utf8",
  });
  if (probe.status === 0) return { prefix, isolated: true };
  return { prefix: [], isolated: false };
}

let iso: { prefix: string[]; isolated: boolean };

/** `command args…` on a host without Node.js or Deno (see isolation()). */
function spawnIsolated(command: string, args: string[], env: Record<string, string> = {}): AgentChild {
  const full = { PATH: SYSTEM_PATH, HOME: workDir, LANG: "C.UTF-8", HIDE: runtimesOnThisMachine().join(" "), ...env };
  const [cmd, ...rest] = [...iso.prefix, command, ...args];
  return spawnAgentProcess(cmd!, rest, full);
}

/** The installed executable (install.sh put it into the scratch root). */
const spawnBinary = (args: string[]) => spawnIsolated(path.join(hostRoot(), "usr/local/bin/fleet-agent"), args);
const hostRoot = () => path.join(workDir, "host");

beforeAll(async () => {
  workDir = await mkdtemp(path.join(os.tmpdir(), "fleet-agent-binary-"));
  relayDir = await mkdtemp(path.join(os.tmpdir(), "fleet-agent-binary-relay-"));
  const started = performance.now();
  // What `npm run build:agent` runs, into a directory of this test's own.
  const build = await new Promise<{ code: number | null; out: string }>((resolve) => {
    const child = spawn(
      process.execPath,
      [
        "--experimental-strip-types",
        "--no-warnings=ExperimentalWarning",
        path.join(ROOT, "scripts/build-agent.ts"),
        "--out-dir",
        path.join(workDir, "dist"),
      ],
      { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] },
    );
    let out = "";
    child.stdout.on("data", (d) => (out += d));
    child.stderr.on("data", (d) => (out += d));
    child.on("close", (code) => resolve({ code, out }));
  });
  buildSeconds = (performance.now() - started) / 1000;
  expect(build.code, build.out).toBe(0);
  console.log(build.out.trim());
  binary = path.join(workDir, "dist", `fleet-agent-linux-${process.arch}`);
  iso = isolation();
  relay = await startLocalRelay({ port: 0, edgePort: 0, stateDir: relayDir, quiet: true });
  rest = await RelayRest.create(relay.url, relayDir);
}, 180_000);

afterAll(async () => {
  await killAllAgents();
  await relay?.stop();
  if (relayDir) await rm(relayDir, { recursive: true, force: true });
  if (workDir) await rm(workDir, { recursive: true, force: true });
});

describe("the single executable (dist/fleet-agent-linux-x64)", () => {
  const agentDir = () => path.join(hostRoot(), "var/lib/fleet-agent");
  let hostId: string;
  let agent: AgentChild | undefined;

  it("is one self-contained ELF executable", async (ctx) => {
    const st = await stat(binary);
    expect(path.basename(binary)).toBe(`fleet-agent-linux-${process.arch}`);
    expect(st.mode & 0o111).toBe(0o111);
    const head = Buffer.from((await readFile(binary)).subarray(0, 4));
    expect(head.toString("latin1")).toBe("\x7fELF");
    ctx.annotate(`${(st.size / 1024 / 1024).toFixed(1)} MiB, built in ${buildSeconds.toFixed(1)} s`);
    // Only the C runtime libraries: nothing from node_modules or a Node.js installation.
    const ldd = spawnSync("ldd", [binary], { encoding: "utf8" });
    if (ldd.status === 0) {
      const libs = ldd.stdout
        .split("\n")
        .map((l) => l.trim().split(" ")[0])
        .filter(Boolean);
      for (const lib of libs) expect(lib, ldd.stdout).toMatch(/^(linux-vdso|\/lib64\/ld-linux|lib(c|m|dl|pthread|rt|stdc\+\+|gcc_s)\.so)/);
    }
    const version = spawnIsolated(binary, ["--version"]);
    expect(await version.exit(), version.stderr()).toEqual({ code: 0, signal: null });
    expect(version.stdout()).toMatch(/^fleet-agent \d+\.\d+\.\d+ \(node \d+\.\d+\.\d+\)\n$/);
    if (!iso.isolated) ctx.annotate("unshare not allowed here: ran with the system PATH only, Node.js still installed");
  });

  it("installs with agent/packaging/install.sh, which enrols it", async () => {
    // What an operator runs on the host (here into a scratch root, so no systemctl), token in the environment.
    const token = await rest.enrollmentToken(["sea"]);
    const install = spawnIsolated(
      "sh",
      [
        path.join(ROOT, "agent/packaging/install.sh"),
        "--root",
        hostRoot(),
        "--binary",
        binary,
        "--relay",
        relay.edgeUrl!,
        "--ca-file",
        relay.caCertPath,
      ],
      { FLEET_AGENT_TOKEN: token, FLEET_AGENT_HOSTNAME: "sea-1" },
    );
    expect(await install.exit(), install.stdout() + install.stderr()).toEqual({ code: 0, signal: null });
    expect(install.stdout()).toMatch(/installed fleet-agent \d+\.\d+\.\d+ \(node [\d.]+\) as \/usr\/local\/bin\/fleet-agent/);
    hostId = /enrolled as host ([0-9a-f-]{36})/.exec(install.stdout())![1]!;
    expect((await stat(agentDir())).mode & 0o777).toBe(0o700);
    expect((await stat(path.join(agentDir(), "agent.key"))).mode & 0o777).toBe(0o600);
    expect(await rest.host(hostId)).toMatchObject({ hostname: "sea-1", tags: ["sea"], status: "offline" });
  });

  it("runs: connects over mutual TLS (startup time printed)", async (ctx) => {
    // Three starts: the first after the build (cold), then two restarts of the same state.
    const figures: string[] = [];
    for (let run = 1; run <= 3; run++) {
      if (agent) {
        agent.child.kill("SIGTERM");
        expect(await agent.exit(20_000), agent.stderr()).toEqual({ code: 0, signal: null });
      }
      const spawnedAt = Date.now();
      agent = spawnBinary(["run", "--state-dir", agentDir()]);
      const connected = await agent.waitForLog("connected", { timeoutMs: 30_000 });
      expect(connected.host_id).toBe(hostId);
      const starting = agent.logs().find((l) => l.msg === "agent starting")!;
      expect(starting.version).toMatch(/^\d+\.\d+\.\d+$/);
      const at = (l: Record<string, unknown>) => Date.parse(l.time as string);
      figures.push(
        `${run === 1 ? "first" : "restart"}: "agent starting" ${at(starting) - spawnedAt} ms, "connected" ${at(connected) - spawnedAt} ms`,
      );
    }
    const line = `process start → ${figures.join("; ")}`;
    console.log(`fleet-agent-linux-x64 startup: ${line}`);
    ctx.annotate(line);
    const host = await rest.waitForHostStatus(hostId, "online");
    expect(host.agent).toMatchObject({ hostname: "sea-1", protocol_version: 1 });
  });

  it("the product page's install as a dry run; the journal is node:sqlite inside the binary", async (ctx) => {
    const choice = await choosePackages();
    if (choice === null) ctx.skip(); // no apt-get here
    ctx.annotate(choice!.note);
    await expectInstallDryRun(rest, hostId, choice!);
    expect((await readFile(path.join(agentDir(), "journal.db"))).subarray(0, 15).toString("latin1")).toBe("SQLite format 3");
  });

  it("SIGTERM: drains, exits 0, host offline; no warnings on stderr", async () => {
    if (!agent) throw new Error("no agent running");
    agent.child.kill("SIGTERM");
    expect(await agent.exit(20_000), agent.stderr()).toEqual({ code: 0, signal: null });
    expect(agent.logs().map((l) => l.msg)).toContain("agent stopped");
    await rest.waitForHostStatus(hostId, "offline");
    const notJson = agent
      .stderr()
      .split("\n")
      .filter((l) => l !== "" && !l.startsWith("{"));
    expect(notJson).toEqual([]);
  });
});
