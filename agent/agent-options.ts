import { Limits } from "../schemas/index.ts";
import type { PackageManagerName } from "./executors/package-managers.ts";
import type { Logger } from "./log.ts";

/** Longest wait between reconnect attempts the agent allows (the ceiling). */
export const MAX_RECONNECT_CAP_MS = 60_000;

/** Options of `startAgent`; every optional one states its default. Durations are milliseconds. */
export interface AgentOptions {
  /** Holds agent.key, agent.crt, ca.crt, agent.json, config.json and journal.db. Required. */
  stateDir: string;
  /** Relay base URL, e.g. `https://relay.example.com`. Default: `relay` from agent.json. */
  relay?: string;
  /** This host's id. Default: `host_id` from agent.json, else the id in the relay's `welcome`. */
  hostId?: string;
  /** PEM bundle trusted for the relay's TLS certificate. Default: `ca_file` from agent.json, else `<stateDir>/ca.crt`. */
  caFile?: string;
  /** Trust the system CA store instead of a pinned CA (a relay behind Cloudflare). Default: agent.json's `system_ca`, else false. */
  systemCa?: boolean;
  /** Run `shell` commands. Default false. */
  allowShell?: boolean;
  /** First reconnect backoff step; doubles per failed attempt, full jitter. Default 1000. */
  reconnectBaseMs?: number;
  /** Reconnect backoff ceiling; at most 60 000. Default 60 000. */
  reconnectCapMs?: number;
  /** A connection that stayed up this long resets the backoff. Default 60 000. */
  stableAfterMs?: number;
  /** Output kept per command for its response (the tail), bytes; at most 256 KiB. Default 262 144. */
  maxOutputBytes?: number;
  /** On stop, how long a running command may take before its process group is killed. Default 30 000. */
  shutdownGraceMs?: number;
  /** Answered and acked journal entries are deleted after this long. Default 35 days. */
  journalRetentionMs?: number;
  /** Heartbeat interval. Default: the relay's `welcome.heartbeat_interval`. */
  heartbeatIntervalMs?: number;
  /** Package manager for `package_operation`. Default: the first of apt-get, dnf, yum, zypper, pacman, apk, brew on PATH. */
  packageManager?: PackageManagerName;
  /** Host name announced in `hello`. Default: the one recorded at enrolment, else os.hostname(), made DNS-safe. */
  hostname?: string;
  /** Wait for `welcome` after `hello` before giving up on a connection. Default 10 000. */
  welcomeTimeoutMs?: number;
  /** TLS + WebSocket handshake timeout. Default 10 000. */
  handshakeTimeoutMs?: number;
  /** How often the certificate's remaining lifetime is checked. Default 12 h. */
  renewCheckIntervalMs?: number;
  /** First wait before retrying a renewal that failed transiently (relay down, 5xx, network); doubles, full jitter. Default 10 000. */
  renewRetryBaseMs?: number;
  /** Longest wait between renewal retries. Default 15 min. */
  renewRetryCapMs?: number;
  /** Output is coalesced this long per progress frame. Default 200. */
  progressIntervalMs?: number;
  /** SIGTERM → SIGKILL grace when a process group is killed. Default 5000. */
  killGraceMs?: number;
  /** On stop, how long to wait for the relay to ack what is still in the outbox. Default 2000. */
  flushTimeoutMs?: number;
  /** Where state changes are logged. Default: JSON lines on stderr at level info. */
  logger?: Logger;
  /** Jitter source in [0, 1). Default Math.random. */
  random?: () => number;
  /** This host's clock, ms since the epoch (tests inject a skewed one). Default Date.now. */
  now?: () => number;
}

/** Options whose default is decided later (from agent.json, the relay's welcome, the host). */
type LateDefaults = "relay" | "hostId" | "caFile" | "systemCa" | "heartbeatIntervalMs" | "packageManager" | "hostname" | "logger" | "now";
export type ResolvedAgentOptions = Required<Omit<AgentOptions, LateDefaults>> & Pick<AgentOptions, LateDefaults>;

export const AGENT_DEFAULTS = {
  allowShell: false,
  reconnectBaseMs: 1000,
  reconnectCapMs: 60_000,
  stableAfterMs: 60_000,
  maxOutputBytes: 256 * 1024,
  shutdownGraceMs: 30_000,
  journalRetentionMs: 35 * 86_400_000,
  welcomeTimeoutMs: 10_000,
  handshakeTimeoutMs: 10_000,
  renewCheckIntervalMs: 12 * 3_600_000,
  renewRetryBaseMs: 10_000,
  renewRetryCapMs: 15 * 60_000,
  progressIntervalMs: 200,
  killGraceMs: 5000,
  flushTimeoutMs: 2000,
  random: Math.random,
} as const;

/** Thrown for options that cannot work; the CLI prints the message and exits 2. */
export class ConfigError extends Error {
  override name = "ConfigError";
}

/** Applies defaults and checks ranges. */
export function resolveAgentOptions(opts: AgentOptions): ResolvedAgentOptions {
  const o: ResolvedAgentOptions = { ...AGENT_DEFAULTS, ...stripUndefined(opts), stateDir: opts.stateDir };
  const positive = (name: keyof AgentOptions, v: number) => {
    if (!Number.isFinite(v) || v <= 0) throw new ConfigError(`${name} must be a positive number, got ${v}`);
  };
  const nonNegative = (name: keyof AgentOptions, v: number) => {
    if (!Number.isFinite(v) || v < 0) throw new ConfigError(`${name} must be zero or more, got ${v}`);
  };
  if (!o.stateDir) throw new ConfigError("stateDir is required");
  positive("reconnectBaseMs", o.reconnectBaseMs);
  positive("reconnectCapMs", o.reconnectCapMs);
  if (o.reconnectCapMs > MAX_RECONNECT_CAP_MS) throw new ConfigError(`reconnect cap must be at most 60 s, got ${o.reconnectCapMs} ms`);
  if (o.reconnectBaseMs > o.reconnectCapMs) throw new ConfigError("reconnect base must not exceed the reconnect cap");
  nonNegative("stableAfterMs", o.stableAfterMs);
  positive("maxOutputBytes", o.maxOutputBytes);
  if (o.maxOutputBytes > Limits.MAX_OUTPUT_CHARS) {
    throw new ConfigError(
      `max output must be at most ${Limits.MAX_OUTPUT_CHARS} bytes (the protocol's output limit), got ${o.maxOutputBytes}`,
    );
  }
  nonNegative("shutdownGraceMs", o.shutdownGraceMs);
  nonNegative("journalRetentionMs", o.journalRetentionMs);
  if (o.heartbeatIntervalMs !== undefined) positive("heartbeatIntervalMs", o.heartbeatIntervalMs);
  positive("welcomeTimeoutMs", o.welcomeTimeoutMs);
  positive("handshakeTimeoutMs", o.handshakeTimeoutMs);
  positive("renewCheckIntervalMs", o.renewCheckIntervalMs);
  positive("renewRetryBaseMs", o.renewRetryBaseMs);
  positive("renewRetryCapMs", o.renewRetryCapMs);
  if (o.renewRetryBaseMs > o.renewRetryCapMs) throw new ConfigError("renewal retry base must not exceed the renewal retry cap");
  positive("progressIntervalMs", o.progressIntervalMs);
  nonNegative("killGraceMs", o.killGraceMs);
  nonNegative("flushTimeoutMs", o.flushTimeoutMs);
  if (o.caFile !== undefined && o.systemCa === true) throw new ConfigError("give a CA file or system CA trust, not both");
  return o;
}

function stripUndefined<T extends object>(obj: T): Partial<T> {
  return Object.fromEntries(Object.entries(obj).filter(([, v]) => v !== undefined)) as Partial<T>;
}
