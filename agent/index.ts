/** The agent as a library: what the CLI, tests and benchmarks build on. */
export { type Agent, type AgentExit, ExitCode, startAgent } from "./agent.ts";
export { AGENT_DEFAULTS, type AgentOptions, ConfigError, MAX_RECONNECT_CAP_MS } from "./agent-options.ts";
export { UNKNOWN_OUTCOME_REASON } from "./command-processor.ts";
export { AlreadyEnrolledError, type Enrolled, type EnrollOptions, EnrollRefusedError, enroll } from "./enroll.ts";
export type { AgentEventMap } from "./events.ts";
export { type ExecutionRecord, JOURNAL_FILE, Journal, type JournalCommand, type OutboxEntry, openJournal } from "./journal.ts";
export { createLogger, type Logger, type LogLevel, silentLogger } from "./log.ts";
export { type Identity, readIdentity, STATE_FILES } from "./state-files.ts";
