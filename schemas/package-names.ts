/**
 * Package names: the wire accepts only what names a package in a configured repository, never a
 * URL, a path or a local package file. Given `http://host/x.rpm`, `tmp/x.deb`, `./x.apk` or even
 * `x.rpm`, dnf/yum/zypper/apt/apk install that file, bypassing the signed repositories; given
 * `user/tap/formula`, brew taps (clones) a third-party repository. Given a leading `-`, any of
 * them reads an option.
 *
 * Two layers: `packageNameProblem(name)` is the manager-independent rule the relay applies (it
 * does not know a host's manager); `managerNameProblem(manager, name)` is each manager's own name
 * grammar, which the agent applies before building an argv.
 */

export const MAX_PACKAGE_NAME_CHARS = 128;

/** Letters, digits and `. _ + : = @ ~ -`, starting with a letter or digit. */
const COMMON = /^[A-Za-z0-9][A-Za-z0-9._+:=@~-]*$/;
/** Suffixes managers read as a local package (or formula) file rather than a name. */
const FILE_SUFFIX = /\.(rpm|deb|udeb|ddeb|apk|rb|pkg\.tar(\.[a-z0-9]+)?)$/i;

/** Why `name` may not go on the wire as a package name, or null if it may. */
export function packageNameProblem(name: string): string | null {
  if (name.length === 0 || name.length > MAX_PACKAGE_NAME_CHARS) return `package names are 1-${MAX_PACKAGE_NAME_CHARS} characters`;
  if (name.includes("/")) return "package names must not contain '/' (no URLs, paths or repository-qualified names)";
  if (/^file:/i.test(name)) return "package names must not be file: URLs";
  if (!COMMON.test(name)) {
    return "package names start with a letter or digit and contain only letters, digits and . _ + : = @ ~ -";
  }
  if (name.includes("..")) return "package names must not contain '..'";
  if (FILE_SUFFIX.test(name)) return "package names must not end like a package file (.rpm, .deb, .apk, .rb, .pkg.tar…)";
  return null;
}

/** Managers with a name grammar here; the agent's detection list. */
export type GrammarManager = "apt-get" | "dnf" | "yum" | "zypper" | "pacman" | "apk" | "brew";

// Version strings: letters, digits and . + ~ _ ^ - (Debian adds an `epoch:` prefix).
const DEB_VERSION = "(?:[0-9]+:)?[A-Za-z0-9][A-Za-z0-9.+~-]*";
const RPM_NAME = "[A-Za-z0-9_+][A-Za-z0-9._+^~-]*";
const RPM_EVR = "(?:[0-9]+:)?[A-Za-z0-9._+^~]+(?:-[A-Za-z0-9._+^~]+)?";

/**
 * Each manager's own grammar for what may follow the install/remove verb as a name:
 * - apt-get (Debian Policy §5.6.1): `name` of lower-case letters, digits and `+ - .`, at least
 *   two characters; then `:arch` and/or `=version` (`libssl3:amd64`, `nginx=1.24.0-1~deb12u1`).
 * - dnf / yum (rpm NEVRA forms): `name`, `name-version[-release][.arch]`, `name.arch`, with an
 *   optional epoch (`bash-0:5.1.8-6.el9.x86_64`).
 * - zypper: the rpm forms, or `name=version`.
 * - pacman (ArchWiki package naming): lower-case letters, digits and `@ . _ + -`, optionally
 *   `=version` (`pkgver-pkgrel`, with an optional epoch).
 * - apk: `name`, optionally `@tag` (a repository tag from /etc/apk/repositories), optionally
 *   `=version` or `~version`.
 * - brew: formula names, lower-case letters, digits and `@ . _ + -` (`python@3.12`); tap-qualified
 *   names are refused (they contain `/`): tap the repository on the host first.
 */
const GRAMMARS: Record<GrammarManager, { re: RegExp; shape: string }> = {
  "apt-get": {
    re: new RegExp(`^[a-z0-9][a-z0-9+.-]+(?::[a-z0-9][a-z0-9-]*)?(?:=${DEB_VERSION})?$`),
    shape: "name[:arch][=version], name of lower-case letters, digits and + - . (at least 2)",
  },
  dnf: { re: new RegExp(`^${RPM_NAME}(?:-[0-9]+:${RPM_EVR})?$`), shape: "name[-[epoch:]version[-release]][.arch]" },
  yum: { re: new RegExp(`^${RPM_NAME}(?:-[0-9]+:${RPM_EVR})?$`), shape: "name[-[epoch:]version[-release]][.arch]" },
  zypper: {
    re: new RegExp(`^${RPM_NAME}(?:-[0-9]+:${RPM_EVR}|=${RPM_EVR})?$`),
    shape: "name[-version[-release]][.arch] or name=version",
  },
  pacman: {
    re: /^[a-z0-9@_+][a-z0-9@._+-]*(?:=(?:[0-9]+:)?[A-Za-z0-9._+~]+(?:-[0-9.]+)?)?$/,
    shape: "name[=version], name of lower-case letters, digits and @ . _ + -",
  },
  apk: {
    re: /^[A-Za-z0-9][A-Za-z0-9._+-]*(?:@[A-Za-z0-9._-]+)?(?:[=~][A-Za-z0-9._+~-]+)?$/,
    shape: "name[@tag][=version|~version]",
  },
  brew: { re: /^[a-z0-9][a-z0-9@._+-]*$/, shape: "formula name of lower-case letters, digits and @ . _ + -" },
};

/** Why `manager` would not read `name` as a package name from its repositories, or null. */
export function managerNameProblem(manager: GrammarManager, name: string): string | null {
  const common = packageNameProblem(name);
  if (common) return common;
  const grammar = GRAMMARS[manager];
  return grammar.re.test(name) ? null : `${JSON.stringify(name)} is not a ${manager} package name (${grammar.shape})`;
}
