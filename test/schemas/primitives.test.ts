import { describe, expect, it } from "vitest";
import { CertFingerprint, type GrammarManager, Hostname, managerNameProblem, PackageName } from "../../schemas/index.ts";

describe("PackageName", () => {
  it.each([
    "nginx",
    "libssl3:amd64",
    "nginx=1.24.0-1~deb12u1",
    "python@3.12",
    "g++",
    "perl-DBI",
    "bash-0:5.1.8-6.el9.x86_64",
    "busybox@edge",
  ])("accepts %s", (name) => expect(PackageName.safeParse(name).success).toBe(true));
  it.each([
    "",
    "-y",
    "--force",
    "nginx curl",
    "nginx;reboot",
    "$(id)",
    "`id`",
    "a|b",
    "a&b",
    "../etc/passwd",
    "a\nb",
    "ngi*nx",
    "x".repeat(129),
  ])("refuses %j", (name) => expect(PackageName.safeParse(name).success).toBe(false));
  // URLs, paths and package files make dnf/yum/zypper/apt/apk install from outside the signed repositories.
  it.each([
    "http://attacker.example/evil.rpm",
    "https://attacker.example/evil.deb",
    "tmp/evil.deb",
    "file:/etc/x",
    "file:evil",
    "FILE:x",
    "evil.rpm",
    "evil.deb",
    "evil.APK",
    "evil.rb",
    "evil-1.0-1-x86_64.pkg.tar.zst",
    "homebrew/cask/firefox",
    "extra/nginx",
  ])("refuses the URL, path or package file %j with a reason", (name) => {
    const r = PackageName.safeParse(name);
    expect(r.success).toBe(false);
    expect(r.error?.issues[0]?.message).toMatch(/must not/);
  });
});

describe("managerNameProblem: each manager's own grammar", () => {
  const accepted: [GrammarManager, string][] = [
    ["apt-get", "nginx"],
    ["apt-get", "libssl3:amd64"],
    ["apt-get", "nginx=1.24.0-1~deb12u1"],
    ["apt-get", "libc6:i386=2.36-9+deb12u4"],
    ["apt-get", "nginx=1:1.24.0-1"],
    ["dnf", "nginx"],
    ["dnf", "perl-DBI"],
    ["dnf", "nginx-1.20.1-14.el9.x86_64"],
    ["dnf", "bash-0:5.1.8-6.el9.x86_64"],
    ["yum", "glibc.i686"],
    ["zypper", "nginx=1.21.5"],
    ["pacman", "python-pip"],
    ["pacman", "linux=6.8.1.arch1-1"],
    ["apk", "busybox@edge"],
    ["apk", "musl=1.2.4-r2"],
    ["apk", "openssl~3.1"],
    ["brew", "python@3.12"],
    ["brew", "gtk+3"],
  ];
  it.each(accepted)("%s accepts %s", (m, name) => expect(managerNameProblem(m, name)).toBeNull());

  const refused: [GrammarManager, string][] = [
    ["apt-get", "Nginx"], // Debian names are lower case
    ["apt-get", "x"], // at least two characters
    ["apt-get", "nginx@1"],
    ["apt-get", "nginx=1.0:amd64"], // arch goes before the version
    ["dnf", "nginx=1.0"],
    ["dnf", "nginx:1.0"],
    ["yum", "a@b"],
    ["pacman", "Python"],
    ["pacman", "nginx:1"],
    ["apk", "a@b@c"],
    ["brew", "Wget"],
    ["brew", "wget=1.0"],
  ];
  it.each(refused)("%s refuses %s", (m, name) => expect(managerNameProblem(m, name)).toMatch(/not a .* package name/));

  it.each(["apt-get", "dnf", "yum", "zypper", "pacman", "apk", "brew"] as const)("%s refuses URLs, paths and files too", (m) => {
    for (const name of ["http://attacker.example/evil.rpm", "tmp/evil.deb", "file:/etc/x", "evil.rpm", "-y"]) {
      expect(managerNameProblem(m, name)).not.toBeNull();
    }
  });
});

describe("CertFingerprint", () => {
  it("normalises colons and case", () => {
    const hex = "AB".repeat(32);
    const colons = hex.match(/../g)!.join(":");
    expect(CertFingerprint.parse(colons)).toBe("ab".repeat(32));
  });
  it("refuses anything but 32 bytes of hex", () => {
    expect(CertFingerprint.safeParse("ab".repeat(31)).success).toBe(false);
    expect(CertFingerprint.safeParse("zz".repeat(32)).success).toBe(false);
  });
});

describe("Hostname (RFC 1123)", () => {
  const label63 = "a".repeat(63);
  it.each(["web-1", "a", "1host", "db.example.com", "WEB-1.Example.COM", `${label63}.${label63}.${label63}.${"b".repeat(61)}`])(
    "accepts %s",
    (name) => {
      expect(Hostname.safeParse(name).success).toBe(true);
    },
  );
  it.each([
    ["a..b", "empty"],
    [".a", "empty"],
    ["a.", "empty"],
    ["x".repeat(253), "at most 63"],
    ["a".repeat(64), "at most 63"],
    [`${label63}.${label63}.${label63}.${"b".repeat(62)}`, "1-253"],
    ["-web", "not starting or ending"],
    ["web-", "not starting or ending"],
    ["a.-b.c", "not starting or ending"],
    ["web_1", "letters, digits"],
    ["", "1-253"],
  ])("refuses %j (%s)", (name, why) => {
    const r = Hostname.safeParse(name);
    expect(r.success).toBe(false);
    expect(r.error?.issues[0]?.message).toContain(why);
  });
});
