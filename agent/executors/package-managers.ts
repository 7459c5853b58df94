import { accessSync, constants } from "node:fs";
import path from "node:path";
import { managerNameProblem, type PackageOperationParameters } from "../../schemas/index.ts";

/** Managers the agent knows how to drive, in detection order (first found on PATH wins). */
export const PACKAGE_MANAGERS = ["apt-get", "dnf", "yum", "zypper", "pacman", "apk", "brew"] as const;
export type PackageManagerName = (typeof PACKAGE_MANAGERS)[number];

export function isPackageManagerName(value: string): value is PackageManagerName {
  return (PACKAGE_MANAGERS as readonly string[]).includes(value);
}

/** The first known manager found as an executable on `PATH` (default: this process's), or null. */
export function detectPackageManager(searchPath: string = process.env.PATH ?? ""): PackageManagerName | null {
  const dirs = searchPath.split(path.delimiter).filter(Boolean);
  for (const name of PACKAGE_MANAGERS) {
    for (const dir of dirs) {
      try {
        accessSync(path.join(dir, name), constants.X_OK);
        return name;
      } catch {
        // not in this directory
      }
    }
  }
  return null;
}

export type PackageArgv = { ok: true; argv: string[] } | { ok: false; reason: string };

/**
 * The argv that carries out `params` with `manager`; never a shell string. Each package name must
 * fit the manager's own name grammar (`schemas/package-names.ts`: never a URL, path or package
 * file, never a leading `-`), and names go after `--` so no manager can read one as an option
 * either way.
 *
 * Semantics kept the same across managers:
 *   update  = refresh the package index (apt-get update, dnf makecache, zypper refresh, pacman -Sy, …)
 *   upgrade = upgrade installed packages, all of them or only those named
 * Options: `yes` (default true) answers prompts; `simulate` uses the manager's own dry run and is
 * refused where there is none (an operator asking for a dry run must never get a real run);
 * `no_recommends` skips weak dependencies where the manager has them and is ignored elsewhere.
 */
export function packageArgv(manager: PackageManagerName, params: PackageOperationParameters): PackageArgv {
  const { operation, packages } = params;
  for (const name of packages) {
    const problem = managerNameProblem(manager, name);
    if (problem) return { ok: false, reason: problem };
  }
  const yes = params.options.yes ?? true;
  const simulate = params.options.simulate ?? false;
  const noRecommends = params.options.no_recommends ?? false;
  const names = packages.length > 0 ? ["--", ...packages] : [];
  const noDryRun = (what: string): PackageArgv => ({
    ok: false,
    reason: `simulate is not supported for ${operation} with ${manager}: ${what}`,
  });
  const argv = (...parts: (string | false)[]): PackageArgv => ({ ok: true, argv: parts.filter((p): p is string => p !== false) });

  switch (manager) {
    case "apt-get": {
      if (operation === "update") return simulate ? noDryRun("apt-get update has no dry run") : argv("apt-get", "update");
      // Unattended: keep locally changed config files rather than stopping at dpkg's prompt.
      const unattended = yes ? ["-y", "-o", "Dpkg::Options::=--force-confdef", "-o", "Dpkg::Options::=--force-confold"] : [];
      const common = [...unattended, simulate && "-s"];
      if (operation === "install") return argv("apt-get", "install", ...common, noRecommends && "--no-install-recommends", ...names);
      if (operation === "remove") return argv("apt-get", "remove", ...common, ...names);
      return packages.length > 0
        ? argv("apt-get", "install", "--only-upgrade", ...common, noRecommends && "--no-install-recommends", ...names)
        : argv("apt-get", "upgrade", ...common);
    }
    case "dnf":
    case "yum": {
      if (operation === "update") return simulate ? noDryRun(`${manager} makecache has no dry run`) : argv(manager, "makecache");
      // --assumeno shows the transaction and answers no: the manager's own dry run.
      const answer = simulate ? "--assumeno" : yes && "-y";
      // yum has no weak dependencies, so no_recommends has nothing to skip there.
      const weak = noRecommends && manager === "dnf" && operation !== "remove" && "--setopt=install_weak_deps=False";
      return argv(manager, operation, answer, weak, ...names);
    }
    case "zypper": {
      const global = yes ? ["--non-interactive"] : [];
      if (operation === "update") return simulate ? noDryRun("zypper refresh has no dry run") : argv("zypper", ...global, "refresh");
      const dry = simulate && "--dry-run";
      const weak = noRecommends && operation !== "remove" && "--no-recommends";
      // zypper's `update` upgrades installed packages; `refresh` is the index update.
      const verb = operation === "upgrade" ? "update" : operation;
      return argv("zypper", ...global, verb, dry, weak, ...names);
    }
    case "pacman": {
      const confirm = yes && "--noconfirm";
      // --print lists the targets and stops: pacman's dry run.
      const dry = simulate && "--print";
      if (operation === "install") return argv("pacman", "-S", confirm, dry, ...names);
      if (operation === "remove") return argv("pacman", "-R", confirm, dry, ...names);
      if (operation === "update") return simulate ? noDryRun("pacman -Sy has no dry run") : argv("pacman", "-Sy", confirm);
      return packages.length > 0 ? argv("pacman", "-S", confirm, dry, ...names) : argv("pacman", "-Syu", confirm, dry);
    }
    case "apk": {
      // apk never prompts, so `yes` has nothing to answer.
      const dry = simulate && "--simulate";
      if (operation === "install") return argv("apk", "add", dry, ...names);
      if (operation === "remove") return argv("apk", "del", dry, ...names);
      if (operation === "update") return simulate ? noDryRun("apk update has no dry run") : argv("apk", "update");
      return argv("apk", "upgrade", dry, ...names);
    }
    case "brew": {
      // brew never prompts either; it has --dry-run for install and upgrade only.
      if (operation === "install") return argv("brew", "install", simulate && "--dry-run", ...names);
      if (operation === "remove") return simulate ? noDryRun("brew uninstall has no dry run") : argv("brew", "uninstall", ...names);
      if (operation === "update") return simulate ? noDryRun("brew update has no dry run") : argv("brew", "update");
      return argv("brew", "upgrade", simulate && "--dry-run", ...names);
    }
  }
}

/**
 * Packages an apt-get simulation would install (`Inst name [old] (new …)`) or remove (`Remv name …`).
 * Upgrades of dependencies show as `Inst` too, which is what they are.
 */
export function parseAptSimulation(output: string): { installed: string[]; removed: string[] } {
  const installed: string[] = [];
  const removed: string[] = [];
  for (const line of output.split("\n")) {
    const m = /^(Inst|Remv) (\S+)/.exec(line);
    if (!m) continue;
    (m[1] === "Inst" ? installed : removed).push(m[2]!);
  }
  return { installed, removed };
}
