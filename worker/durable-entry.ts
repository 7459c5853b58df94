import { ErrorCode, type RpcFailure, rpcError } from "./errors.ts";

/**
 * The one way into a Durable Object. Every hook and RPC method of HostRelay, JobCoordinator and
 * FleetEvents runs its handler through `run`, which afterwards settles the object (flushes its
 * outbox, recomputes its single alarm) whether the handler returned or threw, and logs a thrown error
 * as one JSON line instead of letting it escape into the runtime. No handler has to remember either.
 */
export class DurableEntry {
  readonly #object: string;
  readonly #settle: () => void;

  /** `settle` runs after every entry point; it must be synchronous and must not throw. */
  constructor(object: string, settle: () => void) {
    this.#object = object;
    this.#settle = settle;
  }

  /** Runs `handler`; on a throw, logs it and answers `onError(err)` (rethrows when none is given). */
  async run<T>(entry: string, handler: () => T | Promise<T>, onError?: (err: unknown) => T): Promise<T> {
    try {
      return await handler();
    } catch (err) {
      logEntryError(this.#object, entry, err);
      if (onError) return onError(err);
      throw err;
    } finally {
      try {
        this.#settle();
      } catch (err) {
        logEntryError(this.#object, `${entry}:settle`, err);
      }
    }
  }

  /** For RPC methods answering `RpcResult`: a throw becomes `ERR_INTERNAL` data, never a rejected call. */
  rpc<T>(entry: string, handler: () => T | Promise<T>): Promise<T | RpcFailure> {
    return this.run<T | RpcFailure>(entry, handler, () => rpcError(ErrorCode.INTERNAL, `internal error in ${this.#object}.${entry}`));
  }

  /** For hooks whose caller cannot act on an error (WebSocket events): log it and carry on. */
  hook(entry: string, handler: () => void | Promise<void>): Promise<void> {
    return this.run<void>(entry, handler, () => undefined);
  }
}

function logEntryError(object: string, entry: string, err: unknown): void {
  const e = err instanceof Error ? { name: err.name, message: err.message, stack: err.stack } : { message: String(err) };
  console.error(JSON.stringify({ level: "error", msg: "durable object entry point failed", object, entry, error: e }));
}
