/** The agent as a library: what the CLI, tests and benchmarks build on. */
export { startAgent, ExitCode, type Agent, type AgentExit } from "./agent.ts";
export { AGENT_DEFAULTS, ConfigError, MAX_RECONNECT_CAP_MS, type AgentOptions } from "./agent-options.ts";
export type { AgentEventMap } from "./events.ts";
export { enroll, EnrollRefusedError, AlreadyEnrolledError, type EnrollOptions, type Enrolled } from "./enroll.ts";
export { openJournal, Journal, JOURNAL_FILE, type JournalCommand, type OutboxEntry, type ExecutionRecord } from "./journal.ts";
export { UNKNOWN_OUTCOME_REASON } from "./command-processor.ts";
export { STATE_FILES, readIdentity, type Identity } from "./state-files.ts";
export { createLogger, silentLogger, type Logger, type LogLevel } from "./log.ts";
