import { z } from "zod";
import { packageNameProblem } from "./package-names.ts";

export const Uuid = z.uuid();
/** RFC 3339 timestamp in UTC (`Z`), as every wire message carries. */
export const Rfc3339 = z.iso.datetime({ offset: false });

/**
 * `schema` or null. Written as a union rather than `.nullable()` so that a named schema stays a
 * `$ref` in the OpenAPI document: the generator turns `.nullable()` of a named schema into a
 * nullable copy of the component itself, which every other use of it then inherits.
 */
export function orNull<T extends z.ZodType>(schema: T) {
  return z.union([schema, z.null()]);
}

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
    id: "PackageName",
    description:
      "A package name from a configured repository: 1-128 of letters, digits and . _ + : = @ ~ -, starting with a letter or digit; no '/', '..', file: or package-file suffix (.rpm, .deb, .apk, .rb, .pkg.tar…).",
    pattern: "^[A-Za-z0-9][A-Za-z0-9._+:=@~-]{0,127}$",
  });

/** A SHA-256 certificate fingerprint: 64 hex digits, colons optional; normalised to lower case. */
export const CertFingerprint = z
  .string()
  .transform((s) => s.replaceAll(":", "").toLowerCase())
  .pipe(z.string().regex(/^[0-9a-f]{64}$/, { message: "expected a SHA-256 fingerprint (64 hex digits)" }))
  .meta({ description: "SHA-256 fingerprint of a certificate: 64 hex digits in either case, colons allowed between them" });

export const Tag = z
  .string()
  .regex(/^[a-z0-9][a-z0-9_.:-]{0,62}$/, {
    message: "tags are 1-63 lower-case letters, digits and _ . : - starting with a letter or digit",
  })
  .meta({ id: "Tag", description: "A host tag: 1-63 lower-case letters, digits and _ . : -, starting with a letter or digit" });

/** One DNS label (RFC 1123 §2.1): 1-63 letters, digits and hyphens, not starting or ending with a hyphen. */
const LABEL = /^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/;

/** Why `name` is not an RFC 1123 host name, or null if it is. */
export function hostnameProblem(name: string): string | null {
  if (name.length === 0 || name.length > 253) return "host names are 1-253 characters";
  for (const label of name.split(".")) {
    if (label.length === 0) return "host name labels must not be empty (no leading, trailing or doubled '.')";
    if (label.length > 63) return "host name labels are at most 63 characters";
    if (!LABEL.test(label)) return "host name labels are letters, digits and '-', not starting or ending with '-'";
  }
  return null;
}

/** A host name per RFC 1123: dot-separated labels of 1-63 characters, 253 in all. */
export const Hostname = z
  .string()
  .superRefine((name, ctx) => {
    const problem = hostnameProblem(name);
    if (problem) ctx.addIssue({ code: "custom", message: `expected a DNS host name: ${problem}` });
  })
  .meta({
    id: "Hostname",
    description: "RFC 1123 host name: dot-separated labels of 1-63 letters, digits and '-' (not at either end), at most 253 characters.",
  });
