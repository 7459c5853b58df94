/**
 * Structured logs: one JSON object per line, so a log pipeline (Workers Logs, `wrangler tail`,
 * Logpush) can filter by field instead of parsing prose. Every line written while serving a request
 * carries its `request_id`, the same one the response's `X-Request-Id` names.
 */
export type LogLevel = "debug" | "info" | "warn" | "error";

export type LogFields = Record<string, unknown>;

export interface Logger {
  debug(msg: string, fields?: LogFields): void;
  info(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  error(msg: string, fields?: LogFields): void;
  /** A logger whose lines also carry `fields` (e.g. the request id). */
  with(fields: LogFields): Logger;
}

/** An Error as plain fields (name, message, stack), anything else as its string. */
export function errorFields(err: unknown): LogFields {
  return err instanceof Error ? { name: err.name, message: err.message, stack: err.stack } : { message: String(err) };
}

function write(level: LogLevel, msg: string, base: LogFields, fields: LogFields | undefined): void {
  const line = JSON.stringify({ level, time: new Date().toISOString(), msg, ...base, ...fields });
  if (level === "error" || level === "warn") console.error(line);
  else console.log(line);
}

export function createLogger(base: LogFields = {}): Logger {
  return {
    debug: (msg, fields) => write("debug", msg, base, fields),
    info: (msg, fields) => write("info", msg, base, fields),
    warn: (msg, fields) => write("warn", msg, base, fields),
    error: (msg, fields) => write("error", msg, base, fields),
    with: (fields) => createLogger({ ...base, ...fields }),
  };
}

/** For code outside a request (Durable Object alarms, batch deliveries). */
export const log: Logger = createLogger();
