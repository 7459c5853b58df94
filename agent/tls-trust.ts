import { readFileSync } from "node:fs";
import path from "node:path";
import tls from "node:tls";
import { type Identity, statePath } from "./state-files.ts";

/** TLS settings every agent connection uses. */
export const MIN_TLS_VERSION = "TLSv1.3";

export interface Trust {
  /** System CA store (Node's bundle + the OS store) instead of a pinned CA. */
  systemCa: boolean;
  /** PEM file pinned as the only trust anchor when not systemCa. */
  caFile: string;
}

/**
 * The `ca` option for node:tls: the pinned CA's PEM, or the bundled and OS roots. Undefined
 * (Node's bundled roots) on Node versions without tls.getCACertificates (< 22.15).
 */
export function trustAnchors(trust: Trust): string[] | undefined {
  if (!trust.systemCa) return [readFileSync(trust.caFile, "utf8")];
  if (typeof tls.getCACertificates !== "function") return undefined;
  return [...new Set([...tls.getCACertificates("default"), ...tls.getCACertificates("system")])];
}

/**
 * How the relay's certificate is trusted: flags/config first (`systemCa`, `caFile`), then what
 * enrolment recorded in agent.json, then the state directory's ca.crt (the fleet CA).
 */
export function resolveTrust(o: { systemCa?: boolean; caFile?: string }, identity: Identity | null, stateDir: string): Trust {
  if (o.systemCa === true) return { systemCa: true, caFile: "" };
  if (o.caFile) return { systemCa: false, caFile: path.resolve(o.caFile) };
  if (o.systemCa === undefined && identity?.system_ca) return { systemCa: true, caFile: "" };
  if (identity?.ca_file) return { systemCa: false, caFile: identity.ca_file };
  return { systemCa: false, caFile: statePath(stateDir, "ca") };
}
