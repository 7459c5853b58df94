import { z } from "zod";
import { packageNameProblem } from "./package-names.ts";

export const Uuid = z.uuid();
/** RFC 3339 timestamp in UTC (`Z`), as every wire message carries. */
export const Rfc3339 = z.iso.datetime({ offset: false });

/**
 * Package names and version pins across apt, dnf, zypper, pacman, apk and brew
 * (`nginx`, `libssl3:amd64`, `nginx=1.24.0-1`, `python@3.12`, `bash-0:5.1.8-6.el9.x86_64`).
 * Never a URL, a path or a package file, never a leading `-`: see `package-names.ts`, which also
 * holds each manager's own grammar that the agent applies.
 */
export const PackageName = z
  .string()
  .superRefine((name, ctx) => {
    const problem = packageNameProblem(name);
    if (problem) ctx.addIssue({ code: "custom", message: problem });
  })
  .meta({
    description:
      "A package name from a configured repository: 1-128 of letters, digits and . _ + : = @ ~ -, starting with a letter or digit; no '/', '..', file: or package-file suffix (.rpm, .deb, .apk, .rb, .pkg.tar…).",
    pattern: "^[A-Za-z0-9][A-Za-z0-9._+:=@~-]{0,127}$",
  });

/** A SHA-256 certificate fingerprint: 64 hex digits, colons optional; normalised to lower case. */
export const CertFingerprint = z
  .string()
  .transform((s) => s.replaceAll(":", "").toLowerCase())
  .pipe(z.string().regex(/^[0-9a-f]{64}$/, { message: "expected a SHA-256 fingerprint (64 hex digits)" }));

export const Tag = z
  .string()
  .regex(/^[a-z0-9][a-z0-9_.:-]{0,62}$/, {
    message: "tags are 1-63 lower-case letters, digits and _ . : - starting with a letter or digit",
  });

export const Hostname = z
  .string()
  .min(1)
  .max(253)
  .regex(/^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$/, { message: "expected a DNS host name" });
