#!/usr/bin/env -S node --experimental-strip-types --experimental-sqlite --no-warnings=ExperimentalWarning
import { ExitCode, startAgent } from "./agent.ts";
/**
 * fleet-agent: `enroll` once, then `run`. See `node agent/cli.ts --help`.
 * Exit codes: 0 stopped cleanly, 1 failure, 2 bad usage/configuration or enrolment refused, 3 revoked,
 * 4 certificate expired (re-enrol the host; the log and stderr give the command).
 */
import { ConfigError } from "./agent-options.ts";
import { type CliCommand, enrollOptions, helpText, parseCli, runOptions } from "./cli-options.ts";
import { AlreadyEnrolledError, EnrollRefusedError, enroll } from "./enroll.ts";
import { createLogger } from "./log.ts";
import { AGENT_VERSION } from "./version.ts";

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (command === undefined || command === "--help" || command === "-h" || command === "help") {
    process.stdout.write(helpText(null));
    return command === undefined ? ExitCode.USAGE : ExitCode.OK;
  }
  if (command === "--version" || command === "version") {
    process.stdout.write(`fleet-agent ${AGENT_VERSION} (${runtimeName()})\n`);
    return ExitCode.OK;
  }
  if (command !== "enroll" && command !== "run") {
    process.stderr.write(`fleet-agent: unknown command "${command}"\n\n${helpText(null)}`);
    return ExitCode.USAGE;
  }
  const parsed = parseCli(command, rest, process.env);
  if (parsed.help) {
    process.stdout.write(helpText(command as CliCommand));
    return ExitCode.OK;
  }
  return command === "enroll" ? runEnroll(parsed) : runAgent(parsed);
}

/** Which runtime runs the agent: Node.js (also inside the single executable) or Deno. */
function runtimeName(): string {
  const versions = process.versions as Record<string, string | undefined>;
  if (versions.deno !== undefined) return `deno ${versions.deno}`;
  return `node ${process.versions.node}`;
}

async function runEnroll(parsed: ReturnType<typeof parseCli>): Promise<number> {
  const opts = enrollOptions(parsed);
  try {
    const enrolled = await enroll(opts);
    process.stdout.write(
      `enrolled as host ${enrolled.hostId}; certificate valid until ${enrolled.notAfter}\n` +
        `state directory: ${enrolled.stateDir}\nnext: fleet-agent run --state-dir ${enrolled.stateDir}\n`,
    );
    return ExitCode.OK;
  } catch (err) {
    if (err instanceof EnrollRefusedError) {
      process.stderr.write(
        `fleet-agent: enrolment refused by the relay: ${err.code ?? `HTTP ${err.status}`}${err.detail ? `: ${err.detail}` : ""}\n`,
      );
      return ExitCode.USAGE;
    }
    if (err instanceof AlreadyEnrolledError || err instanceof ConfigError) {
      process.stderr.write(`fleet-agent: ${err.message}\n`);
      return ExitCode.USAGE;
    }
    // Unreachable relay, TLS failure, unexpected reply: the message says which.
    process.stderr.write(`fleet-agent: enrolment failed: ${(err as Error).message}\n`);
    return ExitCode.FAILURE;
  }
}

async function runAgent(parsed: ReturnType<typeof parseCli>): Promise<number> {
  const logger = createLogger(parsed.logLevel);
  const agent = await startAgent({ ...runOptions(parsed), logger });
  let signals = 0;
  const onSignal = (sig: NodeJS.Signals) => {
    signals++;
    if (signals > 1) {
      logger.warn("second signal; exiting without waiting", { signal: sig });
      process.exit(ExitCode.FAILURE);
    }
    logger.info("signal received; stopping", { signal: sig });
    void agent.stop(`signal ${sig}`);
  };
  process.on("SIGTERM", onSignal);
  process.on("SIGINT", onSignal);
  const exit = await agent.done;
  if (exit.hint) process.stderr.write(`fleet-agent: ${exit.hint}\n`);
  return exit.exitCode;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    if (err instanceof ConfigError) {
      process.stderr.write(`fleet-agent: ${err.message}\n`);
      process.exit(ExitCode.USAGE);
    }
    process.stderr.write(`fleet-agent: ${(err as Error)?.stack ?? String(err)}\n`);
    process.exit(ExitCode.FAILURE);
  },
);
