/** The product page's install as a dry run (apt-get -s): which packages to name on this machine. */
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { expect } from "vitest";
import type { RelayRest } from "./relay-rest.ts";

const execFileP = promisify(execFile);

/**
 * Which packages the install request names. The product page's are nginx and curl; their dry run
 * needs Debian's package lists, which `.ci/run` fetches (apt-get update) on a machine that has
 * none. If nginx or curl still has no candidate here, fall back to packages every Debian system
 * has installed (bash, coreutils): the dry run then succeeds with nothing to install.
 * `expectPlanned` are the packages the dry run must list as installed (candidate newer than the
 * installed version, or not installed at all).
 */
export async function choosePackages(): Promise<{
  packages: string[];
  expectPlanned: string[];
  installed: () => Promise<string[]>;
  note: string;
} | null> {
  const policy = (names: string[]) =>
    execFileP("apt-cache", ["policy", ...names], { timeout: 15_000, env: { ...process.env, LC_ALL: "C" } }).then((r) => r.stdout);
  let text: string;
  try {
    text = await policy(["nginx", "curl"]);
  } catch {
    return null; // no apt on this machine
  }
  const parse = (out: string) => {
    const info = new Map<string, { installed: string; candidate: string }>();
    for (const block of out.split(/^(?=\S)/m)) {
      const name = /^(\S+):/.exec(block)?.[1];
      const installed = /Installed: (\S+)/.exec(block)?.[1];
      const candidate = /Candidate: (\S+)/.exec(block)?.[1];
      if (name && installed && candidate) info.set(name, { installed, candidate });
    }
    return info;
  };
  let info = parse(text);
  let packages = ["nginx", "curl"];
  let note = "the product page's packages";
  if (!packages.every((p) => info.get(p) && info.get(p)!.candidate !== "(none)")) {
    packages = ["bash", "coreutils"];
    note = "nginx/curl are not in this machine's apt lists; using bash and coreutils";
    info = parse(await policy(packages));
  }
  const expectPlanned = packages.filter((p) => info.get(p)!.installed !== info.get(p)!.candidate);
  const installed = async () => {
    const now = parse(await policy(packages));
    return packages.map((p) => `${p} ${now.get(p)?.installed}`);
  };
  return { packages, expectPlanned, installed, note };
}

export type PackageChoice = NonNullable<Awaited<ReturnType<typeof choosePackages>>>;

/**
 * Sends the product page's install with `simulate` (apt-get -s) to `hostId` over REST and checks
 * what comes back: succeeded through every state, the seed's result fields, the planned packages
 * listed, and nothing really installed. Returns the finished command.
 */
export async function expectInstallDryRun(rest: RelayRest, hostId: string, choice: PackageChoice): Promise<any> {
  const { packages, expectPlanned, installed } = choice;
  const installedBefore = await installed();

  const res = await rest.request("POST", `/api/hosts/${hostId}/packages/install`, {
    packages,
    options: { yes: true, simulate: true },
    timeout: 300,
  });
  expect(res.status, JSON.stringify(res.body)).toBe(202);
  expect(res.body.status).toBe("queued");
  const messageId: string = res.body.message_id;
  expect(res.headers.get("location")).toBe(`/api/hosts/${hostId}/commands/${messageId}`);

  const done = await rest.waitForCommand(hostId, messageId, undefined, 60_000);
  expect(done.state, JSON.stringify(done)).toBe("succeeded");
  expect(done.response_status).toBe("success");
  expect(done.command_type).toBe("package_operation");
  expect(done.history.map((h: { state: string }) => h.state)).toEqual(["queued", "delivered", "running", "succeeded"]);
  expect(done.result).toMatchObject({ exit_code: 0, simulated: true, package_manager: "apt-get", operation: "install" });
  expect(typeof done.result.execution_time).toBe("number");
  expect(done.result.execution_time).toBeGreaterThanOrEqual(0);
  expect(typeof done.result.output).toBe("string");
  expect(done.result.output.length).toBeGreaterThan(0);
  expect(Array.isArray(done.result.installed_packages)).toBe(true);
  for (const p of expectPlanned) {
    expect(done.result.installed_packages).toContain(p);
    expect(done.result.output).toMatch(new RegExp(`^Inst ${p} `, "m"));
  }
  // Nothing was really installed or upgraded: it was a dry run.
  expect(await installed()).toEqual(installedBefore);
  return done;
}
