import { readFileSync } from "node:fs";
import path from "node:path";
import { parseArgs } from "node:util";
import type { AgentOptions } from "./agent-options.ts";
import { ConfigError } from "./agent-options.ts";
import { parseBytes, parseDuration } from "./durations.ts";
import type { EnrollOptions } from "./enroll.ts";
import { isPackageManagerName, PACKAGE_MANAGERS } from "./executors/package-managers.ts";
import { isLogLevel, type LogLevel } from "./log.ts";
import { STATE_FILES } from "./state-files.ts";

export type CliCommand = "enroll" | "run";
type Kind = "string" | "boolean" | "duration" | "bytes";

export interface OptionSpec {
  /** `--flag` name, kebab-case. */
  flag: string;
  kind: Kind;
  /** Environment variable, when the option may come from the environment. */
  env?: string;
  /** Key in the config file, when the option may come from it. */
  key?: string;
  /** Shown in --help. */
  placeholder?: string;
  /** Shown in --help; per command where it differs. */
  default: string | Record<CliCommand, string>;
  help: string;
  commands: readonly CliCommand[];
}

export const DEFAULT_STATE_DIR = "/var/lib/fleet-agent";

const BOTH = ["enroll", "run"] as const;
const RUN = ["run"] as const;

/** Every option of the CLI; --help is generated from this table. */
export const OPTION_SPECS: readonly OptionSpec[] = [
  {
    flag: "relay",
    kind: "string",
    env: "FLEET_AGENT_RELAY",
    key: "relay",
    placeholder: "<url>",
    commands: BOTH,
    default: { enroll: "required", run: "the relay recorded at enrolment (agent.json)" },
    help: "Relay base URL, e.g. https://127.0.0.1:8443 (https only).",
  },
  {
    flag: "token",
    kind: "string",
    env: "FLEET_AGENT_TOKEN",
    placeholder: "<token>",
    commands: ["enroll"],
    default: "required",
    help: "Enrolment token from an admin (POST /api/enrollment-tokens). The environment keeps it out of `ps`.",
  },
  {
    flag: "state-dir",
    kind: "string",
    env: "FLEET_AGENT_STATE_DIR",
    key: "state_dir",
    placeholder: "<dir>",
    commands: BOTH,
    default: DEFAULT_STATE_DIR,
    help: "Holds the key (agent.key, 0600), certificates, agent.json, config.json and the journal. In a config file only when that file is given with --config.",
  },
  {
    flag: "config",
    kind: "string",
    env: "FLEET_AGENT_CONFIG",
    placeholder: "<file>",
    commands: BOTH,
    default: `<state-dir>/${STATE_FILES.config} (if present)`,
    help: "JSON config file; keys are the snake_case option names listed here.",
  },
  {
    flag: "ca-file",
    kind: "string",
    env: "FLEET_AGENT_CA_FILE",
    key: "ca_file",
    placeholder: "<pem>",
    commands: BOTH,
    default: { enroll: "the system CA store", run: "the file used at enrolment, else <state-dir>/ca.crt" },
    help: "PEM CA pinned as the only trust anchor for the relay's TLS certificate.",
  },
  {
    flag: "system-ca",
    kind: "boolean",
    env: "FLEET_AGENT_SYSTEM_CA",
    key: "system_ca",
    commands: RUN,
    default: "false (true when enrolled without --ca-file)",
    help: "Trust the system CA store instead of a pinned CA (relay behind Cloudflare).",
  },
  {
    flag: "hostname",
    kind: "string",
    env: "FLEET_AGENT_HOSTNAME",
    key: "hostname",
    placeholder: "<name>",
    commands: BOTH,
    default: { enroll: "this machine's host name", run: "the one given at enrolment, else this machine's" },
    help: "Host name sent at enrolment and in hello.",
  },
  { flag: "force", kind: "boolean", commands: ["enroll"], default: "false", help: "Replace an existing enrolment in the state directory." },
  {
    flag: "allow-shell",
    kind: "boolean",
    env: "FLEET_AGENT_ALLOW_SHELL",
    key: "allow_shell",
    commands: RUN,
    default: "false",
    help: "Run `shell` commands (/bin/sh -c) as this agent's user. Off: they are rejected.",
  },
  {
    flag: "reconnect-base",
    kind: "duration",
    env: "FLEET_AGENT_RECONNECT_BASE",
    key: "reconnect_base",
    placeholder: "<duration>",
    commands: RUN,
    default: "1s",
    help: "First reconnect wait; doubles per failed attempt, with full jitter.",
  },
  {
    flag: "reconnect-cap",
    kind: "duration",
    env: "FLEET_AGENT_RECONNECT_CAP",
    key: "reconnect_cap",
    placeholder: "<duration>",
    commands: RUN,
    default: "60s",
    help: "Longest reconnect wait; at most 60s.",
  },
  {
    flag: "stable-after",
    kind: "duration",
    env: "FLEET_AGENT_STABLE_AFTER",
    key: "stable_after",
    placeholder: "<duration>",
    commands: RUN,
    default: "60s",
    help: "A connection up this long resets the reconnect backoff.",
  },
  {
    flag: "max-output",
    kind: "bytes",
    env: "FLEET_AGENT_MAX_OUTPUT",
    key: "max_output",
    placeholder: "<size>",
    commands: RUN,
    default: "256KiB",
    help: "Output kept per command for its response (the last part); at most 256KiB.",
  },
  {
    flag: "shutdown-grace",
    kind: "duration",
    env: "FLEET_AGENT_SHUTDOWN_GRACE",
    key: "shutdown_grace",
    placeholder: "<duration>",
    commands: RUN,
    default: "30s",
    help: "On SIGTERM/SIGINT, time a running command gets before its process group is killed.",
  },
  {
    flag: "journal-retention",
    kind: "duration",
    env: "FLEET_AGENT_JOURNAL_RETENTION",
    key: "journal_retention",
    placeholder: "<duration>",
    commands: RUN,
    default: "35d",
    help: "Answered, acked commands are forgotten after this long (longer than the relay's 30-day delivery window).",
  },
  {
    flag: "renew-retry-base",
    kind: "duration",
    env: "FLEET_AGENT_RENEW_RETRY_BASE",
    key: "renew_retry_base",
    placeholder: "<duration>",
    commands: RUN,
    default: "10s",
    help: "First wait before retrying a certificate renewal that failed transiently (relay unreachable, 5xx); doubles, full jitter.",
  },
  {
    flag: "renew-retry-cap",
    kind: "duration",
    env: "FLEET_AGENT_RENEW_RETRY_CAP",
    key: "renew_retry_cap",
    placeholder: "<duration>",
    commands: RUN,
    default: "15m",
    help: "Longest wait between renewal retries.",
  },
  {
    flag: "heartbeat",
    kind: "duration",
    env: "FLEET_AGENT_HEARTBEAT",
    key: "heartbeat",
    placeholder: "<duration>",
    commands: RUN,
    default: "the relay's (welcome.heartbeat_interval)",
    help: "Ping interval; no pong within one interval drops and redials the connection.",
  },
  {
    flag: "package-manager",
    kind: "string",
    env: "FLEET_AGENT_PACKAGE_MANAGER",
    key: "package_manager",
    placeholder: "<name>",
    commands: RUN,
    default: `first on PATH of ${PACKAGE_MANAGERS.join(", ")}`,
    help: "Package manager for package_operation.",
  },
  {
    flag: "log-level",
    kind: "string",
    env: "FLEET_AGENT_LOG_LEVEL",
    key: "log_level",
    placeholder: "<level>",
    commands: BOTH,
    default: "info",
    help: "debug, info, warn or error. Logs are JSON lines on stderr.",
  },
];

type Source = "flag" | "env" | "config";
type Raw = { value: string | boolean | number; source: Source };
const RANK: Record<Source, number> = { flag: 3, env: 2, config: 1 };

export interface ParsedCli {
  help: boolean;
  logLevel: LogLevel;
  /** Resolved values by flag name (absent: the default applies). */
  values: Map<string, Raw>;
  configFile: string | null;
}

/** Options of `command`, resolved with precedence flags > environment > config file > defaults. */
export function parseCli(command: CliCommand, argv: readonly string[], env: NodeJS.ProcessEnv): ParsedCli {
  const specs = OPTION_SPECS.filter((s) => s.commands.includes(command));
  const parseOptions: Record<string, { type: "string" | "boolean"; short?: string }> = { help: { type: "boolean", short: "h" } };
  for (const s of specs) parseOptions[s.flag] = { type: s.kind === "boolean" ? "boolean" : "string" };
  let flags: Record<string, string | boolean | undefined>;
  try {
    flags = parseArgs({ args: [...argv], options: parseOptions, strict: true, allowPositionals: false, allowNegative: true })
      .values as typeof flags;
  } catch (err) {
    throw new ConfigError((err as Error).message);
  }
  if (flags.help) return { help: true, logLevel: "info", values: new Map(), configFile: null };

  const values = new Map<string, Raw>();
  for (const s of specs) {
    const f = flags[s.flag];
    if (f !== undefined) values.set(s.flag, { value: f, source: "flag" });
    else if (s.env && env[s.env] !== undefined && env[s.env] !== "") values.set(s.flag, { value: env[s.env]!, source: "env" });
  }

  // The config file sits below flags and environment, and may itself be chosen by either.
  const explicitConfig = values.get("config");
  const stateDirGuess = String(values.get("state-dir")?.value ?? DEFAULT_STATE_DIR);
  const configFile = explicitConfig ? path.resolve(String(explicitConfig.value)) : path.join(stateDirGuess, STATE_FILES.config);
  const fileValues = readConfigFile(configFile, explicitConfig !== undefined);
  if (fileValues) {
    const byKey = new Map(specs.filter((s) => s.key).map((s) => [s.key!, s]));
    const known = new Set(OPTION_SPECS.filter((s) => s.key).map((s) => s.key!));
    for (const [key, value] of Object.entries(fileValues)) {
      if (!known.has(key)) throw new ConfigError(`${configFile}: unknown key "${key}"`);
      const s = byKey.get(key);
      if (!s || values.has(s.flag)) continue;
      if (key === "state_dir" && !explicitConfig) continue; // a state dir's own config cannot move it
      if (typeof value !== "string" && typeof value !== "number" && typeof value !== "boolean") {
        throw new ConfigError(`${configFile}: "${key}" must be a string, number or boolean`);
      }
      values.set(s.flag, { value, source: "config" });
    }
  }

  // --ca-file and --system-ca are one choice: the higher-precedence source wins.
  const ca = values.get("ca-file");
  const sys = values.get("system-ca");
  if (ca && sys && toBool("system-ca", sys.value)) {
    if (RANK[ca.source] === RANK[sys.source]) throw new ConfigError("give --ca-file or --system-ca, not both");
    values.delete(RANK[ca.source] > RANK[sys.source] ? "system-ca" : "ca-file");
  }

  const level = String(values.get("log-level")?.value ?? "info");
  if (!isLogLevel(level)) throw new ConfigError(`log level must be debug, info, warn or error, got ${level}`);
  return { help: false, logLevel: level, values, configFile: fileValues ? configFile : null };
}

function readConfigFile(file: string, required: boolean): Record<string, unknown> | null {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (err) {
    if (!required && (err as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw new ConfigError(`cannot read config file ${file}: ${(err as Error).message}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new ConfigError(`config file ${file} is not JSON: ${(err as Error).message}`);
  }
  if (typeof json !== "object" || json === null || Array.isArray(json))
    throw new ConfigError(`config file ${file} must hold a JSON object`);
  return json as Record<string, unknown>;
}

function toBool(flag: string, v: string | boolean | number): boolean {
  if (typeof v === "boolean") return v;
  const s = String(v).toLowerCase();
  if (["1", "true", "yes", "on"].includes(s)) return true;
  if (["0", "false", "no", "off"].includes(s)) return false;
  throw new ConfigError(`--${flag} must be true or false, got ${v}`);
}

function getter(values: Map<string, Raw>) {
  const wrap = <T>(flag: string, fn: (v: string | number | boolean) => T): T | undefined => {
    const raw = values.get(flag);
    if (raw === undefined) return undefined;
    try {
      return fn(raw.value);
    } catch (err) {
      throw new ConfigError(`--${flag} (from ${raw.source}): ${(err as Error).message}`);
    }
  };
  return {
    str: (flag: string) => wrap(flag, (v) => String(v)),
    bool: (flag: string) => wrap(flag, (v) => toBool(flag, v)),
    duration: (flag: string) => wrap(flag, (v) => parseDuration(typeof v === "boolean" ? String(v) : v)),
    bytes: (flag: string) => wrap(flag, (v) => parseBytes(typeof v === "boolean" ? String(v) : v)),
  };
}

/** `startAgent` options from resolved CLI values (defaults left to startAgent). */
export function runOptions(parsed: ParsedCli): AgentOptions {
  const g = getter(parsed.values);
  const pm = g.str("package-manager");
  if (pm !== undefined && !isPackageManagerName(pm))
    throw new ConfigError(`--package-manager must be one of ${PACKAGE_MANAGERS.join(", ")}, got ${pm}`);
  return {
    stateDir: path.resolve(g.str("state-dir") ?? DEFAULT_STATE_DIR),
    relay: g.str("relay"),
    caFile: g.str("ca-file"),
    systemCa: g.bool("system-ca"),
    allowShell: g.bool("allow-shell"),
    reconnectBaseMs: g.duration("reconnect-base"),
    reconnectCapMs: g.duration("reconnect-cap"),
    stableAfterMs: g.duration("stable-after"),
    maxOutputBytes: g.bytes("max-output"),
    shutdownGraceMs: g.duration("shutdown-grace"),
    journalRetentionMs: g.duration("journal-retention"),
    heartbeatIntervalMs: g.duration("heartbeat"),
    renewRetryBaseMs: g.duration("renew-retry-base"),
    renewRetryCapMs: g.duration("renew-retry-cap"),
    packageManager: pm,
    hostname: g.str("hostname"),
  };
}

/** `enroll` options from resolved CLI values. */
export function enrollOptions(parsed: ParsedCli): EnrollOptions {
  const g = getter(parsed.values);
  const relay = g.str("relay");
  const token = g.str("token");
  if (!relay) throw new ConfigError("enroll needs --relay <url> (or FLEET_AGENT_RELAY)");
  if (!token) throw new ConfigError("enroll needs --token <token> (or FLEET_AGENT_TOKEN)");
  return {
    relay,
    token,
    stateDir: path.resolve(g.str("state-dir") ?? DEFAULT_STATE_DIR),
    caFile: g.str("ca-file"),
    hostname: g.str("hostname"),
    force: g.bool("force") ?? false,
  };
}

const SUMMARY: Record<CliCommand, string> = {
  enroll:
    "Enrols this host: makes an ECDSA P-256 key here, sends a CSR with the token to <relay>/agent/enroll\n" +
    "and writes agent.key (0600), agent.crt, ca.crt and agent.json to the state directory.",
  run:
    "Connects to <relay>/agent/connect with mutual TLS and runs commands until SIGTERM/SIGINT.\n" +
    "Commands are journaled before they are acked and never run twice.",
};

export function helpText(command: CliCommand | null): string {
  if (command === null) {
    return [
      "Usage: fleet-agent <command> [options]",
      "",
      "Commands:",
      "  enroll   Enrol this host with an enrolment token (once).",
      "  run      Connect to the relay and serve commands.",
      "  version  Print the agent's version (also --version).",
      "",
      "`fleet-agent <command> --help` lists each command's options.",
      "Precedence: flags > environment variables > config file > defaults.",
      "Exit codes: 0 stopped cleanly, 1 failure, 2 bad usage/configuration or enrolment refused, 3 host revoked,",
      "4 certificate expired (re-enrol the host: `fleet-agent enroll --force …` with a new token).",
      "",
    ].join("\n");
  }
  const lines = [`Usage: fleet-agent ${command} [options]`, "", SUMMARY[command], "", "Options:"];
  for (const s of OPTION_SPECS.filter((o) => o.commands.includes(command))) {
    const flag = s.kind === "boolean" ? `--${s.flag}, --no-${s.flag}` : `--${s.flag} ${s.placeholder ?? "<value>"}`;
    lines.push(`  ${flag}`);
    lines.push(`      ${s.help}`);
    const where = [s.env && `env ${s.env}`, s.key && `config "${s.key}"`].filter(Boolean).join(", ");
    const def = typeof s.default === "string" ? s.default : s.default[command];
    lines.push(`      Default: ${def}.${where ? ` Also: ${where}.` : ""}`);
  }
  lines.push("  -h, --help", "      Show this help.", "");
  lines.push("Durations: 500ms, 30s, 5m, 12h, 35d (a bare number is seconds). Sizes: 262144, 256KiB, 1MiB.", "");
  return lines.join("\n");
}
