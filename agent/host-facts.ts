import { readFileSync } from "node:fs";
import os from "node:os";

export interface OsRelease {
  /** `NAME` from /etc/os-release, else the kernel's name (Darwin, Linux). */
  name: string;
  /** `VERSION_ID`, e.g. "12". */
  version?: string;
  /** `ID`, e.g. "debian". */
  id?: string;
  /** `PRETTY_NAME`, e.g. "Debian GNU/Linux 12 (bookworm)". */
  prettyName?: string;
}

/** Reads /etc/os-release (or /usr/lib/os-release); falls back to the kernel name elsewhere (macOS). */
export function readOsRelease(): OsRelease {
  for (const file of ["/etc/os-release", "/usr/lib/os-release"]) {
    let text: string;
    try {
      text = readFileSync(file, "utf8");
    } catch {
      continue;
    }
    const fields = parseOsRelease(text);
    return {
      name: fields.NAME ?? os.type(),
      ...(fields.VERSION_ID ? { version: fields.VERSION_ID } : {}),
      ...(fields.ID ? { id: fields.ID } : {}),
      ...(fields.PRETTY_NAME ? { prettyName: fields.PRETTY_NAME } : {}),
    };
  }
  return { name: os.type(), version: os.release() };
}

/** `KEY=value` / `KEY="quoted value"` lines as in os-release(5). */
export function parseOsRelease(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split("\n")) {
    const m = /^([A-Z0-9_]+)=(.*)$/.exec(line.trim());
    if (!m) continue;
    let value = m[2]!;
    if (/^(["']).*\1$/.test(value)) value = value.slice(1, -1).replace(/\\(["'$`\\])/g, "$1");
    out[m[1]!] = value;
  }
  return out;
}

/**
 * This machine's name as a DNS host name the relay accepts: characters outside
 * letters, digits, `-` and `.` become `-`; an unusable name becomes "localhost".
 */
export function dnsHostname(name: string = os.hostname()): string {
  const cleaned = name
    .replace(/[^A-Za-z0-9.-]/g, "-")
    .replace(/^[.-]+|[.-]+$/g, "")
    .slice(0, 253)
    .replace(/[.-]+$/g, "");
  return cleaned === "" ? "localhost" : cleaned;
}

/** The `os` object of the `hello` frame. */
export function helloOs(): { name: string; version?: string; kernel: string; arch: string } {
  const rel = readOsRelease();
  return {
    name: rel.name.slice(0, 128),
    ...(rel.version ? { version: rel.version.slice(0, 128) } : {}),
    kernel: os.release().slice(0, 128),
    arch: os.machine().slice(0, 32),
  };
}
