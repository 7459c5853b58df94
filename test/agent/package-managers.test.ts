import { describe, expect, test } from "vitest";
import { detectPackageManager, type PackageManagerName, packageArgv, parseAptSimulation } from "../../agent/executors/package-managers.ts";
import { PackageOperationParameters } from "../../schemas/index.ts";

const p = (input: unknown) => PackageOperationParameters.parse(input);
const argv = (m: PackageManagerName, input: unknown) => {
  const r = packageArgv(m, p(input));
  if (!r.ok) throw new Error(r.reason);
  return r.argv;
};
const APT_YES = ["-y", "-o", "Dpkg::Options::=--force-confdef", "-o", "Dpkg::Options::=--force-confold"];

describe("package manager argv", () => {
  test("apt-get", () => {
    expect(argv("apt-get", { operation: "install", packages: ["nginx", "curl"] })).toEqual([
      "apt-get",
      "install",
      ...APT_YES,
      "--",
      "nginx",
      "curl",
    ]);
    expect(
      argv("apt-get", { operation: "install", packages: ["nginx"], options: { simulate: true, no_recommends: true, yes: false } }),
    ).toEqual(["apt-get", "install", "-s", "--no-install-recommends", "--", "nginx"]);
    expect(argv("apt-get", { operation: "remove", packages: ["nginx"], options: { simulate: true } })).toEqual([
      "apt-get",
      "remove",
      ...APT_YES,
      "-s",
      "--",
      "nginx",
    ]);
    expect(argv("apt-get", { operation: "update" })).toEqual(["apt-get", "update"]);
    expect(argv("apt-get", { operation: "upgrade" })).toEqual(["apt-get", "upgrade", ...APT_YES]);
    expect(argv("apt-get", { operation: "upgrade", packages: ["bash"], options: { simulate: true } })).toEqual([
      "apt-get",
      "install",
      "--only-upgrade",
      ...APT_YES,
      "-s",
      "--",
      "bash",
    ]);
  });

  test("dnf and yum", () => {
    expect(argv("dnf", { operation: "install", packages: ["nginx"], options: { no_recommends: true } })).toEqual([
      "dnf",
      "install",
      "-y",
      "--setopt=install_weak_deps=False",
      "--",
      "nginx",
    ]);
    expect(argv("dnf", { operation: "install", packages: ["nginx"], options: { simulate: true } })).toEqual([
      "dnf",
      "install",
      "--assumeno",
      "--",
      "nginx",
    ]);
    expect(argv("dnf", { operation: "remove", packages: ["nginx"] })).toEqual(["dnf", "remove", "-y", "--", "nginx"]);
    expect(argv("dnf", { operation: "update" })).toEqual(["dnf", "makecache"]);
    expect(argv("dnf", { operation: "upgrade" })).toEqual(["dnf", "upgrade", "-y"]);
    expect(argv("yum", { operation: "install", packages: ["nginx"], options: { no_recommends: true } })).toEqual([
      "yum",
      "install",
      "-y",
      "--",
      "nginx",
    ]);
    expect(argv("yum", { operation: "upgrade", packages: ["bash"], options: { yes: false } })).toEqual(["yum", "upgrade", "--", "bash"]);
  });

  test("zypper", () => {
    expect(argv("zypper", { operation: "install", packages: ["nginx"], options: { simulate: true, no_recommends: true } })).toEqual([
      "zypper",
      "--non-interactive",
      "install",
      "--dry-run",
      "--no-recommends",
      "--",
      "nginx",
    ]);
    expect(argv("zypper", { operation: "remove", packages: ["nginx"] })).toEqual(["zypper", "--non-interactive", "remove", "--", "nginx"]);
    expect(argv("zypper", { operation: "update" })).toEqual(["zypper", "--non-interactive", "refresh"]);
    expect(argv("zypper", { operation: "upgrade" })).toEqual(["zypper", "--non-interactive", "update"]);
  });

  test("pacman", () => {
    expect(argv("pacman", { operation: "install", packages: ["nginx"] })).toEqual(["pacman", "-S", "--noconfirm", "--", "nginx"]);
    expect(argv("pacman", { operation: "remove", packages: ["nginx"], options: { simulate: true } })).toEqual([
      "pacman",
      "-R",
      "--noconfirm",
      "--print",
      "--",
      "nginx",
    ]);
    expect(argv("pacman", { operation: "update" })).toEqual(["pacman", "-Sy", "--noconfirm"]);
    expect(argv("pacman", { operation: "upgrade" })).toEqual(["pacman", "-Syu", "--noconfirm"]);
  });

  test("apk", () => {
    expect(argv("apk", { operation: "install", packages: ["nginx"], options: { simulate: true } })).toEqual([
      "apk",
      "add",
      "--simulate",
      "--",
      "nginx",
    ]);
    expect(argv("apk", { operation: "remove", packages: ["nginx"] })).toEqual(["apk", "del", "--", "nginx"]);
    expect(argv("apk", { operation: "update" })).toEqual(["apk", "update"]);
    expect(argv("apk", { operation: "upgrade", packages: ["musl"] })).toEqual(["apk", "upgrade", "--", "musl"]);
  });

  test("brew", () => {
    expect(argv("brew", { operation: "install", packages: ["python@3.12"], options: { simulate: true } })).toEqual([
      "brew",
      "install",
      "--dry-run",
      "--",
      "python@3.12",
    ]);
    expect(argv("brew", { operation: "remove", packages: ["wget"] })).toEqual(["brew", "uninstall", "--", "wget"]);
    expect(argv("brew", { operation: "update" })).toEqual(["brew", "update"]);
    expect(argv("brew", { operation: "upgrade" })).toEqual(["brew", "upgrade"]);
  });

  test("a dry run the manager cannot do is refused, never run for real", () => {
    for (const m of ["apt-get", "dnf", "yum", "zypper", "pacman", "apk", "brew"] as const) {
      const r = packageArgv(m, p({ operation: "update", options: { simulate: true } }));
      expect(r).toMatchObject({ ok: false, reason: expect.stringContaining("simulate is not supported for update") });
    }
    expect(packageArgv("brew", p({ operation: "remove", packages: ["wget"], options: { simulate: true } })).ok).toBe(false);
  });

  test("package names are never read as options: the schema refuses them and `--` guards the rest", () => {
    expect(PackageOperationParameters.safeParse({ operation: "install", packages: ["-oAPT::Get=evil"] }).success).toBe(false);
    expect(PackageOperationParameters.safeParse({ operation: "install", packages: ["a;rm -rf /"] }).success).toBe(false);
    for (const m of ["apt-get", "dnf", "yum", "zypper", "pacman", "apk", "brew"] as const) {
      const out = argv(m, { operation: "install", packages: ["nginx"] });
      expect(out.indexOf("--")).toBe(out.length - 2);
    }
  });

  test("a name outside the manager's grammar is refused, never passed to it", () => {
    // Valid on the wire (some manager takes it), but not a name this manager reads from its repositories.
    const r = packageArgv("dnf", p({ operation: "install", packages: ["nginx=1.24.0-1"] }));
    expect(r).toMatchObject({ ok: false, reason: expect.stringContaining("not a dnf package name") });
    expect(packageArgv("apt-get", p({ operation: "install", packages: ["Nginx"] })).ok).toBe(false);
    expect(packageArgv("brew", p({ operation: "install", packages: ["wget=1.0"] })).ok).toBe(false);
    // A journaled frame from an older build skips today's schema: the argv builder still refuses files and URLs.
    for (const name of ["http://attacker.example/evil.rpm", "tmp/evil.deb", "file:/etc/x", "evil.rpm"]) {
      const params = { operation: "install" as const, packages: [name], options: {} };
      expect(packageArgv("dnf", params)).toMatchObject({ ok: false });
      expect(packageArgv("zypper", params)).toMatchObject({ ok: false });
    }
  });

  test("parses apt-get simulation lines", () => {
    const out =
      "Reading package lists...\nInst libfoo (1.0 Debian:12/stable [amd64])\nInst bash [5.2-1] (5.2-2 Debian)\nConf bash (5.2-2)\nRemv oldpkg [1.0]\n";
    expect(parseAptSimulation(out)).toEqual({ installed: ["libfoo", "bash"], removed: ["oldpkg"] });
  });

  test("detects the first known manager on PATH", () => {
    expect(detectPackageManager("/nonexistent")).toBeNull();
    const found = detectPackageManager();
    // This Debian build machine has apt-get; elsewhere any known manager (or none) is fine.
    if (process.platform === "linux" && found !== null) expect(["apt-get", "dnf", "yum", "zypper", "pacman", "apk"]).toContain(found);
  });
});
