/**
 * `npm run build:agent`: the agent as one executable file, `dist/fleet-agent-linux-x64`, that runs on
 * a Linux host with no Node.js or Deno installed. A Node.js single executable application (SEA):
 *
 *   1. esbuild bundles agent/cli.ts with its dependencies (ws, zod, @peculiar/x509, …) into one
 *      CommonJS file (a SEA's main script may `require` only built-ins, so nothing stays outside);
 *   2. `node --experimental-sea-config` turns it into a preparation blob, with V8's code cache;
 *   3. a copy of the node binary (symbols stripped when `strip` is installed, ~20 MB less) gets the
 *      blob injected with postject (`node --build-sea`, which does 2 and 3 in one, is Node ≥ 25.5).
 *
 * The executable is that Node.js (so `node:sqlite`, which the journal uses, is built in; it needs
 * glibc, libstdc++ and nothing else) with the agent as its main script: `fleet-agent-linux-x64
 * run …` is `fleet-agent run …`.
 *
 * Options: `--out-dir <dir>` (default dist/), `--node <binary>` (the Node.js to embed, default the
 * one running this script; ≥ 22.13, whose node:sqlite needs no flag, and it must be the same
 * binary that makes the blob, so it makes it).
 */
import { spawnSync } from "node:child_process";
import { chmodSync, copyFileSync, mkdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { parseArgs } from "node:util";
import { build } from "esbuild";

const ROOT = path.resolve(import.meta.dirname, "..");
/** The sentinel a SEA-capable node binary carries; postject flips it when it injects the blob. */
const SEA_FUSE = "NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2";

const { values } = parseArgs({
  options: { "out-dir": { type: "string" }, node: { type: "string" }, help: { type: "boolean", short: "h" } },
});
if (values.help) {
  process.stdout.write("Usage: npm run build:agent -- [--out-dir <dir>] [--node <node binary>]\n");
  process.exit(0);
}

function fail(message: string): never {
  process.stderr.write(`build:agent: ${message}\n`);
  process.exit(1);
}

if (process.platform !== "linux") fail(`builds the Linux executable only (this is ${process.platform})`);
const arch = process.arch;
const outDir = path.resolve(values["out-dir"] ?? path.join(ROOT, "dist"));
const nodeBin = path.resolve(values.node ?? process.execPath);
const target = path.join(outDir, `fleet-agent-linux-${arch}`);
const work = path.join(outDir, ".sea");
const started = performance.now();

const nodeVersion = spawnSync(nodeBin, ["-p", "process.versions.node"], { encoding: "utf8" }).stdout?.trim() ?? "";
const [major = 0, minor = 0] = nodeVersion.split(".").map(Number);
if (!(major > 22 || (major === 22 && minor >= 13)))
  fail(`${nodeBin} is Node.js ${nodeVersion || "?"}; the executable needs ≥ 22.13 (node:sqlite without a flag)`);

const pkg = JSON.parse(readFileSync(path.join(ROOT, "package.json"), "utf8")) as { version: string };
rmSync(work, { recursive: true, force: true });
mkdirSync(work, { recursive: true });

// 1. One CommonJS file. ws's optional native helpers stay out (ws falls back to JavaScript when
// `require` fails, as it does for them in a SEA); the version is fixed at build time.
const bundle = path.join(work, "fleet-agent.cjs");
await build({
  entryPoints: [path.join(ROOT, "agent/cli.ts")],
  outfile: bundle,
  bundle: true,
  platform: "node",
  format: "cjs",
  target: `node${major}`,
  external: ["bufferutil", "utf-8-validate"],
  define: { FLEET_AGENT_BUILD_VERSION: JSON.stringify(pkg.version), "import.meta.url": "undefined" },
  keepNames: true,
  legalComments: "none",
  logLevel: "warning",
});

// 2. The preparation blob.
const blob = path.join(work, "fleet-agent.blob");
const seaConfig = path.join(work, "sea-config.json");
writeFileSync(
  seaConfig,
  JSON.stringify({
    main: bundle,
    output: blob,
    disableExperimentalSEAWarning: true,
    useCodeCache: true,
    useSnapshot: false,
    // The journal's node:sqlite still counts as experimental in some Node.js versions; its warning is noise in the journal.
    execArgv: ["--no-warnings=ExperimentalWarning"],
  }),
);
const prep = spawnSync(nodeBin, ["--experimental-sea-config", seaConfig], { encoding: "utf8" });
if (prep.status !== 0) fail(`node --experimental-sea-config failed:\n${prep.stderr}${prep.stdout}`);

// 3. The node binary, stripped if possible, with the blob injected.
const partial = `${target}.partial`;
copyFileSync(nodeBin, partial);
chmodSync(partial, 0o755);
const strip = spawnSync("strip", [partial], { encoding: "utf8" });
const stripped = strip.status === 0;
if (!stripped)
  process.stderr.write(`build:agent: not stripped (${strip.error?.message ?? strip.stderr.trim()}); the file is ~20 MB larger\n`);

// postject's CLI in a child process: its ELF library warns about note sections it does not name
// ("Can't find string offset for section name '.note.100'"), harmlessly; shown only if it fails.
const postject = createRequire(import.meta.url).resolve("postject/dist/cli.js");
const injected = spawnSync(process.execPath, [postject, partial, "NODE_SEA_BLOB", blob, "--sentinel-fuse", SEA_FUSE], { encoding: "utf8" });
if (injected.status !== 0) fail(`postject failed:\n${injected.stderr}${injected.stdout}`);

// The result must run: its --version is the agent's.
const check = spawnSync(partial, ["--version"], { encoding: "utf8", env: { PATH: "/usr/bin:/bin" } });
if (check.status !== 0 || !check.stdout.startsWith(`fleet-agent ${pkg.version} `)) {
  fail(`the executable does not run: exit ${check.status ?? check.signal}\n${check.stdout}${check.stderr}`);
}
const bundleBytes = statSync(bundle).size;
renameSync(partial, target);
rmSync(work, { recursive: true, force: true });

const mib = (n: number) => `${(n / 1024 / 1024).toFixed(1)} MiB`;
console.log(
  `${target}: ${mib(statSync(target).size)}, ${check.stdout.trim()}, bundle ${mib(bundleBytes)}${stripped ? ", stripped" : ""}; built in ${((performance.now() - started) / 1000).toFixed(1)} s`,
);
