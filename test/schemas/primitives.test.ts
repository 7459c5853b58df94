import { describe, expect, it } from "vitest";
import { CertFingerprint, PackageName } from "../../schemas/index.ts";

describe("PackageName", () => {
  it.each(["nginx", "libssl3:amd64", "nginx=1.24.0-1~deb12u1", "python@3.12", "homebrew/cask/firefox", "g++", "perl-DBI"])(
    "accepts %s",
    (name) => expect(PackageName.safeParse(name).success).toBe(true),
  );
  it.each(["", "-y", "--force", "nginx curl", "nginx;reboot", "$(id)", "`id`", "a|b", "a&b", "../etc/passwd", "a\nb", "ngi*nx", "x".repeat(129)])(
    "refuses %j",
    (name) => expect(PackageName.safeParse(name).success).toBe(false),
  );
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
